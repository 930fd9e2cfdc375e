import AsyncHTTPClient
import Foundation
import HeraldCore
import NIOHTTP1

/// SMS through Twilio's Messages API, one delivery per recipient, so one bad number never stops
/// the others. `ValidityPeriod` is the code's remaining life: Twilio itself drops an SMS it could
/// not send in time.
public struct TwilioSMSSink: Sink {
    /// Twilio's limit for `Body`.
    static let maxBody = 1600

    public let name: String
    let settings: TwilioSinkSettings
    let timeout: Duration
    let transport: HTTPTransport
    /// Numbers our own Twilio sinks send from (loop guard).
    let ownNumbers: Set<String>
    let now: @Sendable () -> Date
    /// Made once: the same for every attempt.
    let authorization: String
    let messagesURL: String

    public init(name: String, settings: TwilioSinkSettings, timeout: Duration, client: HTTPClient, ownNumbers: Set<String>,
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.name = name
        self.settings = settings
        self.timeout = timeout
        self.transport = HTTPTransport(client: client)
        self.ownNumbers = ownNumbers
        self.now = now
        self.authorization = Self.authorization(settings)
        self.messagesURL = "\(settings.baseURL)/2010-04-01/Accounts/\(settings.accountSID)/Messages.json"
    }

    public var recipients: [String] { settings.to }

    /// The form fields of one attempt, in the order they are sent.
    public func form(for request: DeliveryRequest) -> [(String, String)] {
        let body = settings.body.render(request.templateContext).cut(to: Self.maxBody)
        var fields: [(String, String)] = [("To", request.delivery.recipient ?? "")]
        switch settings.sender {
        case .number(let number): fields.append(("From", number))
        case .messagingService(let sid): fields.append(("MessagingServiceSid", sid))
        }
        fields.append(("Body", body))
        let remaining = Int(request.delivery.expiresAt.timeIntervalSince(now()).rounded(.down))
        fields.append(("ValidityPeriod", String(min(max(remaining, 1), 36_000))))
        return fields
    }

    static func authorization(_ settings: TwilioSinkSettings) -> String {
        let pair: String
        switch settings.credentials {
        case .authToken(let token): pair = settings.accountSID + ":" + token.value
        case .apiKey(let sid, let secret): pair = sid + ":" + secret.value
        }
        return "Basic " + Data(pair.utf8).base64EncodedString()
    }

    public func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome {
        if ownNumbers.contains(PhoneNumber.normalize(request.event.from)) {
            return .skipped(reason: "loop guard: the message came from \(PhoneNumber.masked(request.event.from)), a number Herald sends from")
        }
        guard request.delivery.recipient?.isEmpty == false else { return .permanent(reason: "no recipient") }
        let body = Data(FormText.encode(form(for: request)).utf8)
        let report = await transport.send(
            url: messagesURL, method: .POST,
            headers: [("Authorization", authorization), ("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json")],
            body: body, timeout: timeout
        )
        return Classifier.classify(report, rules: TwilioSinkSettings.rules)
    }

    /// What an answer from Twilio means (`TwilioSinkSettings.rules`).
    public static func classify(status: Int, retryAfter: String?, body: String, now: Date = Date()) -> DeliveryOutcome {
        Classifier.classify(.http(status: status, retryAfter: retryAfter, body: body), rules: TwilioSinkSettings.rules, now: now)
    }


}
