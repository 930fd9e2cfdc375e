import Foundation
import HeraldCore
import HeraldServer
import HeraldTesting
import NIOHTTP1
import Testing

@Suite("Admin API")
struct AdminAPITests {
    static func config(_ sink: FakeReceiver, admin: String = "admin-token") -> String {
        """
        server: { public_url: "\(TestServer.publicURL)", admin_token: "\(admin)" }
        sources: { twilio: { auth_token: \(TestServer.twilioToken) } }
        defaults: { retry: { max_attempts: 1, initial_backoff: 10ms, max_backoff: 10ms } }
        sinks:
          audit: { type: http, url: "\(sink.url("/a"))" }
          other: { type: http, url: "\(sink.url("/b"))" }
        routes:
          - name: aws
            match: { body: "(?i)aws" }
            deliver: [audit]
          - name: rest
            match: { from: "+12344567890" }
            deliver: [other]
        """
    }

    static let auth = [("Authorization", "Bearer admin-token")]

    static func json(_ answer: TestServer.Answer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any])
    }

    @Test func everyEndpointNeedsTheToken() async throws {
        let sink = try await FakeReceiver.start()
        let server = try await TestServer.start(Self.config(sink))
        for (method, path) in [(HTTPMethod.GET, "/admin/events"), (.GET, "/admin/events/evt_x"), (.GET, "/admin/deliveries"), (.POST, "/admin/deliveries/dlv_x/retry")] {
            let none = try await server.request(method, path)
            let wrong = try await server.request(method, path, headers: [("Authorization", "Bearer admin-tokeN")])
            #expect(none.status == 401, "\(path)")
            #expect(wrong.status == 401, "\(path)")
            #expect(!none.body.contains("admin-token"))
        }
        await server.stop()
        await sink.stop()
    }

    @Test func offWithoutAToken() async throws {
        let sink = try await FakeReceiver.start()
        let server = try await TestServer.start(Self.config(sink, admin: ""))
        let answer = try await server.request(.GET, "/admin/events", headers: [("Authorization", "Bearer ")])
        #expect(answer.status == 404)
        await server.stop()
        await sink.stop()
    }

    @Test func listShowAndRetry() async throws {
        let sink = try await FakeReceiver.start(script: [.status(500, "down")])
        let server = try await TestServer.start(Self.config(sink))
        #expect(try await server.postTwilio(sms("Your AWS code is 111111", sid: "SM1")).status == 200)
        _ = await eventually { (try? await server.allDeliveries().first?.state) == .failed }
        #expect(try await server.postTwilio(sms("Your code is 222222", sid: "SM2")).status == 200)
        #expect(try await server.postTwilio([("MessageSid", twilioSID("SM3")), ("From", "+19998887777"), ("Body", "hello")]).status == 200)
        _ = await eventually { (try? await server.allDeliveries().filter { $0.state == .delivered }.count) == 1 }

        let all = try Self.json(try await server.request(.GET, "/admin/events", headers: Self.auth))
        let events = try #require(all["events"] as? [[String: Any]])
        #expect(events.count == 3)
        #expect(events.map { $0["source_id"] as? String } == ["SM3", "SM2", "SM1"].map(twilioSID), "newest first")
        #expect(events[0]["routed"] as? Bool == false)

        let failed = try Self.json(try await server.request(.GET, "/admin/events?state=failed", headers: Self.auth))
        let failedEvents = try #require(failed["events"] as? [[String: Any]])
        #expect(failedEvents.map { $0["source_id"] as? String } == [twilioSID("SM1")])
        let byRoute = try Self.json(try await server.request(.GET, "/admin/events?route=rest", headers: Self.auth))
        #expect((byRoute["events"] as? [[String: Any]])?.map { $0["source_id"] as? String } == [twilioSID("SM2")])
        let bySink = try Self.json(try await server.request(.GET, "/admin/events?sink=audit&limit=5", headers: Self.auth))
        #expect((bySink["events"] as? [[String: Any]])?.count == 1)
        let unrouted = try Self.json(try await server.request(.GET, "/admin/events?unrouted=true", headers: Self.auth))
        #expect((unrouted["events"] as? [[String: Any]])?.map { $0["source_id"] as? String } == [twilioSID("SM3")])
        let future = try Self.json(try await server.request(.GET, "/admin/events?since=2100-01-01T00:00:00Z", headers: Self.auth))
        #expect((future["events"] as? [[String: Any]])?.isEmpty == true)
        #expect(try await server.request(.GET, "/admin/events?state=lost", headers: Self.auth).status == 400)
        #expect(try await server.request(.GET, "/admin/events?since=yesterday", headers: Self.auth).status == 400)

        let eventID = try #require(failedEvents.first?["id"] as? String)
        let shown = try Self.json(try await server.request(.GET, "/admin/events/\(eventID)", headers: Self.auth))
        let deliveries = try #require(shown["deliveries"] as? [[String: Any]])
        let attempts = try #require(shown["attempts"] as? [[String: Any]])
        #expect(deliveries.first?["state"] as? String == "failed")
        #expect(deliveries.first?["last_error"] as? String == "gave up after 1 attempts: HTTP 500: down")
        #expect(attempts.count == 1)
        #expect(attempts.first?["outcome"] as? String == "retry")
        #expect(attempts.first?["detail"] as? String == "HTTP 500: down")
        #expect(attempts.first?["duration_ms"] is Int)
        #expect(try await server.request(.GET, "/admin/events/evt_missing", headers: Self.auth).status == 404)

        let list = try Self.json(try await server.request(.GET, "/admin/deliveries?state=failed", headers: Self.auth))
        let failedDeliveries = try #require(list["deliveries"] as? [[String: Any]])
        let deliveryID = try #require(failedDeliveries.first?["id"] as? String)
        #expect(failedDeliveries.count == 1)

        let retried = try await server.request(.POST, "/admin/deliveries/\(deliveryID)/retry", headers: Self.auth)
        #expect(retried.status == 200)
        #expect(try Self.json(retried)["state"] as? String == "pending")
        _ = await eventually { (try? await server.allDeliveries().first { $0.id == deliveryID }?.state) == .delivered }
        #expect(try await server.allDeliveries().first { $0.id == deliveryID }?.state == .delivered)
        #expect(sink.requests.filter { $0.path == "/a" }.count == 2)
        #expect(try await server.request(.POST, "/admin/deliveries/\(deliveryID)/retry", headers: Self.auth).status == 409)
        #expect(try await server.request(.POST, "/admin/deliveries/dlv_missing/retry", headers: Self.auth).status == 404)
        await server.stop()
        await sink.stop()
    }
}

