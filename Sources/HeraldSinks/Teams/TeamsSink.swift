import AsyncHTTPClient
import Foundation
import HeraldCore
import NIOHTTP1

/// Teams through Workflows: a message with one Adaptive Card (1.4): the code large and in a
/// monospace font, the app and sender, then the SMS as plain text.
public struct TeamsSink: Sink {
    public let name: String
    let settings: TeamsSinkSettings
    let timeout: Duration
    let transport: HTTPTransport

    public init(name: String, settings: TeamsSinkSettings, timeout: Duration, client: HTTPClient) {
        self.name = name
        self.settings = settings
        self.timeout = timeout
        self.transport = HTTPTransport(client: client)
    }

    static let headerTemplate = try! MessageTemplate("{{#app}}{{app}}  ·  {{/app}}from {{from}}", escaping: .text)

    static func header(_ context: TemplateContext) -> String { headerTemplate.render(context) }

    public func body(for request: DeliveryRequest) -> Data {
        let context = request.templateContext
        var blocks: [[String: Any]] = []
        if let otp = request.event.otp {
            blocks.append(["type": "TextBlock", "text": otp, "size": "ExtraLarge", "weight": "Bolder", "fontType": "Monospace"])
        }
        // TextRun: plain text, never markdown, so the sender's name and the SMS cannot format.
        blocks.append(["type": "RichTextBlock", "inlines": [["type": "TextRun", "text": Self.header(context), "isSubtle": true]]])
        blocks.append(["type": "RichTextBlock", "inlines": [["type": "TextRun", "text": settings.text.render(context).cut(to: 20_000)]]])
        let card: [String: Any] = [
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4", "body": blocks,
        ]
        return ChatJSON.encode([
            "type": "message",
            "attachments": [["contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": NSNull(), "content": card] as [String: Any]],
        ])
    }

    public func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome {
        let report = await transport.send(url: settings.webhookURL.value, method: .POST, headers: [("Content-Type", "application/json")],
                                          body: body(for: request), timeout: timeout)
        return Classifier.classify(report, rules: TeamsSinkSettings.rules)
    }
}
