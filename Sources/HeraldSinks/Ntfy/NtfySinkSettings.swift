import Foundation
import HeraldCore

/// `type: ntfy`: a push notification on an ntfy topic (ntfy.sh or your own server), published as
/// JSON to the server's root so that no header has to carry the SMS.
public struct NtfySinkSettings: SinkBuilding {
    public static let type = "ntfy"
    /// ntfy's default visitor limit: a burst of 60, then one message every 5 s.
    public static let defaults = SinkDefaults(rateLimit: 0.2, burst: 60)

    /// Where messages are published (`https://ntfy.sh/`) and the topic (`my-codes`): the topic URL
    /// split at its last `/`. On ntfy.sh a topic without access control is readable by anyone who
    /// knows its name, so the URL is a secret too.
    public var root: Secret
    public var topic: Secret
    /// An access token (`tk_…`), sent as a bearer token.
    public var token: Secret?
    public var title: MessageTemplate
    public var message: MessageTemplate
    /// 1 (min) to 5 (max); Herald's default is 4 (high): a code is worth a heads-up notification.
    public var priority: Int
    public var tags: [String]
    /// A "Copy code" action button (ntfy servers with the `copy` action, 2026 and later).
    public var copyButton: Bool

    static let priorities = ["min": 1, "low": 2, "default": 3, "high": 4, "max": 5, "urgent": 5]

    public static func decode(_ section: ConfigSection) -> NtfySinkSettings? {
        let path = section.path
        var split: (String, String)?
        if section.require("url"), let url = section.url("url") {
            let trimmed = URLPath.trimmed(url)
            if let slash = trimmed.lastIndex(of: "/"), let components = URLComponents(string: trimmed),
               !(components.path.isEmpty || components.path == "/"), components.query == nil {
                let topic = String(trimmed[trimmed.index(after: slash)...])
                if topic.isEmpty || !topic.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) {
                    section.fail("url", "\(path).url must end in a topic name (letters, digits, - and _)")
                } else {
                    split = (String(trimmed[...slash]), topic)
                }
            } else {
                section.fail("url", "\(path).url must be the topic's URL, like https://ntfy.sh/my-topic")
            }
        }
        var token: Secret?
        if section.hasValue("token"), let value = section.nonEmptyString("token") { token = Secret(value) }
        let title = section.has("title") ? section.template("title", escaping: .text) : DefaultTemplates.notificationTitle
        let message = section.has("message") ? section.template("message", escaping: .text) : DefaultTemplates.notificationText
        var priority: Int? = 4
        if section.has("priority") {
            if let word = section.string("priority"), let value = priorities[word.lowercased()] ?? Int(word), (1...5).contains(value) {
                priority = value
            } else {
                section.fail("priority", "\(path).priority must be 1–5 or min, low, default, high, max")
                priority = nil
            }
        }
        let tags = section.has("tags") ? section.stringList("tags") : []
        let copy = section.has("copy_button") ? section.bool("copy_button") : false
        guard let split, let title, let message, let priority, let tags, let copy else { return nil }
        return NtfySinkSettings(root: Secret(split.0), topic: Secret(split.1), token: token, title: title, message: message,
                                priority: priority, tags: tags, copyButton: copy)
    }

    public func preview(_ context: TemplateContext, event: Event) -> String {
        var text = title.render(context) + "\n" + message.render(context)
        if copyButton, let otp = event.otp { text += "\n[Copy code: \(otp)]" }
        return text
    }

    public func makeSink(_ config: SinkConfig, context: SinkContext) -> any Sink {
        NtfySink(name: config.name, settings: self, timeout: config.timeout, client: context.client)
    }

    /// ntfy answers the message (`id`), or `{"code":42901,"http":429,"error":"…"}`. Its 429 has no
    /// `Retry-After`, so the retry policy's backoff decides; 401/403 (token, access), 413 (too
    /// large) and 400 (a bad field) are permanent.
    public static let rules = ClassificationRules(
        service: "ntfy: ",
        failureReason: { status, body in
            let json = ChatJSON.object(body)
            var reason = "ntfy HTTP \(status)"
            if let code = ChatJSON.id(json?["code"]) { reason += ", code \(code)" }
            if let error = json?["error"] as? String { reason += ": \(error.prefix(200))" }
            return reason
        },
        delivered: { status, body in
            let id = ChatJSON.id(ChatJSON.object(body)?["id"])
            return (id.map { "ntfy message \($0)" } ?? "ntfy HTTP \(status)", id)
        }
    )
}
