import AsyncHTTPClient
import Foundation
import HeraldCore
import NIOHTTP1

/// Sends the event (or a rendered body) to any HTTP endpoint, with Standard Webhooks headers:
/// `webhook-id` is the delivery id and stays the same across retries so receivers can drop repeats;
/// `webhook-signature` is added when `signing_secret` is set.
public struct HTTPSink: Sink {
    public let name: String
    let settings: HTTPSinkSettings
    let timeout: Duration
    let transport: HTTPTransport
    let now: @Sendable () -> Date

    public init(name: String, settings: HTTPSinkSettings, timeout: Duration, client: HTTPClient, now: @escaping @Sendable () -> Date = { Date() }) {
        self.name = name
        self.settings = settings
        self.timeout = timeout
        self.transport = HTTPTransport(client: client)
        self.now = now
    }

    /// The body and headers of one attempt.
    public func request(for request: DeliveryRequest) -> (headers: [(String, String)], body: Data) {
        let body = settings.body.map { Data($0.render(request.templateContext).utf8) } ?? request.event.jsonData()
        var headers = settings.headers.map { ($0.name, $0.value.value) }
        if !headers.contains(where: { $0.0.lowercased() == "content-type" }) {
            headers.append(("Content-Type", "application/json; charset=utf-8"))
        }
        let timestamp = Int(now().timeIntervalSince1970)
        headers.append(("webhook-id", request.delivery.id))
        headers.append(("webhook-timestamp", String(timestamp)))
        if let secret = settings.signingSecret,
           let signature = StandardWebhooks.signature(secret: secret.value, id: request.delivery.id, timestamp: timestamp, body: body) {
            headers.append(("webhook-signature", signature))
        }
        return (headers, body)
    }

    public func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome {
        let (headers, body) = self.request(for: request)
        let report = await transport.send(
            url: settings.url.value, method: HTTPMethod(rawValue: settings.method), headers: headers, body: body, timeout: timeout
        )
        return Classifier.classify(report)
    }
}
