import Foundation
import HeraldCore
import HeraldSinks
import HeraldTesting
import Testing

@Suite("Outbound rate limits")
struct RateLimitTests {
    @Test func deliveriesWaitTheirTurn() async throws {
        let receiver = try await FakeReceiver.start()
        let server = try await TestServer.start("""
            server: { public_url: "\(TestServer.publicURL)" }
            sources: { twilio: { auth_token: \(TestServer.twilioToken) } }
            sinks: { hook: { type: http, url: "\(receiver.url("/h"))", rate_limit: 5/s, burst: 1, concurrency: 8 } }
            routes: [ { deliver: [hook] } ]
            """)
        let started = Date()
        for i in 0..<10 {
            #expect(try await server.postTwilio(sms("code \(100_000 + i)", sid: "SMrate\(i)")).status == 200)
        }
        let requests = await receiver.waitForRequests(10, timeout: .seconds(15))
        #expect(requests.count == 10, "all arrive")
        let took = (requests.map(\.receivedAt).max() ?? started).timeIntervalSince(started)
        #expect(took >= 1.8, "10 deliveries at 5/s took \(took) s")
        _ = await eventually { (try? await server.allDeliveries().allSatisfy { $0.state == .delivered }) == true }
        #expect(try await server.allDeliveries().allSatisfy { $0.state == .delivered }, "none failed for waiting")
        await server.stop()
        await receiver.stop()
    }

    @Test func a429PausesThatSinkAndOnlyThatSink() async throws {
        // A 3 s pause leaves room for a loaded machine (the suite runs Herald processes beside it).
        let slack = try await FakeReceiver.start(script: [.status(429, "rate_limited", headers: ["Retry-After": "3"])])
        let audit = try await FakeReceiver.start()
        let server = try await TestServer.start("""
            server: { public_url: "\(TestServer.publicURL)" }
            sources: { twilio: { auth_token: \(TestServer.twilioToken) } }
            sinks:
              slack: { type: slack, webhook_url: "\(slack.url("/s"))", rate_limit: 100/s, burst: 10, concurrency: 1 }
              audit: { type: http, url: "\(audit.url("/a"))" }
            routes: [ { deliver: [slack, audit] } ]
            """)
        #expect(try await server.postTwilio(sms("code 111111", sid: "SMp0")).status == 200)
        let throttled = try #require(await slack.waitForRequests(1).first)
        for i in 1...3 {
            #expect(try await server.postTwilio(sms("code \(111_111 + i)", sid: "SMp\(i)")).status == 200)
        }
        let auditRequests = await audit.waitForRequests(4, timeout: .seconds(5))
        #expect(auditRequests.count == 4)
        #expect(auditRequests.allSatisfy { $0.receivedAt.timeIntervalSince(throttled.receivedAt) < 2.5 }, "the other sink kept delivering")
        let slackRequests = await slack.waitForRequests(5, timeout: .seconds(10))
        #expect(slackRequests.count == 5, "the retried one and the three later ones")
        #expect(slackRequests.dropFirst().allSatisfy { $0.receivedAt.timeIntervalSince(throttled.receivedAt) >= 2.95 },
                "later Slack deliveries waited for the Retry-After too")
        await server.stop()
        await slack.stop()
        await audit.stop()
    }

    @Test func slackDefaultsToOnePerSecond() throws {
        let config = try ConfigLoader.parse("""
            sinks:
              team: { type: slack, webhook_url: "https://hooks.slack.com/services/T/B/X" }
              hook: { type: http, url: "https://example.com/h" }
              fast: { type: slack, webhook_url: "https://hooks.slack.com/services/T/B/Y", rate_limit: 30/m, burst: 2 }
            routes: [ { deliver: [team, hook, fast] } ]
            """)
        #expect(config.sink(named: "team")?.rateLimit == 1)
        #expect(config.sink(named: "team")?.burst == 5)
        #expect(config.sink(named: "hook")?.rateLimit == nil)
        #expect(config.sink(named: "fast")?.rateLimit == 0.5)
        #expect(config.sink(named: "fast")?.burst == 2)
    }
}
