import AsyncHTTPClient
import HeraldCore

/// Builds the sinks a configuration names.
public enum SinkFactory {
    /// Every enabled sink of `config`; disabled (optional) sinks are left out.
    public static func makeSinks(_ config: HeraldConfig, client: HTTPClient = SinkHTTPClient.shared) -> [any Sink] {
        config.enabledSinks.map { makeSink($0, client: client, ownNumbers: config.ownSMSNumbers) }
    }

    public static func makeSink(_ sink: SinkConfig, client: HTTPClient = SinkHTTPClient.shared, ownNumbers: Set<String> = []) -> any Sink {
        switch sink.settings {
        case .slack(let settings):
            SlackSink(name: sink.name, settings: settings, timeout: sink.timeout, client: client)
        case .http(let settings):
            HTTPSink(name: sink.name, settings: settings, timeout: sink.timeout, client: client)
        case .file(let settings):
            FileSink(name: sink.name, settings: settings)
        case .email(let settings):
            EmailSink(name: sink.name, settings: settings, timeout: sink.timeout)
        case .twilio(let settings):
            TwilioSMSSink(name: sink.name, settings: settings, timeout: sink.timeout, client: client, ownNumbers: ownNumbers)
        }
    }
}
