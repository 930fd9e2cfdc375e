import Foundation
import HeraldCore

/// `type: twilio`: SMS to backup phones through Twilio's Messages API, one delivery per recipient.
public struct TwilioSinkSettings: SinkBuilding {
    public static let type = "twilio"

    public enum Credentials: Sendable {
        case authToken(Secret)
        case apiKey(sid: String, secret: Secret)
    }

    public enum Sender: Sendable, Equatable {
        case number(String)
        case messagingService(String)
    }

    public var accountSID: String
    public var credentials: Credentials
    public var sender: Sender
    /// Normalized numbers.
    public var to: [String]
    public var body: MessageTemplate
    /// `https://api.twilio.com` unless overridden (tests, regional edges).
    public var baseURL: String

    public var smsSender: String? {
        if case .number(let number) = sender { return number }
        return nil
    }

    public var smsRecipients: [String] { to }

    public static func decode(_ section: ConfigSection) -> TwilioSinkSettings? {
        let path = section.path
        let sid = section.require("account_sid") ? section.nonEmptyString("account_sid") : nil
        var credentials: Credentials?
        switch (section.has("auth_token"), section.has("api_key_sid"), section.has("api_key_secret")) {
        case (true, false, false):
            credentials = section.nonEmptyString("auth_token").map { .authToken(Secret($0)) }
        case (false, true, true):
            if let key = section.nonEmptyString("api_key_sid"), let secret = section.nonEmptyString("api_key_secret") {
                credentials = .apiKey(sid: key, secret: Secret(secret))
            }
        default:
            section.fail(nil, "\(path) needs either `auth_token`, or `api_key_sid` and `api_key_secret`")
        }
        var sender: Sender?
        switch (section.has("from"), section.has("messaging_service_sid")) {
        case (true, false):
            sender = section.nonEmptyString("from").map { .number(PhoneNumber.normalize($0)) }
        case (false, true):
            sender = section.nonEmptyString("messaging_service_sid").map { .messagingService($0) }
        default:
            section.fail(nil, "\(path) needs exactly one of `from` and `messaging_service_sid`")
        }
        let to = section.require("to") ? section.stringList("to") : nil
        let body = section.has("body") ? section.template("body", escaping: .text) : DefaultTemplates.sms
        var baseURL: String? = "https://api.twilio.com"
        if section.has("base_url") {
            baseURL = section.url("base_url").map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        }
        guard let sid, let credentials, let sender, let to, let body, let baseURL else { return nil }
        return TwilioSinkSettings(accountSID: sid, credentials: credentials, sender: sender, to: to.map(PhoneNumber.normalize), body: body, baseURL: baseURL)
    }

    public func preview(_ context: TemplateContext, event: Event) -> String {
        "SMS to \(to.map(PhoneNumber.masked).joined(separator: ", ")): " + body.render(context)
    }

    public func makeSink(_ config: SinkConfig, context: SinkContext) -> any Sink {
        TwilioSMSSink(name: config.name, settings: self, timeout: config.timeout, client: context.client, ownNumbers: context.ownNumbers)
    }

    /// Twilio answers `201` with the message, or `{"code": 21211, "message": "…", "status": 400}`.
    /// Its error 20429 is temporary whatever the status; every other error is permanent, with
    /// Twilio's code and message kept for the audit trail. The message SID is the receipt.
    public static let rules = ClassificationRules(
        failureReason: { status, body in
            let answer = Answer(body)
            var reason = "Twilio HTTP \(status)"
            if let code = answer?.code { reason += ", error \(code)" }
            if let message = answer?.message { reason += ": \(message.prefix(200))" }
            return reason
        },
        retryable: { _, body in Answer(body)?.code == 20429 },
        delivered: { status, body in
            let sid = Answer(body)?.sid
            return (sid.map { "Twilio \($0)" } ?? "Twilio HTTP \(status)", sid)
        }
    )

    /// The fields of Twilio's JSON answer the rules read; nil when the body is not JSON.
    /// (`JSONDecoder` over this struct, not `JSONSerialization`: every delivered SMS reads its
    /// SID, and building a dictionary of bridged objects for one field cost ~1 % of Herald's CPU
    /// under load.)
    struct Answer: Decodable {
        var sid: String?
        var code: Int?
        var message: String?

        init?(_ body: String) {
            guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(body.utf8)) else { return nil }
            self = answer
        }

        /// A field of another type than Twilio's is absent, not a reason to drop the others.
        init(from decoder: any Decoder) throws {
            let fields = try decoder.container(keyedBy: CodingKeys.self)
            sid = try? fields.decode(String.self, forKey: .sid)
            code = try? fields.decode(Int.self, forKey: .code)
            message = try? fields.decode(String.self, forKey: .message)
        }

        enum CodingKeys: String, CodingKey { case sid, code, message }
    }
}