/// `herald retry`'s side of the admin API: the typed client decodes what the server encodes.
@Suite("Admin client")
struct AdminClientTests {
    @Test func theClientSpeaksTheServersTypes() async throws {
        let sink = try await FakeReceiver.start(script: [.status(500, "down")])
        let server = try await TestServer.start(AdminAPITests.config(sink))
        let client = AdminClient(baseURL: "http://127.0.0.1:\(server.port)", token: Secret("admin-token"))
        #expect(try await server.postTwilio(sms("Your AWS code is 111111", sid: "SMc1")).status == 200)
        #expect(await eventually { (try? await client.deliveries(state: .failed).count) == 1 })
        let failed = try #require(try await client.deliveries(state: .failed).first)
        #expect(failed.sink == "audit")
        #expect(failed.lastError == "gave up after 1 attempts: HTTP 500: down")
        let event = try await client.event(id: failed.eventID)
        #expect(event.event.sourceID == twilioSID("SMc1"))
        #expect(event.event.otp == "111111")
        #expect(event.routed)
        #expect(event.attempts?.map(\.outcome) == ["retry"])

        let retried = try await client.retry(deliveryID: failed.id)
        #expect(retried.id == failed.id)
        #expect(retried.state == .pending)
        #expect(await eventually { (try? await client.deliveries(state: .delivered).first?.id) == failed.id })
        let delivered = try #require(try await client.deliveries(state: .delivered).first)
        #expect(delivered.attempts == 2)

        await #expect(throws: AdminClient.Failure.refused(status: 409, message: "delivery \(failed.id) is neither failed nor expired")) {
            try await client.retry(deliveryID: failed.id)
        }
        await #expect(throws: AdminClient.Failure.refused(status: 404, message: "no delivery dlv_missing")) {
            try await client.retry(deliveryID: "dlv_missing")
        }
        let stranger = AdminClient(baseURL: "http://127.0.0.1:\(server.port)", token: Secret("wrong"))
        await #expect(throws: AdminClient.Failure.refused(status: 401, message: "missing or wrong admin token")) {
            try await stranger.retry(deliveryID: failed.id)
        }
        await server.stop()
        await sink.stop()
        let gone = AdminClient(baseURL: "http://127.0.0.1:\(try await freeLoopbackPort())", token: Secret("admin-token"))
        await #expect(throws: AdminClient.Failure.unreachable) { try await gone.retry(deliveryID: failed.id) }
    }
}

@Suite("Health")
struct HealthTests {
    static let yaml = """
        sinks: { inbox: { type: file, path: /dev/null } }
        routes: [ { deliver: [inbox] } ]
        """

    @Test func liveAndReady() async throws {
        let server = try await TestServer.start(Self.yaml)
        let live = try await server.request(.GET, "/healthz")
        let ready = try await server.request(.GET, "/readyz")
        #expect(live.status == 200)
        #expect(ready.status == 200)
        #expect(ready.body == "ready\n")
        await server.stop()
    }

    @Test func notReadyWhenTheStoreDoesNotAnswer() async throws {
        let server = try await TestServer.start(Self.yaml, store: HookedStore(beforeCount: { try await Task.sleep(for: .seconds(30)) }))
        let ready = try await server.request(.GET, "/readyz")
        #expect(ready.status == 503)
        #expect(ready.body == "not ready: the store did not answer within 1 s\n")
        let live = try await server.request(.GET, "/healthz")
        #expect(live.status == 200, "the process is up all the same")
        await server.stop()
    }
}
