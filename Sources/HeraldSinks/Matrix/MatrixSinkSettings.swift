import Foundation
import HeraldCore

/// `type: matrix`: an `m.text` message in a room, sent with the delivery id as its transaction id
/// (a retry is never a second message), optionally redacted once the code expired.
public struct MatrixSinkSettings: SinkBuilding {
    public static let type = "matrix"
    /// Synapse's default message limit: a burst of 10, then one every 5 s.
    public static let defaults = SinkDefaults(rateLimit: 0.2, burst: 10)

    /// `https://matrix.example.org`: the client-server API's base.
    public var homeserver: String
    public var accessToken: Secret
    /// `!opaque:example.org` (an alias `#room:server` cannot be sent to).
    public var roomID: String
    /// The plain `body`; `html` the `formatted_body` (both default; a custom `text` without
    /// `html` sends plain text only).
    public var text: MessageTemplate
    public var html: MessageTemplate?
    public var retract: Bool

    public static func decode(_ section: ConfigSection) -> MatrixSinkSettings? {
        let path = section.path
        let homeserver = section.require("homeserver") ? section.url("homeserver").map(URLPath.trimmed) : nil
        var token: String?
        if section.require("access_token") { token = section.nonEmptyString("access_token") }
        var room: String?
        if section.require("room_id"), let value = section.nonEmptyString("room_id") {
            if value.hasPrefix("!"), value.contains(":") || value.count > 1 {
                room = value
            } else {
                section.fail("room_id", "\(path).room_id must be the room's id (!…:server, in the room's settings under Advanced), not \(section.shown("room_id", value))")
            }
        }
        var text: MessageTemplate? = DefaultTemplates.matrixText
        var html: MessageTemplate? = section.has("text") ? nil : DefaultTemplates.matrixHTML
        var htmlOK = true
        if section.has("text") { text = section.template("text", escaping: .text) }
        if section.has("html") {
            html = section.template("html", escaping: .htmlLines)
            htmlOK = html != nil
        }
        let retract = RetractSetting.decode(section)
        guard let homeserver, let token, let room, let text, htmlOK, let retract else { return nil }
        return MatrixSinkSettings(homeserver: homeserver, accessToken: Secret(token), roomID: room, text: text, html: html, retract: retract)
    }

    public func preview(_ context: TemplateContext, event: Event) -> String {
        "to \(roomID): " + text.render(context) + (retract ? "\n(redacted when the code expires)" : "")
    }

    public func makeSink(_ config: SinkConfig, context: SinkContext) -> any Sink {
        MatrixSink(name: config.name, settings: self, timeout: config.timeout, client: context.client)
    }

    /// Matrix answers `{"event_id":"$…"}`, or `{"errcode":"M_…","error":"…"}`: 401
    /// `M_UNKNOWN_TOKEN`, 403 `M_FORBIDDEN` (not joined, no power), 400 `M_BAD_JSON`, 413
    /// `M_TOO_LARGE` are permanent; 429 `M_LIMIT_EXCEEDED` waits `Retry-After`, else
    /// `retry_after_ms`.
    public static let rules = ClassificationRules(
        service: "Matrix: ",
        failureReason: { status, body in
            let json = ChatJSON.object(body)
            var reason = "Matrix HTTP \(status)"
            if let code = json?["errcode"] as? String { reason += ", \(code.prefix(40))" }
            if let error = json?["error"] as? String { reason += ": \(error.prefix(200))" }
            return reason
        },
        delivered: { status, body in
            let id = ChatJSON.object(body)?["event_id"] as? String
            return (id.map { "Matrix event \($0)" } ?? "Matrix HTTP \(status)", id)
        },
        wait: { _, headers, body in
            guard headers["retry-after"] == nil else { return nil }
            return ChatJSON.number(ChatJSON.object(body)?["retry_after_ms"]).map { .fractionalSeconds($0 / 1000) }
        }
    )

    static let keptHeaders = ["retry-after"]
}
