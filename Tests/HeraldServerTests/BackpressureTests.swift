import Foundation
import HeraldCore
import HeraldSinks
import HeraldTesting
import NIOHTTP1
import Testing

/// Intake that keeps pace with delivery (`server.limits.intake_wait`) and the last resort, 503
/// with `Retry-After` (`server.limits.refuse_when`), through the whole service.
@Suite("Backpressure")
struct BackpressureTests {
    static func config(receiver: String, limits: String, expireAfter: String = "10m") -> String {
        """
        server: { listen: "127.0.0.1:0", public_url: "\(TestServer.publicURL)", limits: \(limits) }
        sources:
          twilio: { auth_token: \(TestServer.twilioToken) }
          http: { token: \(TestServer.inboundToken) }
        defaults: { expire_after: \(expireAfter) }
        sinks:
          slow: { type: http, url: "\(receiver)", concurrency: 1 }
        routes:
          - deliver: [slow]
        """
    }

    /// A lane of concurrency 1 holds two deliveries (one running, one ready); the third message
    /// finds it full. `intake_wait` decides whether its answer waits for the slot or its delivery
    /// waits in the outbox.
    @Test(arguments: [("0s", DeliveryState.pending), ("5s", DeliveryState.inFlight)])
    func aBusyHealthySinkSlowsTheAnswerInsteadOfQueueing(_ wait: String, _ expected: DeliveryState) async throws {
        // 2 s per answer: long enough that no slot frees while the next webhooks arrive, even
        // under the whole suite's load (400 ms flaked on a clean clone).
        let receiver = try await FakeReceiver.start(fallback: .init(delay: .seconds(2)))
        let server = try await TestServer.start(Self.config(receiver: receiver.url("/hook"), limits: "{ intake_wait: \(wait) }"))
        // One delivered first, so the lane has seen that its receiver is healthy.
        #expect(try await server.postTwilio(sms("code 100001", sid: "SM" + String(repeating: "a", count: 32))).status == 200)
        _ = await receiver.waitForRequests(1)
        #expect(try await eventually { try await server.allDeliveries().allSatisfy { $0.state == .delivered } })
        for (index, letter) in ["b", "c"].enumerated() {
            #expect(try await server.postTwilio(sms("code 10000\(index + 2)", sid: "SM" + String(repeating: letter, count: 32))).status == 200)
        }
        let third = try await server.postTwilio(sms("code 100004", sid: "SM" + String(repeating: "d", count: 32)))
        #expect(third.status == 200)
        let latest = try await server.store.deliveries(DeliveryFilter(limit: 1)).first
        #expect(latest?.state == expected, "intake_wait \(wait): the fourth message's delivery is \(String(describing: latest?.state))")
        #expect(try await eventually(timeout: .seconds(10)) { try await server.allDeliveries().filter { $0.state == .delivered }.count == 4 },
                "everything accepted is delivered")
        await receiver.stop()
        await server.stop()
    }

    /// A receiver that takes 300 ms, one at a time, and codes that expire after 1 s: after a few
    /// messages, what is queued could not start before a new code expired, and Herald refuses
    /// with 503 and `Retry-After` rather than store a code that would only expire. Nothing refused
    /// is stored; everything accepted is delivered or expires, never lost; refusals are counted.
    @Test func pastTheBoundTheWebhookAnswers503AndStoresNothing() async throws {
        let receiver = try await FakeReceiver.start(fallback: .init(delay: .milliseconds(300)))
        let server = try await TestServer.start(Self.config(receiver: receiver.url("/hook"), limits: "{ intake_wait: 0s }", expireAfter: "1s"))
        #expect(try await server.postTwilio(sms("code 200000", sid: "SM" + String(format: "%032x", 0))).status == 200)
        #expect(try await eventually { try await server.allDeliveries().allSatisfy { $0.state == .delivered } }, "the lane measures its pace first")
        var answers: [TestServer.Answer] = []
        for index in 1...14 {
            answers.append(try await server.postTwilio(sms("code \(200_000 + index)", sid: "SM" + String(format: "%032x", index))))
            try await Task.sleep(for: .milliseconds(5))
        }
        let refused = answers.filter { $0.status == 503 }
        let accepted = answers.filter { $0.status == 200 }
        #expect(!refused.isEmpty, "statuses: \(answers.map(\.status))")
        #expect(accepted.count >= 3, "the first messages fit: \(answers.map(\.status))")
        #expect(refused.allSatisfy { Int($0.retryAfter ?? "") ?? 0 >= 1 }, "every 503 says when to come back: \(refused.map(\.retryAfter))")
        #expect(refused.first?.body.contains("overloaded") == true)
        let events = try await server.store.events(EventFilter(limit: 100))
        #expect(events.count == 1 + accepted.count, "a refused message is not stored")
        let metrics = try await server.request(.GET, "/metrics").body
        #expect(metrics.contains(#"herald_events_received_total{source="twilio",outcome="refused_overloaded"} \#(refused.count)"#), "\(metrics)")
        // Nothing accepted is lost: each is delivered, or expires unsent (never delivered late).
        #expect(try await eventually(timeout: .seconds(10)) {
            try await server.allDeliveries().allSatisfy { $0.state == .delivered || $0.state == .expired }
        })
        await receiver.stop()
        await server.stop()
    }

    @Test func refuseWhenNeverAcceptsEverything() async throws {
        let receiver = try await FakeReceiver.start(fallback: .init(delay: .milliseconds(300)))
        let server = try await TestServer.start(Self.config(receiver: receiver.url("/hook"), limits: "{ intake_wait: 0s, refuse_when: never }", expireAfter: "1s"))
        #expect(try await server.postTwilio(sms("code 300000", sid: "SM" + String(format: "%032x", 0))).status == 200)
        #expect(try await eventually { try await server.allDeliveries().allSatisfy { $0.state == .delivered } })
        var statuses: [Int] = []
        for index in 1...14 {
            statuses.append(try await server.postTwilio(sms("code \(300_000 + index)", sid: "SM" + String(format: "%032x", index))).status)
        }
        #expect(statuses.allSatisfy { $0 == 200 }, "\(statuses)")
        await receiver.stop()
        await server.stop()
    }

    @Test(arguments: [
        ("{ refuse_when: soon }", "server.limits.refuse_when must be expiry, never, or a duration like 30s, not 'soon'"),
        ("{ intake_wait: fast }", "bad duration 'fast' for server.limits.intake_wait"),
    ])
    func badLimitsAreReportedAtTheirPlace(_ limits: String, _ message: String) {
        let yaml = "server: { limits: \(limits) }\nsinks: { a: { type: file, path: x } }\nroutes: [ { deliver: [a] } ]\n"
        #expect(throws: (any Error).self) { try ConfigLoader.parse(yaml) }
        do {
            _ = try ConfigLoader.parse(yaml)
        } catch {
            #expect("\(error)".contains(message), "\(error)")
            #expect("\(error)".contains("channels.yaml:1:"), "\(error)")
        }
    }
}
