import Foundation
import HeraldCore
import HeraldTesting
import NIOHTTP1
import Testing

@Suite("Metrics")
struct MetricsTests {
    /// The value of the sample whose labels include all of `labels`.
    static func value(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
            let matches = labels.allSatisfy { line.contains("\($0.key)=\"\($0.value)\"") }
            if matches, let number = line.split(separator: " ").last.flatMap({ Double($0) }) { return number }
        }
        return nil
    }

    @Test func countersAfterMixedTraffic() async throws {
        let good = try await FakeReceiver.start()
        let bad = try await FakeReceiver.start(fallback: .status(400, "bad"))
        let server = try await TestServer.start("""
            server: { public_url: "\(TestServer.publicURL)" }
            sources:
              twilio: { auth_token: \(TestServer.twilioToken) }
              http: { token: \(TestServer.inboundToken) }
            sinks:
              audit: { type: http, url: "\(good.url("/ok"))" }
              broken: { type: http, url: "\(bad.url("/bad"))" }
              pager: { type: slack, optional: true, webhook_url: "${PAGER_URL}" }
            routes:
              - deliver: [audit, broken, pager]
            """)
        let first = sms("Your code is 111111", sid: "SMmetrics1")
        #expect(try await server.postTwilio(first).status == 200)
        #expect(try await server.postTwilio(sms("Your code is 222222", sid: "SMmetrics2")).status == 200)
        #expect(try await server.postTwilio(first).status == 200)
        #expect(try await server.postTwilio(sms(), signature: .some(nil)).status == 400)
        #expect(try await server.postTwilio(sms(), signature: "bogus=").status == 403)
        #expect(try await server.postTwilio([("MessageSid", twilioSID("SMnofrom")), ("Body", "x")]).status == 400)
        let huge = formEncode(sms(String(repeating: "x", count: 70_000)))
        #expect(try await server.request(.POST, "/twilio/sms", headers: [("X-Twilio-Signature", "x")], body: huge).status == 413)
        let auth = [("Authorization", "Bearer \(TestServer.inboundToken)")]
        #expect(try await server.request(.POST, "/events", body: #"{"from": "+1", "body": "x"}"#).status == 401)
        #expect(try await server.request(.POST, "/events", headers: auth, body: "{").status == 400)
        #expect(try await server.request(.POST, "/events", headers: auth, body: #"{"from": "+15550001111", "body": "code 333333"}"#).status == 202)
        _ = await eventually { (try? await server.allDeliveries().allSatisfy { $0.state.isFinished }) == true }

        let answer = try await server.request(.GET, "/metrics")
        #expect(answer.status == 200)
        let text = answer.body
        let received = "herald_events_received_total"
        #expect(Self.value(text, received, ["source": "twilio", "outcome": "accepted"]) == 2)
        #expect(Self.value(text, received, ["source": "twilio", "outcome": "duplicate"]) == 1)
        #expect(Self.value(text, received, ["source": "twilio", "outcome": "rejected_signature"]) == 2)
        #expect(Self.value(text, received, ["source": "twilio", "outcome": "invalid"]) == 1)
        #expect(Self.value(text, received, ["source": "twilio", "outcome": "too_large"]) == 1)
        #expect(Self.value(text, received, ["source": "http", "outcome": "rejected_auth"]) == 1)
        #expect(Self.value(text, received, ["source": "http", "outcome": "invalid"]) == 1)
        #expect(Self.value(text, received, ["source": "http", "outcome": "accepted"]) == 1)
        #expect(Self.value(text, "herald_deliveries_total", ["sink": "audit", "outcome": "delivered"]) == 3)
        #expect(Self.value(text, "herald_deliveries_total", ["sink": "broken", "outcome": "failed"]) == 3)
        #expect(Self.value(text, "herald_deliveries_total", ["sink": "pager", "outcome": "skipped"]) == 3, "disabled optional sink")
        #expect(Self.value(text, "herald_delivery_attempt_seconds_count", ["sink": "audit"]) == 3)
        #expect(Self.value(text, "herald_delivery_latency_seconds_count", ["sink": "audit"]) == 3)
        #expect(Self.value(text, "herald_outbox_pending") == 0)
        for secret in ["+1555", "+1234", "111111", "222222", "333333", "code", TestServer.twilioToken, TestServer.inboundToken, "SMmetrics"] {
            #expect(!text.contains(secret), "/metrics shows \(secret)")
        }
        await server.stop()
        await good.stop()
        await bad.stop()
    }
}
