import HeraldCore

/// `type: file`: JSON Lines, one event per line.
public struct FileSinkSettings: SinkBuilding {
    public static let type = "file"

    public var path: String

    public init(path: String) {
        self.path = path
    }

    public static func decode(_ section: ConfigSection) -> FileSinkSettings? {
        guard section.require("path"), let file = section.nonEmptyString("path") else { return nil }
        return FileSinkSettings(path: file)
    }

    public func preview(_ context: TemplateContext, event: Event) -> String {
        "append to \(path): " + String(decoding: event.jsonData(), as: UTF8.self)
    }

    public func makeSink(_ config: SinkConfig, context: SinkContext) -> any Sink {
        FileSink(name: config.name, settings: self)
    }
}
