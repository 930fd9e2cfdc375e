import Foundation
import HeraldCore
import HeraldSinks
import HeraldTesting
import Testing

/// The Twilio SMS sink against a fake Twilio API on loopback.
@Suite("Twilio SMS sink")
struct TwilioSMSSinkTests {
    static let accountSID = "AC00000000000000000000000000000001"

    static func config(_ twilio: FakeReceiver, auth: String = "auth_token: twilio-api-secret", sender: String = "from: \"+1 500 555 0006\"",
                       to: String = "[\"+15551230001\", \"+15551230002\", \"+15551230003\"]", retry: String = "{ max_attempts: 3, initial_backoff: 50ms, max_backoff: 100ms }") -> String {
        """
        server: { public_url: "\(TestServer.publicURL)" }
        sources: { twilio: { auth_token: \(TestServer.twilioToken) } }
        defaults: { expire_after: 10m, retry: \(retry) }
        sinks:
          phones:
            type: twilio
            account_sid: \(accountSID)
            \(auth)
            \(sender)
            to: \(to)
            base_url: "\(twilio.url(""))"
        routes:
          - name: aws
            app: AWS
            deliver: [phones]
        """
    }

    static let created = FakeReceiver.Reply.status(201, #"{"sid": "SM123", "status": "queued"}"#)

    static func field(_ request: FakeReceiver.Recorded, _ name: String) -> String? {
        request.form.first { $0.0 == name }?.1
    }

    @Test func sendsTheExactFormWithBasicAuthAndValidityPeriod() async throws {
        let twilio = try await FakeReceiver.start(fallback: Self.created)
        let server = try await TestServer.start(Self.config(twilio, to: "[\"+1 (555) 123-0001\"]"))
        #expect(try await server.postTwilio(sms("Your AWS code is 482913")).status == 200)
        let request = try #require(await twilio.waitForRequests(1).first)
        #expect(request.method == "POST")
        #expect(request.path == "/2010-04-01/Accounts/\(Self.accountSID)/Messages.json")
        #expect(request.header("Authorization") == "Basic " + Data("\(Self.accountSID):twilio-api-secret".utf8).base64EncodedString())
        #expect(request.header("Content-Type") == "application/x-www-form-urlencoded")
        #expect(request.form.map(\.0) == ["To", "From", "Body", "ValidityPeriod"])
        #expect(Self.field(request, "To") == "+15551230001")
        #expect(Self.field(request, "From") == "+15005550006")
        #expect(Self.field(request, "Body") == "[AWS] Your AWS code is 482913")
        let validity = try #require(Self.field(request, "ValidityPeriod").flatMap(Int.init))
        #expect((595...600).contains(validity), "the code's remaining life, \(validity)")
        let delivery = try #require(try await server.allDeliveries().first)
        _ = await eventually { (try? await server.store.delivery(id: delivery.id)?.state) == .delivered }
        #expect(try await server.store.delivery(id: delivery.id)?.state == .delivered)
        await server.stop()
        await twilio.stop()
    }

    @Test func apiKeyAndMessagingService() async throws {
        let twilio = try await FakeReceiver.start(fallback: Self.created)
        let server = try await TestServer.start(Self.config(
            twilio, auth: "api_key_sid: SK0001\n    api_key_secret: key-secret", sender: "messaging_service_sid: MG0001", to: "\"+15551230001\""))
        #expect(try await server.postTwilio(sms()).status == 200)
        let request = try #require(await twilio.waitForRequests(1).first)
        #expect(request.header("Authorization") == "Basic " + Data("SK0001:key-secret".utf8).base64EncodedString())
        #expect(request.path.contains(Self.accountSID), "the account SID stays in the path")
        #expect(Self.field(request, "MessagingServiceSid") == "MG0001")
        #expect(Self.field(request, "From") == nil)
        await server.stop()
        await twilio.stop()
    }

    @Test func oneBadNumberFailsAloneAndIsNotRetried() async throws {
        let twilio = try await FakeReceiver.start(fallback: Self.created)
        twilio.setResponder { request in
            Self.field(request, "To") == "+15551230002"
                ? .status(400, #"{"code": 21211, "message": "The 'To' number +15551230002 is not a valid phone number.", "status": 400}"#)
                : nil
        }
        let server = try await TestServer.start(Self.config(twilio))
        #expect(try await server.postTwilio(sms()).status == 200)
        _ = await eventually { (try? await server.allDeliveries().allSatisfy { $0.state.isFinished }) == true }
        let deliveries = try await server.allDeliveries()
        #expect(deliveries.count == 3)
        #expect(deliveries.filter { $0.state == .delivered }.count == 2)
        let failed = try #require(deliveries.first { $0.state == .failed })
        #expect(failed.recipient == "+15551230002")
        #expect(failed.attempts == 1)
        #expect(failed.lastError == "Twilio HTTP 400, error 21211: The 'To' number +15551230002 is not a valid phone number.")
        try await Task.sleep(for: .milliseconds(300))
        #expect(twilio.requests.count == 3)
        await server.stop()
        await twilio.stop()
    }

    @Test func tooManyRequestsIsRetriedThenDeliveredOnce() async throws {
        let twilio = try await FakeReceiver.start(script: [.status(429, #"{"code": 20429, "message": "Too Many Requests"}"#)], fallback: Self.created)
        let server = try await TestServer.start(Self.config(twilio, to: "\"+15551230001\""))
        #expect(try await server.postTwilio(sms()).status == 200)
        _ = await eventually { (try? await server.allDeliveries().first?.state) == .delivered }
        let delivery = try #require(try await server.allDeliveries().first)
        #expect(delivery.state == .delivered)
        #expect(delivery.attempts == 2)
        try await Task.sleep(for: .milliseconds(300))
        #expect(twilio.requests.count == 2)
        await server.stop()
        await twilio.stop()
    }

    @Test func badCredentialsArePermanent() async throws {
        let twilio = try await FakeReceiver.start(fallback: .status(401, #"{"code": 20003, "message": "Authenticate", "status": 401}"#))
        let server = try await TestServer.start(Self.config(twilio, to: "\"+15551230001\""))
        #expect(try await server.postTwilio(sms()).status == 200)
        _ = await eventually { (try? await server.allDeliveries().first?.state) == .failed }
        let delivery = try #require(try await server.allDeliveries().first)
        #expect(delivery.lastError == "Twilio HTTP 401, error 20003: Authenticate")
        #expect(delivery.attempts == 1)
        #expect(!(delivery.lastError ?? "").contains("twilio-api-secret"))
        await server.stop()
        await twilio.stop()
    }

    @Test func loopGuardSkipsMessagesFromOurOwnNumber() async throws {
        let twilio = try await FakeReceiver.start(fallback: Self.created)
        let server = try await TestServer.start(Self.config(twilio, to: "\"+15551230001\""))
        let fromOurselves = [("MessageSid", twilioSID("SMloop")), ("From", "+15005550006"), ("To", "+15551230001"), ("Body", "[AWS] code 123456")]
        #expect(try await server.postTwilio(fromOurselves).status == 200)
        _ = await eventually { (try? await server.allDeliveries().first?.state) == .skipped }
        let delivery = try #require(try await server.allDeliveries().first)
        #expect(delivery.state == .skipped)
        #expect(delivery.lastError?.hasPrefix("loop guard") == true)
        try await Task.sleep(for: .milliseconds(200))
        #expect(twilio.requests.isEmpty)
        await server.stop()
        await twilio.stop()
    }

    @Test func longBodiesAreCutAndValidityIsClamped() throws {
        let config = try ConfigLoader.parse("""
            sinks:
              phones: { type: twilio, account_sid: AC1, auth_token: t, from: "+15005550006", to: "+15551230001" }
            routes: [ { deliver: [phones] } ]
            """)
        let sink = SinkFactory.makeSink(config.sinks[0]) as? TwilioSMSSink
        var request = sampleRequest(body: String(repeating: "x", count: 2000))
        request.delivery.recipient = "+15551230001"
        request.event.app = nil
        request.delivery.app = nil
        request.delivery.expiresAt = Date().addingTimeInterval(999_999)
        let form = try #require(sink?.form(for: request))
        let body = try #require(form.first { $0.0 == "Body" }?.1)
        #expect(body.count == 1600)
        #expect(body.hasSuffix("…"))
        #expect(form.first { $0.0 == "ValidityPeriod" }?.1 == "36000")
        request.delivery.expiresAt = Date().addingTimeInterval(-5)
        #expect(sink?.form(for: request).first { $0.0 == "ValidityPeriod" }?.1 == "1")
    }

    @Test func checkWarnsAboutALoop() throws {
        let config = try ConfigLoader.parse("""
            sinks:
              phones: { type: twilio, account_sid: AC1, auth_token: t, from: "+15005550006", to: ["+15551230001"] }
            routes: [ { match: { to: "+1 555 123 0001" }, deliver: [phones] } ]
            """)
        #expect(config.warnings.contains { $0.contains("sink 'phones' sends SMS to …0001, a number route 'route-1' receives on") })
    }
}
