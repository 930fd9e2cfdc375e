import Foundation
import HeraldCore

/// `type: telegram`: a bot's `sendMessage` to one chat or several (one delivery each), HTML
/// parse mode with the SMS escaped, an optional button that copies the code, and optionally the
/// message deleted once the code expired (Telegram deletes only messages under 48 h old).
public struct TelegramSinkSettings: SinkBuilding {
    public static let type = "telegram"
    /// Telegram's bot FAQ: about one message a second per chat, short bursts allowed (20 a
    /// minute in groups, about 30 a second in all).
    public static let defaults = SinkDefaults(rateLimit: 1, burst: 5)

    /// The bot's token (`123456:ABC…`) is a credential: it is part of every request's URL.
    public var botToken: Secret
    /// Numeric ids (`-100…` for groups and channels) or `@channelname`.
    public var chatIDs: [String]
    public var text: MessageTemplate
    public var copyButton: Bool
    public var retract: Bool
    /// `https://api.telegram.org` unless overridden (a local Bot API server, tests).
    public var baseURL: String

    public static func decode(_ section: ConfigSection) -> TelegramSinkSettings? {
        let path = section.path
        var token: String?
        if section.require("bot_token"), let value = section.nonEmptyString("bot_token") {
            token = value
            if !section.variablesMissing, !isBotToken(value) {
                section.fail("bot_token", "\(path).bot_token does not look like a bot token (digits, a colon, then letters; ask @BotFather)")
            }
        }
        var chats: [String]?
        if section.require("chat_id"), let list = section.stringList("chat_id") {
            chats = list.map { $0.trimmingCharacters(in: .whitespaces) }
            if list.isEmpty { section.fail("chat_id", "\(path).chat_id names no chat") }
            for chat in chats ?? [] where !isChatID(chat) {
                section.fail("chat_id", "\(path).chat_id \(section.shown("chat_id", chat)) is neither a numeric chat id nor @channelname")
            }
        }
        let text = section.has("text") ? section.template("text", escaping: .telegram) : DefaultTemplates.telegram
        let copy = section.has("copy_button") ? section.bool("copy_button") : false
        let retract = RetractSetting.decode(section)
        var baseURL: String? = "https://api.telegram.org"
        if section.has("base_url") { baseURL = section.url("base_url").map(URLPath.trimmed) }
        guard let token, let chats, !chats.isEmpty, let text, let copy, let retract, let baseURL else { return nil }
        return TelegramSinkSettings(botToken: Secret(token), chatIDs: chats, text: text, copyButton: copy, retract: retract, baseURL: baseURL)
    }

    static func isBotToken(_ token: String) -> Bool {
        let parts = token.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && parts[0].allSatisfy(\.isASCII) && parts[0].allSatisfy(\.isNumber)
            && !parts[1].isEmpty && parts[1].allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
    }

    static func isChatID(_ chat: String) -> Bool {
        if chat.hasPrefix("@") { return chat.count > 1 && chat.dropFirst().allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") } }
        return Int64(chat) != nil
    }

    public func preview(_ context: TemplateContext, event: Event) -> String {
        var text = "to \(chatIDs.joined(separator: ", ")): " + self.text.render(context)
        if copyButton, let otp = event.otp { text += "\n[Copy code: \(otp)]" }
        if retract { text += "\n(deleted when the code expires)" }
        return text
    }

    public func makeSink(_ config: SinkConfig, context: SinkContext) -> any Sink {
        TelegramSink(name: config.name, settings: self, timeout: config.timeout, client: context.client)
    }

    /// Telegram answers `{"ok":true,"result":Message}` or `{"ok":false,"error_code":N,
    /// "description":"…","parameters":{…}}`. 429 carries `parameters.retry_after` (seconds, also
    /// sent as `Retry-After`); 401 (bad token), 403 (blocked, kicked) and 400 (chat not found,
    /// can't parse entities, a group that became a supergroup) are permanent. The receipt is
    /// `chat id:message id`, what `deleteMessage` needs.
    public static let rules = ClassificationRules(
        service: "Telegram: ",
        failureReason: { status, body in
            let json = ChatJSON.object(body)
            var reason = "Telegram HTTP \(status)"
            if let description = json?["description"] as? String { reason += ": \(description.prefix(200))" }
            if let parameters = json?["parameters"] as? [String: Any], let newID = ChatJSON.id(parameters["migrate_to_chat_id"]) {
                reason += " (the group is now a supergroup: set chat_id to \(newID))"
            }
            if status == 401 { reason += " (the bot token was rejected)" }
            return reason
        },
        delivered: { status, body in
            let result = ChatJSON.object(body)?["result"] as? [String: Any]
            let messageID = ChatJSON.id(result?["message_id"])
            let chatID = ChatJSON.id((result?["chat"] as? [String: Any])?["id"])
            guard let messageID, let chatID else { return ("Telegram HTTP \(status)", nil) }
            return ("Telegram message \(messageID)", "\(chatID):\(messageID)")
        },
        wait: { _, _, body in
            let parameters = ChatJSON.object(body)?["parameters"] as? [String: Any]
            return ChatJSON.number(parameters?["retry_after"]).map(Duration.fractionalSeconds)
        }
    )
}
