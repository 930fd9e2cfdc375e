import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldTesting
import NIOHTTP1
import Testing

/// The whole service through `buildApplication`, on a loopback port, with fake Slack and HTTP
/// receivers from `HeraldTesting`.
@Suite("Integration")
struct IntegrationTests {
    static func config(slack: String, audit: String, retry: String = "{ max_attempts: 3, initial_backoff: 50ms, max_backoff: 200ms }", slackTimeout: String = "30s") -> String {
        """
        server: { listen: "127.0.0.1:0", public_url: "\(TestServer.publicURL)" }
        sources:
          twilio: { auth_token: \(TestServer.twilioToken) }
          http: { token: \(TestServer.inboundToken) }
        defaults: { expire_after: 10m, retry: \(retry) }
        sinks:
          team-slack: { type: slack, webhook_url: "\(slack)", timeout: \(slackTimeout) }
          audit:
            type: http
            url: "\(audit)"
            headers: { Authorization: "Bearer audit-token" }
            timeout: 30s
            signing_secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
        routes:
          - name: aws
            match: { body: "(?i)aws" }
            app: AWS
            deliver: [team-slack, audit]
          - name: rest
            deliver: [audit]
        """
    }

    /// Starts fake Slack and audit receivers and Herald; stops all three after `body`.
    static func withHerald(
        slack slackReplies: [FakeReceiver.Reply] = [], slackFallback: FakeReceiver.Reply = .ok,
        retry: String? = nil, slackTimeout: String = "30s",
        _ body: (TestServer, FakeReceiver, FakeReceiver) async throws -> Void
    ) async throws {
        let slack = try await FakeReceiver.start(script: slackReplies, fallback: slackFallback)
        let audit = try await FakeReceiver.start()
        let yaml = retry.map { config(slack: slack.url("/services/T1/B1/secret"), audit: audit.url("/hooks/sms"), retry: $0, slackTimeout: slackTimeout) }
            ?? config(slack: slack.url("/services/T1/B1/secret"), audit: audit.url("/hooks/sms"), slackTimeout: slackTimeout)
        let server = try await TestServer.start(yaml)
        do {
            try await body(server, slack, audit)
        } catch {
            await slack.stop(); await audit.stop(); await server.stop()
            throw error
        }
        await slack.stop()
        await audit.stop()
        await server.stop()
    }

    static func waitForState(_ server: TestServer, sink: String, _ predicate: @escaping (Delivery) -> Bool) async throws -> Delivery {
        var last: Delivery?
        let ok = try await eventually {
            last = try await server.allDeliveries().first { $0.sink == sink }
            return last.map(predicate) ?? false
        }
        #expect(ok, "the \(sink) delivery never reached the expected state; last: \(String(describing: last))")
        return try #require(last)
    }

    @Test func signedWebhookReachesSlackAndHTTP() async throws {
        try await Self.withHerald { server, slack, audit in
            let answer = try await server.postTwilio(sms("Your AWS verification code is 482913", sid: "SM0001"))
            #expect(answer.status == 200)
            #expect(answer.contentType == "text/xml")
            #expect(answer.body == #"<?xml version="1.0" encoding="UTF-8"?><Response/>"#)

            let slackRequest = try #require(await slack.waitForRequests(1).first)
            #expect(slackRequest.path == "/services/T1/B1/secret")
            #expect(slackRequest.json?["text"] as? String == "*482913*  ·  AWS  ·  from +12344567890\nYour AWS verification code is 482913")

            let auditRequest = try #require(await audit.waitForRequests(1).first)
            #expect(auditRequest.header("Authorization") == "Bearer audit-token")
            let json = try #require(auditRequest.json)
            #expect(json["source"] as? String == "twilio")
            #expect(json["source_id"] as? String == twilioSID("SM0001"))
            #expect(json["from"] as? String == "+12344567890")
            #expect(json["to"] as? String == "+15005550006")
            #expect(json["otp"] as? String == "482913")
            #expect(json["app"] as? String == "AWS")
            #expect(json["route"] as? String == "aws")
            let deliveries = try await server.allDeliveries()
            #expect(auditRequest.header("webhook-id") == deliveries.first { $0.sink == "audit" }?.id)
            #expect(auditRequest.header("webhook-signature")?.hasPrefix("v1,") == true)
            _ = try await Self.waitForState(server, sink: "team-slack") { $0.state == .delivered }
        }
    }

