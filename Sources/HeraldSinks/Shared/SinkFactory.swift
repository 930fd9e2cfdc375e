import AsyncHTTPClient
import HeraldCore

/// Builds the sinks a configuration names, each through its type's settings.
public enum SinkFactory {
    /// Every enabled sink of `config`; disabled (optional) sinks are left out.
    public static func makeSinks(_ config: HeraldConfig, client: HTTPClient = SinkHTTPClient.shared) -> [any Sink] {
        config.enabledSinks.map { makeSink($0, client: client, ownNumbers: config.ownSMSNumbers) }
    }

    public static func makeSink(_ sink: SinkConfig, client: HTTPClient = SinkHTTPClient.shared, ownNumbers: Set<String> = []) -> any Sink {
        guard let settings = sink.settings as? any SinkBuilding else {
            // Only `SinkRegistry` types are decoded, and each of them builds its sink.
            preconditionFailure("sink type \(sink.type) is not in SinkRegistry")
        }
        return settings.makeSink(sink, context: SinkContext(client: client, ownNumbers: ownNumbers))
    }
}
