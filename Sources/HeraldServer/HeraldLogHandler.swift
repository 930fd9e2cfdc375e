import Foundation
import HeraldCore
import Logging
import Synchronization

/// One line per log entry, as logfmt (`ts=… level=info msg="event received" event.id=…`) or as a
/// JSON object, with the entry's metadata under its dotted keys.
public struct HeraldLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable {
        case logfmt, json
    }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let label: String
    let format: Format
    let write: @Sendable (String) -> Void

    public init(label: String, format: Format, level: Logger.Level, write: @escaping @Sendable (String) -> Void = HeraldLogHandler.standardError) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.write = write
    }

    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data(line.utf8))
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        let flat = fields.map { ($0.key, "\($0.value)") }.sorted { $0.0 < $1.0 }
        let time = RFC3339.string(from: Date())
        switch format {
        case .logfmt:
            var line = "ts=\(time) level=\(event.level.rawValue) msg=\(Self.logfmtValue("\(event.message)"))"
            for (key, value) in flat { line += " \(key)=\(Self.logfmtValue(value))" }
            write(line + "\n")
        case .json:
            var line = "{\"ts\":\"\(time)\",\"level\":\"\(event.level.rawValue)\",\"msg\":\"\(JSONText.escape("\(event.message)"))\""
            for (key, value) in flat { line += ",\"\(JSONText.escape(key))\":\"\(JSONText.escape(value))\"" }
            write(line + "}\n")
        }
    }

    static func logfmtValue(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.contains { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\\" || $0.isNewline }
        guard needsQuotes else { return value }
        return "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n") + "\""
    }
}

/// Keeps every log line in memory (tests).
public final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    public init() {}

    public var text: String { lines.withLock { $0.joined() } }

    public func logger(format: HeraldLogHandler.Format = .logfmt, level: Logger.Level = .trace) -> Logger {
        Logger(label: "herald") { label in
            HeraldLogHandler(label: label, format: format, level: level) { [self] line in self.lines.withLock { $0.append(line) } }
        }
    }
}
