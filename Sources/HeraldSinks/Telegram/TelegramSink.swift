import AsyncHTTPClient
import Foundation
import HeraldCore
import NIOHTTP1

/// Telegram Bot API: `sendMessage`, and `deleteMessage` for a retraction.
public struct TelegramSink: Sink {
    /// `text` holds at most 4,096 characters.
    static let maxText = 4096
    /// Telegram deletes only messages sent less than 48 h ago; Herald stops trying an hour before,
    /// counted from when it received the message.
    public static let deleteWindow: Duration = .seconds(47 * 3600)

    public let name: String
    let settings: TelegramSinkSettings
    let timeout: Duration
    let transport: HTTPTransport

    public init(name: String, settings: TelegramSinkSettings, timeout: Duration, client: HTTPClient) {
        self.name = name
        self.settings = settings
        self.timeout = timeout
        self.transport = HTTPTransport(client: client)
    }

    public var recipients: [String] { settings.chatIDs }

    public var retraction: RetractionPlan? {
        settings.retract ? RetractionPlan(sentWithin: Self.deleteWindow) : nil
    }

    /// A numeric chat id is sent as a number, `@channel` as a string.
    static func chatValue(_ chat: String) -> Any { Int64(chat).map { $0 as Any } ?? chat }

    /// The `sendMessage` body of one attempt.
    public func body(for request: DeliveryRequest) -> Data {
        var object: [String: Any] = [
            "chat_id": Self.chatValue(request.delivery.recipient ?? ""),
            "text": settings.text.render(request.templateContext).cut(to: Self.maxText),
            "parse_mode": "HTML",
            // A link in an SMS is not worth a preview (and may be a phishing page).
            "link_preview_options": ["is_disabled": true],
        ]
        if settings.copyButton, let otp = request.event.otp, !otp.isEmpty, otp.count <= 256 {
            object["reply_markup"] = ["inline_keyboard": [[["text": "Copy code", "copy_text": ["text": otp]]]]]
        }
        return ChatJSON.encode(object)
    }

    private func call(_ method: String, _ body: Data) async -> SinkReport {
        await transport.send(
            url: "\(settings.baseURL)/bot\(settings.botToken.value)/\(method)", method: .POST,
            headers: [("Content-Type", "application/json")], body: body, timeout: timeout
        )
    }

    public func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome {
        guard request.delivery.recipient?.isEmpty == false else { return .permanent(reason: "no chat id") }
        return Classifier.classify(await call("sendMessage", body(for: request)), rules: TelegramSinkSettings.rules)
    }

    /// `deleteMessage` for the receipt `chat id:message id`. A message already gone counts as
    /// retracted; one Telegram will not delete (too old, or no right to) fails for good.
    public func retract(_ request: RetractionRequest) async -> DeliveryOutcome {
        guard let colon = request.receipt.lastIndex(of: ":"), let messageID = Int64(request.receipt[request.receipt.index(after: colon)...]) else {
            return .permanent(reason: "the receipt '\(request.receipt.prefix(60))' is not a Telegram chat and message id")
        }
        let chat = String(request.receipt[..<colon])
        let report = await call("deleteMessage", ChatJSON.encode(["chat_id": Self.chatValue(chat), "message_id": messageID]))
        return Self.classifyDelete(report)
    }

    static func classifyDelete(_ report: SinkReport) -> DeliveryOutcome {
        if case .http(let status, _, let body, _) = report {
            let description = (ChatJSON.object(body)?["description"] as? String ?? "").lowercased()
            if (200..<300).contains(status) { return .delivered(detail: "Telegram message deleted") }
            if status == 400, description.contains("message to delete not found") {
                return .delivered(detail: "Telegram: the message was already deleted")
            }
            if status == 400, description.contains("can't be deleted") {
                return .permanent(reason: "Telegram will not delete the message (only messages under 48 h old can be, and the bot needs the right to): \(description.prefix(120))")
            }
        }
        return Classifier.classify(report, rules: TelegramSinkSettings.rules)
    }
}
