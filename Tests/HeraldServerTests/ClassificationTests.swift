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
        (408, "retry"), (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry"), (504, "retry"),
    ])
    func httpStatus(_ status: Int, _ expected: String) {
        #expect(HTTPResponseClassifier.classify(status: status, retryAfter: nil, body: "", now: Self.now).label == expected)
    }

    @Test("Slack answer → outcome", arguments: [
        (200, "ok", DeliveryOutcome.delivered(detail: "Slack: ok")),
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
        let outcome = HTTPResponseClassifier.classify(status: 429, retryAfter: header, body: "", now: Self.now)
        #expect(outcome == .retry(after: .seconds(90), reason: "HTTP 429"))
    }

    @Test(arguments: [
        ("120", Duration?.some(.seconds(120))), ("0", .some(.zero)), ("  7 ", .some(.seconds(7))),
        ("Wed, 21 Oct 2015 07:28:00 GMT", .some(.zero)), ("soon", nil), ("-5", nil),
    ])
    func retryAfterForms(_ header: String, _ expected: Duration?) {
        #expect(HTTPResponseClassifier.parseRetryAfter(header, now: Self.now) == expected)
    }

    @Test func serverErrorWithRetryAfter() {
        #expect(HTTPResponseClassifier.classify(status: 503, retryAfter: "5", body: "maintenance", now: Self.now)
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
    guard case .http(let settings) = config.sinks[0].settings else { throw TestFailure("not http") }
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