    @Test func slack429WithRetryAfterIsDeliveredOnceAfterTheWait() async throws {
        try await Self.withHerald(slack: [.status(429, "rate_limited", headers: ["Retry-After": "1"])]) { server, slack, _ in
            #expect(try await server.postTwilio(sms()).status == 200)
            let requests = await slack.waitForRequests(2)
            #expect(requests.count == 2)
            let delivery = try await Self.waitForState(server, sink: "team-slack") { $0.state == .delivered }
            #expect(delivery.attempts == 2)
            let wait = requests[1].receivedAt.timeIntervalSince(requests[0].receivedAt)
            #expect(wait >= 0.95, "the retry came \(wait)s after the 429, before Retry-After")
            try await Task.sleep(for: .milliseconds(300))
            #expect(slack.requests.count == 2, "delivered exactly once")
        }
    }

    @Test func serverErrorForeverStopsAtMaxAttempts() async throws {
        try await Self.withHerald(slackFallback: .status(500, "rollup_error")) { server, slack, _ in
            #expect(try await server.postTwilio(sms()).status == 200)
            let delivery = try await Self.waitForState(server, sink: "team-slack") { $0.state == .failed }
            #expect(delivery.attempts == 3)
            #expect(delivery.lastError == "gave up after 3 attempts: Slack: HTTP 500: rollup_error")
            try await Task.sleep(for: .milliseconds(400))
            #expect(slack.requests.count == 3)
            let stored = try #require(try await server.store.event(id: delivery.eventID))
            #expect(stored.attempts.filter { $0.deliveryID == delivery.id }.map(\.detail) == Array(repeating: "Slack: HTTP 500: rollup_error", count: 3))
        }
    }

    @Test func invalidPayloadIsNotRetried() async throws {
        try await Self.withHerald(slack: [.status(400, "invalid_payload")]) { server, slack, _ in
            #expect(try await server.postTwilio(sms()).status == 200)
            let delivery = try await Self.waitForState(server, sink: "team-slack") { $0.state == .failed }
            #expect(delivery.attempts == 1)
            #expect(delivery.lastError == "Slack: HTTP 400: invalid_payload")
            try await Task.sleep(for: .milliseconds(400))
            #expect(slack.requests.count == 1)
        }
    }

    @Test func aHangingReceiverDoesNotDelayTheOtherSink() async throws {
        try await Self.withHerald(slackFallback: .hang, slackTimeout: "30s") { server, slack, audit in
            let started = ContinuousClock.now
            #expect(try await server.postTwilio(sms()).status == 200)
            await audit.waitForRequests(1, timeout: .seconds(5))
            #expect(audit.requests.count == 1)
            #expect(ContinuousClock.now - started < .seconds(10), "the audit delivery waited on the hanging Slack (30 s timeout)")
            await slack.waitForRequests(1)
            #expect(slack.requests.count == 1, "Slack got the request and is still holding it")
            let slackDelivery = try #require(try await server.allDeliveries().first { $0.sink == "team-slack" })
            #expect(slackDelivery.state == .inFlight)
            _ = try await Self.waitForState(server, sink: "audit") { $0.state == .delivered }
        }
    }

    @Test func duplicateMessageSidCreatesNothing() async throws {
        try await Self.withHerald { server, slack, audit in
            let message = sms(sid: "SMduplicate")
            let first = try await server.postTwilio(message)
            let second = try await server.postTwilio(message)
            #expect(first.status == 200)
            #expect(second.status == 200)
            #expect(second.body == first.body)
            await slack.waitForRequests(1)
            await audit.waitForRequests(1)
            try await Task.sleep(for: .milliseconds(300))
            #expect(slack.requests.count == 1)
            #expect(audit.requests.count == 1)
            #expect(try await server.allDeliveries().count == 2)
        }
    }

    @Test func missingAndWrongSignaturesStoreNothing() async throws {
        try await Self.withHerald { server, _, _ in
            let missing = try await server.postTwilio(sms(), signature: .some(nil))
            #expect(missing.status == 400)
            #expect(missing.body.contains("missing X-Twilio-Signature"))
            let wrong = try await server.postTwilio(sms(), signature: "L/OH5YylLD5NRKLltdqwSvS0BnU=")
            #expect(wrong.status == 403)
            let wrongToken = try await server.postTwilio(sms(), token: "other-token")
            #expect(wrongToken.status == 403)
            // Signed, then one parameter changed on the way.
            var tampered = sms()
            let signature = TwilioSignature.compute(url: TestServer.publicURL + "/twilio/sms", parameters: tampered.map { (name: $0.0, value: $0.1) }, authToken: TestServer.twilioToken)
            tampered[4].1 = "Your code is 000000"
            #expect(try await server.postTwilio(tampered, signature: signature).status == 403)
            #expect(try await server.allDeliveries().isEmpty)
        }
    }

