import AsyncHTTPClient
import Foundation
import HeraldCore
import NIOHTTP1

/// Pushover's messages API, as a form.
public struct PushoverSink: Sink {
    static let maxMessage = 1024
    static let maxTitle = 250

    public let name: String
    let settings: PushoverSinkSettings
    let timeout: Duration
    let transport: HTTPTransport
    let now: @Sendable () -> Date

    public init(name: String, settings: PushoverSinkSettings, timeout: Duration, client: HTTPClient, now: @escaping @Sendable () -> Date = { Date() }) {
        self.name = name
        self.settings = settings
        self.timeout = timeout
        self.transport = HTTPTransport(client: client)
        self.now = now
    }

    /// The form of one attempt; `ttl` is what is left of the code's life (at least 1 s).
    public func form(for request: DeliveryRequest) -> [(String, String)] {
        let context = request.templateContext
        var message = settings.message.render(context).cut(to: Self.maxMessage)
        if message.isEmpty { message = "(empty message)" }
        var fields = [
            ("token", settings.appToken.value), ("user", settings.userKey.value),
            ("title", settings.title.render(context).cut(to: Self.maxTitle)), ("message", message),
        ]
        let remaining = Int(request.delivery.expiresAt.timeIntervalSince(now()).rounded(.down))
        fields.append(("ttl", String(max(remaining, 1))))
        if let priority = settings.priority { fields.append(("priority", String(priority))) }
        return fields
    }

    public func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome {
        let report = await transport.send(
            url: settings.baseURL + "/1/messages.json", method: .POST,
            headers: [("Content-Type", "application/x-www-form-urlencoded")],
            body: Data(FormText.encode(form(for: request)).utf8), timeout: timeout, keep: PushoverSinkSettings.keptHeaders
        )
        return Classifier.classify(report, rules: PushoverSinkSettings.rules)
    }
}
