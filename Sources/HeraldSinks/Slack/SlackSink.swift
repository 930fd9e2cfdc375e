import AsyncHTTPClient
import Foundation
import HeraldCore
import NIOHTTP1

/// Posts `{"text": …}` to a Slack incoming webhook.
public struct SlackSink: Sink {
    /// Slack cuts `text` at 40,000 characters; cut it ourselves so the end is visibly marked.
    static let maxText = 40_000

    public let name: String
    let settings: SlackSinkSettings
    let timeout: Duration
    let transport: HTTPTransport

    public init(name: String, settings: SlackSinkSettings, timeout: Duration, client: HTTPClient) {
        self.name = name
        self.settings = settings
        self.timeout = timeout
        self.transport = HTTPTransport(client: client)
    }

    public static func payload(text: String) -> Data {
        Data((#"{"text":""# + JSONText.escape(text.cut(to: maxText)) + #""}"#).utf8)
    }

    public func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome {
        let body = Self.payload(text: settings.text.render(request.templateContext))
        let report = await transport.send(
            url: settings.webhookURL.value, method: .POST,
            headers: [("Content-Type", "application/json; charset=utf-8")], body: body, timeout: timeout
        )
        return Classifier.classify(report, rules: SlackSinkSettings.rules)
    }

    /// What an answer from Slack means (`SlackSinkSettings.rules`).
    public static func classify(status: Int, retryAfter: String?, body: String, now: Date = Date()) -> DeliveryOutcome {
        Classifier.classify(.http(status: status, retryAfter: retryAfter, body: body), rules: SlackSinkSettings.rules, now: now)
    }
}
