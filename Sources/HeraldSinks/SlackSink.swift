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
        let cut = text.count > maxText ? String(text.prefix(maxText - 1)) + "…" : text
        // A dictionary of one string always encodes.
        return (try? JSONSerialization.data(withJSONObject: ["text": cut], options: [.withoutEscapingSlashes])) ?? Data()
    }

    public func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome {
        let body = Self.payload(text: settings.text.render(request.templateContext))
        do {
            let answer = try await transport.send(
                url: settings.webhookURL.value, method: .POST,
                headers: [("Content-Type", "application/json; charset=utf-8")], body: body, timeout: timeout
            )
            return Self.classify(status: answer.status, retryAfter: answer.retryAfter, body: answer.body)
        } catch {
            return HTTPResponseClassifier.classify(error: error, timeout: timeout)
        }
    }

    /// Slack answers `ok`, or a plain-text error code: 400 `invalid_payload`, 403 `invalid_token`,
    /// 404 `channel_not_found`, 410 `channel_is_archived`, 429 with `Retry-After`, 500 `rollup_error`.
    public static func classify(status: Int, retryAfter: String?, body: String, now: Date = Date()) -> DeliveryOutcome {
        let code = body.trimmingCharacters(in: .whitespacesAndNewlines)
        switch status {
        case 200..<300:
            return .delivered(detail: "Slack: \(code.isEmpty ? "ok" : String(code.prefix(100)))")
        case 404, 410:
            return .permanent(reason: "Slack: the webhook is gone (HTTP \(status)\(code.isEmpty ? "" : ": \(code.prefix(100))"))")
        default:
            switch HTTPResponseClassifier.classify(status: status, retryAfter: retryAfter, body: code, now: now) {
            case .retry(let after, let reason): return .retry(after: after, reason: "Slack: " + reason)
            case .permanent(let reason): return .permanent(reason: "Slack: " + reason)
            case let other: return other
            }
        }
    }
}