    @Test func getWebhookIsVerifiedOverTheQuery() async throws {
        try await Self.withHerald { server, _, audit in
            let query = "?" + formEncode(sms("Your code is 123456", sid: "SMget"))
            let signature = TwilioSignature.compute(url: TestServer.publicURL + "/twilio/sms" + query, parameters: [], authToken: TestServer.twilioToken)
            let answer = try await server.request(.GET, "/twilio/sms" + query, headers: [("X-Twilio-Signature", signature)])
            #expect(answer.status == 200)
            let request = try #require(await audit.waitForRequests(1).first)
            #expect(request.json?["otp"] as? String == "123456")
            let bad = try await server.request(.GET, "/twilio/sms" + query + "&Extra=1", headers: [("X-Twilio-Signature", signature)])
            #expect(bad.status == 403)
        }
    }

    @Test func withoutPublicURLTheHostHeaderIsSigned() async throws {
        let audit = try await FakeReceiver.start()
        let server = try await TestServer.start("""
            sources: { twilio: { auth_token: \(TestServer.twilioToken) } }
            sinks: { audit: { type: http, url: "\(audit.url("/h"))" } }
            routes: [ { deliver: [audit] } ]
            """)
        let parameters = sms()
        let url = "http://127.0.0.1:\(server.port)/twilio/sms"
        let signature = TwilioSignature.compute(url: url, parameters: parameters.map { (name: $0.0, value: $0.1) }, authToken: TestServer.twilioToken)
        let answer = try await server.request(.POST, "/twilio/sms", headers: [("Content-Type", "application/x-www-form-urlencoded"), ("X-Twilio-Signature", signature)], body: formEncode(parameters))
        #expect(answer.status == 200)
        await audit.waitForRequests(1)
        #expect(audit.requests.count == 1)
        await audit.stop()
        await server.stop()
    }

    @Test func unroutedEventIsStored() async throws {
        let audit = try await FakeReceiver.start()
        let server = try await TestServer.start("""
            server: { public_url: "\(TestServer.publicURL)" }
            sources: { twilio: { auth_token: \(TestServer.twilioToken) } }
            sinks: { audit: { type: http, url: "\(audit.url("/h"))" } }
            routes: [ { match: { from: "+19999999999" }, deliver: [audit] } ]
            """)
        #expect(try await server.postTwilio(sms(sid: "SMunrouted")).status == 200)
        let events = try #require(await (server.store as? InMemoryOutboxStore)?.allEvents())
        #expect(events.count == 1)
        #expect(events.first?.route == nil)
        let stored = try #require(try await server.store.event(id: events[0].id))
        #expect(!stored.isRouted)
        #expect(audit.requests.isEmpty)
        await audit.stop()
        await server.stop()
    }

    @Test func twilioMediaURLsKeepTheirNumbersOrder() async throws {
        let server = try await TestServer.start("""
            server: { public_url: "\(TestServer.publicURL)" }
            sources: { twilio: { auth_token: \(TestServer.twilioToken) } }
            sinks: { inbox: { type: file, path: /dev/null } }
            routes: [ { match: { from: "+19999999999" }, deliver: [inbox] } ]
            """)
        let form = sms("A picture", sid: "SMmedia") + [
            ("NumMedia", "3"), ("MediaUrl10", "https://api.twilio.com/m/10"), ("MediaUrl1", "https://api.twilio.com/m/1"),
            ("MediaUrl0", "https://api.twilio.com/m/0"), ("MediaUrlX", "https://api.twilio.com/m/x"),
        ]
        #expect(try await server.postTwilio(form).status == 200)
        let events = try #require(await (server.store as? InMemoryOutboxStore)?.allEvents())
        #expect(events.first?.media == ["https://api.twilio.com/m/0", "https://api.twilio.com/m/1", "https://api.twilio.com/m/10"])
        await server.stop()
    }

    // MARK: POST /events

