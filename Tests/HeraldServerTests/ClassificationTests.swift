import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldSinks
import HeraldTesting
import Testing

@Suite("Response classification")
struct ClassificationTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("HTTP status → outcome", arguments: [
        (200, "delivered"), (201, "delivered"), (204, "delivered"),
        (301, "permanent"), (400, "permanent"), (401, "permanent"), (403, "permanent"), (404, "permanent"), (422, "permanent"),
        (408, "retry"), (425, "retry"), (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry"), (504, "retry"),
    ])
    func httpStatus(_ status: Int, _ expected: String) {
        #expect(Classifier.classify(.http(status: status, retryAfter: nil, body: ""), now: Self.now).label == expected)
    }

    @Test("Slack answer → outcome", arguments: [
        (200, "ok", DeliveryOutcome.delivered(detail: "Slack: ok")),
        (200, " ok\n", .delivered(detail: "Slack: ok")),
        (200, "", .delivered(detail: "Slack: ok")),
        (200, "accepted", .delivered(detail: "Slack: accepted")),
        (400, "invalid_payload", .permanent(reason: "Slack: HTTP 400: invalid_payload")),
        (400, "no_text", .permanent(reason: "Slack: HTTP 400: no_text")),
        (400, "user_not_found", .permanent(reason: "Slack: HTTP 400: user_not_found")),
        (403, "action_prohibited", .permanent(reason: "Slack: HTTP 403: action_prohibited")),
        (403, "invalid_token", .permanent(reason: "Slack: HTTP 403: invalid_token")),
        (404, "channel_not_found", .permanent(reason: "Slack: the webhook is gone (HTTP 404: channel_not_found)")),
        (404, "no_service", .permanent(reason: "Slack: the webhook is gone (HTTP 404: no_service)")),
        (404, "no_active_hooks", .permanent(reason: "Slack: the webhook is gone (HTTP 404: no_active_hooks)")),
        (410, "channel_is_archived", .permanent(reason: "Slack: the webhook is gone (HTTP 410: channel_is_archived)")),
        (500, "rollup_error", .retry(after: nil, reason: "Slack: HTTP 500: rollup_error")),
        (503, "", .retry(after: nil, reason: "Slack: HTTP 503")),
    ])
    func slack(_ status: Int, _ body: String, _ expected: DeliveryOutcome) {
        #expect(SlackSink.classify(status: status, retryAfter: nil, body: body, now: Self.now) == expected)
    }

    @Test func slack429UsesRetryAfterSeconds() {
        let outcome = SlackSink.classify(status: 429, retryAfter: "30", body: "rate_limited", now: Self.now)
        #expect(outcome == .retry(after: .seconds(30), reason: "Slack: HTTP 429: rate_limited"))
    }

    @Test func http429UsesRetryAfterDate() {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let header = formatter.string(from: Self.now.addingTimeInterval(90))
        let outcome = Classifier.classify(.http(status: 429, retryAfter: header, body: ""), now: Self.now)
        #expect(outcome == .retry(after: .seconds(90), reason: "HTTP 429"))
    }

    @Test(arguments: [
        ("120", Duration?.some(.seconds(120))), ("0", .some(.zero)), ("  7 ", .some(.seconds(7))),
        ("Wed, 21 Oct 2015 07:28:00 GMT", .some(.zero)), ("soon", nil), ("-5", nil),
        // Absurd values from a receiver saturate instead of trapping a conversion.
        ("Fri, 31 Dec 9999 23:59:59 GMT", .some(.milliseconds(253_402_300_799_000 - 1_800_000_000_000))),
        ("99999999999999999999999", nil),
    ])
    func retryAfterForms(_ header: String, _ expected: Duration?) {
        #expect(Classifier.parseRetryAfter(header, now: Self.now) == expected)
    }

    @Test func serverErrorWithRetryAfter() {
        #expect(Classifier.classify(.http(status: 503, retryAfter: "5", body: "maintenance"), now: Self.now)
            == .retry(after: .seconds(5), reason: "HTTP 503: maintenance"))
    }

    @Test func timeoutIsRetried() async throws {
        let receiver = try await FakeReceiver.start(fallback: .hang)
        let sink = HTTPSink(name: "audit", settings: try httpSettings(receiver.url("/hook")), timeout: .milliseconds(200), client: SinkHTTPClient.shared)
        let outcome = await sink.deliver(sampleRequest())
        await receiver.stop()
        #expect(outcome == .retry(after: nil, reason: "timed out after 200ms"))
    }

    @Test func connectionRefusedIsRetried() async throws {
        let url = "http://127.0.0.1:\(try await freeLoopbackPort())/hook"
        let sink = HTTPSink(name: "audit", settings: try httpSettings(url), timeout: .seconds(2), client: SinkHTTPClient.shared)
        let outcome = await sink.deliver(sampleRequest())
        #expect(outcome == .retry(after: nil, reason: "connection refused"))
    }
}

