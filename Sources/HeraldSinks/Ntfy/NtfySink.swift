import AsyncHTTPClient
import Foundation
import HeraldCore
import NIOHTTP1

/// ntfy: a JSON publish (`{"topic","title","message","priority","tags","actions"}`) to the
/// server's root URL.
public struct NtfySink: Sink {
    /// ntfy turns a message over 4,096 bytes into an attachment; stay under it.
    static let maxMessage = 4000

    public let name: String
    let settings: NtfySinkSettings
    let timeout: Duration
    let transport: HTTPTransport

    public init(name: String, settings: NtfySinkSettings, timeout: Duration, client: HTTPClient) {
        self.name = name
        self.settings = settings
        self.timeout = timeout
        self.transport = HTTPTransport(client: client)
    }

    public func body(for request: DeliveryRequest) -> Data {
        let context = request.templateContext
        var message = settings.message.render(context)
        while message.utf8.count > Self.maxMessage { message = message.cut(to: message.count * Self.maxMessage / message.utf8.count) }
        var object: [String: Any] = [
            "topic": settings.topic.value,
            "title": settings.title.render(context).cut(to: 250),
            "message": message.isEmpty ? " " : message,
            "priority": settings.priority,
        ]
        if !settings.tags.isEmpty { object["tags"] = settings.tags }
        if settings.copyButton, let otp = request.event.otp, !otp.isEmpty {
            object["actions"] = [["action": "copy", "label": "Copy code", "value": otp, "clear": false] as [String: Any]]
        }
        return ChatJSON.encode(object)
    }

    public func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome {
        var headers = [("Content-Type", "application/json")]
        if let token = settings.token { headers.append(("Authorization", "Bearer " + token.value)) }
        let report = await transport.send(url: settings.root.value, method: .POST, headers: headers, body: body(for: request), timeout: timeout)
        return Classifier.classify(report, rules: NtfySinkSettings.rules)
    }
}