    @Test func jsonEventsNeedTheBearerToken() async throws {
        try await Self.withHerald { server, _, _ in
            let body = #"{"from": "+15551234567", "body": "code 123456"}"#
            let none = try await server.request(.POST, "/events", body: body)
            let wrong = try await server.request(.POST, "/events", headers: [("Authorization", "Bearer wrong")], body: body)
            let noScheme = try await server.request(.POST, "/events", headers: [("Authorization", TestServer.inboundToken)], body: body)
            let statuses: [Int] = [none.status, wrong.status, noScheme.status]
            #expect(statuses == [401, 401, 401])
            let stored = try await server.allDeliveries()
            #expect(stored.isEmpty)
        }
    }

    @Test(arguments: [
        ("not json", "the body is not valid JSON"),
        ("[1, 2]", "the body must be a JSON object"),
        (#"{"body": "x"}"#, #"missing \"from\""#),
        (#"{"from": "+1"}"#, #"missing \"body\""#),
        (#"{"from": 5, "body": "x"}"#, #"\"from\" must be a string"#),
        (#"{"from": "+1", "body": "x", "received_at": "yesterday"}"#, #"\"received_at\" must be an RFC 3339 time"#),
        (#"{"from": "+1", "body": "x", "received_at": "1726-01-01T00:00:00Z"}"#, #"\"received_at\" must be within the last 7 days"#),
        (#"{"from": "+1", "body": "x", "received_at": "2999-01-01T00:00:00Z"}"#, #"at most 5 minutes ahead"#),
        (#"{"from": "+1", "body": "x", "media": "http://x"}"#, #"\"media\" must be a list of URLs"#),
        (#"{"from": "+1", "body": "x", "frm": "+2"}"#, #"unknown field \"frm\""#),
    ])
    func invalidJSONEventsAreRefusedWithAReason(_ body: String, _ reason: String) async throws {
        try await Self.withHerald { server, _, _ in
            let answer = try await server.request(.POST, "/events", headers: [("Authorization", "Bearer \(TestServer.inboundToken)")], body: body)
            #expect(answer.status == 400)
            #expect(answer.body.contains(reason), "\(answer.body)")
            #expect(try await server.allDeliveries().isEmpty)
        }
    }

    @Test func jsonEventIsAcceptedAndDeduplicatedById() async throws {
        try await Self.withHerald { server, _, audit in
            let body = #"{"from": "+15551234567", "to": "+15550000000", "body": "Your code is 123-456", "id": "phone-42", "media": ["https://example.com/a.jpg"]}"#
            let headers = [("Authorization", "Bearer \(TestServer.inboundToken)"), ("Content-Type", "application/json")]
            let first = try await server.request(.POST, "/events", headers: headers, body: body)
            #expect(first.status == 202)
            let id = try #require((try JSONSerialization.jsonObject(with: Data(first.body.utf8)) as? [String: String])?["id"])
            #expect(id.hasPrefix("evt_"))
            let second = try await server.request(.POST, "/events", headers: headers, body: body)
            #expect(second.status == 202)
            #expect(second.body == first.body, "a duplicate gets the first event's id")
            let request = try #require(await audit.waitForRequests(1).first)
            let json = try #require(request.json)
            #expect(json["id"] as? String == id)
            #expect(json["source"] as? String == "http")
            #expect(json["source_id"] as? String == "phone-42")
            #expect(json["otp"] as? String == "123456")
            #expect(json["media"] as? [String] == ["https://example.com/a.jpg"])
            try await Task.sleep(for: .milliseconds(200))
            #expect(audit.requests.count == 1)
        }
    }

    @Test func oversizedBodyIsRefused() async throws {
        try await Self.withHerald { server, _, _ in
            let huge = formEncode(sms(String(repeating: "x", count: 70_000)))
            let answer = try await server.request(.POST, "/twilio/sms", headers: [("X-Twilio-Signature", "x"), ("Content-Type", "application/x-www-form-urlencoded")], body: huge)
            #expect(answer.status == 413)
            #expect(try await server.allDeliveries().isEmpty)
        }
    }

    @Test func healthEndpoints() async throws {
        try await Self.withHerald { server, _, _ in
            let health = try await server.request(.GET, "/healthz")
            let ready = try await server.request(.GET, "/readyz")
            #expect(health.status == 200)
            #expect(ready.status == 200)
        }
    }
}
