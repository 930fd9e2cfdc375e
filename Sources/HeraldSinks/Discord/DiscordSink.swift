import AsyncHTTPClient
import Foundation
import HeraldCore
import NIOHTTP1

/// A Discord webhook: `POST …?wait=true`, and `DELETE …/messages/{id}` for a retraction.
public struct DiscordSink: Sink {
    /// `content` holds at most 2,000 characters.
    static let maxContent = 2000

    public let name: String
    let settings: DiscordSinkSettings
    let timeout: Duration
    let transport: HTTPTransport

    public init(name: String, settings: DiscordSinkSettings, timeout: Duration, client: HTTPClient) {
        self.name = name
        self.settings = settings
        self.timeout = timeout
        self.transport = HTTPTransport(client: client)
    }

    public var retraction: RetractionPlan? { settings.retract ? RetractionPlan() : nil }

    /// The body of one attempt: no mention of anyone is ever parsed (`allowed_mentions`).
    public func body(for request: DeliveryRequest) -> Data {
        ChatJSON.encode([
            "content": settings.content.render(request.templateContext).cut(to: Self.maxContent),
            "allowed_mentions": ["parse": [String]()],
        ])
    }

    public func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome {
        let report = await transport.send(
            url: settings.webhookURL.value + "?wait=true", method: .POST,
            headers: [("Content-Type", "application/json")], body: body(for: request), timeout: timeout,
            keep: DiscordSinkSettings.keptHeaders
        )
        return Classifier.classify(report, rules: DiscordSinkSettings.rules)
    }

    public func retract(_ request: RetractionRequest) async -> DeliveryOutcome {
        guard !request.receipt.isEmpty, request.receipt.allSatisfy(\.isNumber) else {
            return .permanent(reason: "the receipt '\(request.receipt.prefix(60))' is not a Discord message id")
        }
        let report = await transport.send(
            url: settings.webhookURL.value + "/messages/" + request.receipt, method: .DELETE,
            headers: [], body: nil, timeout: timeout, keep: DiscordSinkSettings.keptHeaders
        )
        return Self.classifyDelete(report)
    }

    /// 204: deleted. 404 with code 10008 (Unknown Message): deleted already.
    static func classifyDelete(_ report: SinkReport) -> DeliveryOutcome {
        if case .http(let status, _, let body, let headers) = report {
            if (200..<300).contains(status) {
                return .delivered(detail: "Discord message deleted", rest: DiscordSinkSettings.rules.restAfterSuccess?(headers))
            }
            if status == 404, ChatJSON.id(ChatJSON.object(body)?["code"]) == "10008" {
                return .delivered(detail: "Discord: the message was already deleted")
            }
        }
        return Classifier.classify(report, rules: DiscordSinkSettings.rules)
    }
}
