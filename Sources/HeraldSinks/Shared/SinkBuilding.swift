import AsyncHTTPClient
import HeraldCore

/// A sink type's settings that can build its sink.
public protocol SinkBuilding: SinkSettings {
    func makeSink(_ config: SinkConfig, context: SinkContext) -> any Sink
}

/// What building a sink may need besides its own settings.
public struct SinkContext: Sendable {
    public var client: HTTPClient
    /// Numbers Herald's own SMS sinks send from (the loop guard).
    public var ownNumbers: Set<String>

    public init(client: HTTPClient = SinkHTTPClient.shared, ownNumbers: Set<String> = []) {
        self.client = client
        self.ownNumbers = ownNumbers
    }
}
