import Foundation
import HeraldCore

/// `type: pushover`: a Pushover notification whose `ttl` is the code's remaining life, so it
/// disappears from the devices when the code expires (Pushover has no delete call).
public struct PushoverSinkSettings: SinkBuilding {
    public static let type = "pushover"
    /// Pushover asks for at most two connections at once; its quota is monthly, not per second.
    public static let defaults = SinkDefaults(concurrency: 2)

    public var appToken: Secret
    /// A user or group key (a comma-separated list of up to 50 is allowed by Pushover).
    public var userKey: Secret
    public var title: MessageTemplate
    public var message: MessageTemplate
    /// −2 … 1 (2, emergency, needs acknowledgement settings Herald does not send).
    public var priority: Int?
    /// `https://api.pushover.net` unless overridden (tests).
    public var baseURL: String

    public static func decode(_ section: ConfigSection) -> PushoverSinkSettings? {
        let path = section.path
        var app: String?
        if section.require("app_token"), let value = section.nonEmptyString("app_token") {
            app = value
            if !section.variablesMissing, !isKey(value) {
                section.fail("app_token", "\(path).app_token must be Pushover's 30-character application token (letters and digits)")
            }
        }
        var user: String?
        if section.require("user_key"), let value = section.nonEmptyString("user_key") {
            user = value
            if !section.variablesMissing, !value.split(separator: ",").allSatisfy({ isKey(String($0)) }) {
                section.fail("user_key", "\(path).user_key must be a 30-character user or group key (or a comma-separated list of them)")
            }
        }
        let title = section.has("title") ? section.template("title", escaping: .text) : DefaultTemplates.notificationTitle
        let message = section.has("message") ? section.template("message", escaping: .text) : DefaultTemplates.notificationText
        var priority: Int?
        var priorityOK = true
        if section.has("priority") {
            priority = section.int("priority", range: -2...1)
            priorityOK = priority != nil
        }
        var baseURL: String? = "https://api.pushover.net"
        if section.has("base_url") { baseURL = section.url("base_url").map(URLPath.trimmed) }
        guard let app, let user, let title, let message, priorityOK, let baseURL else { return nil }
        return PushoverSinkSettings(appToken: Secret(app), userKey: Secret(user), title: title, message: message, priority: priority, baseURL: baseURL)
    }

    static func isKey(_ key: String) -> Bool {
        key.count == 30 && key.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }
    }

    public func preview(_ context: TemplateContext, event: Event) -> String {
        title.render(context) + "\n" + message.render(context) + "\n(removed from devices when the code expires)"
    }

    public func makeSink(_ config: SinkConfig, context: SinkContext) -> any Sink {
        PushoverSink(name: config.name, settings: self, timeout: config.timeout, client: context.client)
    }

    /// Pushover answers `{"status":1,"request":"…"}`; a 4xx (`{"errors":[…],"status":0}`) is
    /// permanent ("repeating your same request will not work"); 429 means the monthly quota is
    /// spent until `X-Limit-App-Reset`; a 5xx is retried, no sooner than 5 s.
    public static let rules = ClassificationRules(
        service: "Pushover: ",
        failureReason: { status, body in
            let json = ChatJSON.object(body)
            var reason = "Pushover HTTP \(status)"
            if let errors = json?["errors"] as? [Any], !errors.isEmpty {
                reason += ": " + errors.map { "\($0)" }.joined(separator: "; ").prefix(200)
            }
            if status == 429 { reason += " (the application's monthly message quota is spent)" }
            return reason
        },
        delivered: { status, body in
            let request = ChatJSON.object(body)?["request"] as? String
            return (request.map { "Pushover request \($0)" } ?? "Pushover HTTP \(status)", request)
        },
        wait: { status, headers, _ in
            if status == 429, let reset = headers["x-limit-app-reset"].flatMap(Double.init) {
                return .fractionalSeconds(reset - Date().timeIntervalSince1970)
            }
            return (500..<600).contains(status) ? .seconds(5) : nil
        }
    )

    static let keptHeaders = ["x-limit-app-reset"]
}