func httpSettings(_ url: String, extra: String = "") throws -> HTTPSinkSettings {
    let config = try ConfigLoader.parse("""
        sinks:
          audit:
            type: http
            url: "\(url)"
        \(extra)
        routes: [ { deliver: [audit] } ]
        """)
    guard let settings = config.sinks[0].settings as? HTTPSinkSettings else { throw TestFailure("not http") }
    return settings
}

func sampleRequest(body: String = "Your code is 123456", deliveryID: String = "dlv_test") -> DeliveryRequest {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let event = Event(id: "evt_test", source: "twilio", sourceID: "SM1", from: "+15551234567", to: "+15557654321",
                      body: body, otp: OTPExtractor.extract(from: body), app: "AWS", route: "all", receivedAt: now)
    let delivery = Delivery(id: deliveryID, eventID: event.id, sink: "audit", route: "all", app: "AWS",
                            nextAttemptAt: now, expiresAt: now.addingTimeInterval(600), createdAt: now)
    return DeliveryRequest(event: event, delivery: delivery)
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One classifier with per-sink rules: Twilio now retries 408 and 425 like every other sink.
@Suite("Classifier rules per sink")
struct ClassifierRuleTests {
    @Test("Twilio answer → outcome", arguments: [
        (201, #"{"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}"#, DeliveryOutcome.delivered(detail: "Twilio SM0123456789abcdef0123456789abcdef", receipt: "SM0123456789abcdef0123456789abcdef")),
        (400, #"{"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}"#, .permanent(reason: "Twilio HTTP 400, error 21211: Invalid 'To' Phone Number")),
        (400, #"{"code": 20429, "message": "Too Many Requests", "status": 400}"#, .retry(reason: "Twilio HTTP 400, error 20429: Too Many Requests")),
        (401, #"{"code": 20003, "message": "Authenticate"}"#, .permanent(reason: "Twilio HTTP 401, error 20003: Authenticate")),
        (400, #"{"code": "21211", "message": "Invalid 'To' Phone Number", "more_info": null}"#, .permanent(reason: "Twilio HTTP 400: Invalid 'To' Phone Number")),
        (201, #"{"sid": 42, "status": "queued"}"#, .delivered(detail: "Twilio HTTP 201", receipt: nil)),
        (201, "not json", .delivered(detail: "Twilio HTTP 201", receipt: nil)),
        (408, "", .retry(reason: "Twilio HTTP 408")),
        (425, "", .retry(reason: "Twilio HTTP 425")),
        (429, "", .retry(reason: "Twilio HTTP 429")),
        (503, "<html>", .retry(reason: "Twilio HTTP 503")),
    ])
    func twilio(_ status: Int, _ body: String, _ expected: DeliveryOutcome) {
        #expect(TwilioSMSSink.classify(status: status, retryAfter: nil, body: body) == expected)
    }

    @Test("every sink retries the same statuses", arguments: [408, 425, 429, 500, 502, 503, 504])
    func sharedRetryStatuses(_ status: Int) {
        for rules in [ClassificationRules.standard, SlackSinkSettings.rules, TwilioSinkSettings.rules] {
            #expect(Classifier.classify(.http(status: status, retryAfter: "3", body: "busy"), rules: rules).label == "retry")
            if case .retry(let after, _) = Classifier.classify(.http(status: status, retryAfter: "3", body: "busy"), rules: rules) {
                #expect(after == .seconds(3), "Retry-After is honoured for every sink")
            }
        }
    }

    @Test("SMTP and transport reports", arguments: [
        (SinkReport.smtp(code: 250, reply: "OK"), DeliveryOutcome.delivered(detail: "SMTP 250")),
        (.smtp(code: 451, reply: "try later"), .retry(reason: "SMTP 451: try later")),
        (.smtp(code: 550, reply: "no such user"), .permanent(reason: "SMTP 550: no such user")),
        (.transport("connection refused"), .retry(reason: "connection refused")),
        (.refused("SMTP authentication failed"), .permanent(reason: "SMTP authentication failed")),
    ])
    func otherReports(_ report: SinkReport, _ expected: DeliveryOutcome) {
        #expect(Classifier.classify(report) == expected)
    }
}
