import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldServer
import HeraldTesting
import NIOCore
import NIOHTTP1
import Testing

@Suite("Reload")
struct ReloadTests {
    static func yaml(_ receiver: FakeReceiver, routes: String, extraSinks: String = "") -> String {
        """
        server: { public_url: "\(TestServer.publicURL)", admin_token: admin-token }
        sources: { twilio: { auth_token: \(TestServer.twilioToken) } }
        defaults: { retry: { max_attempts: 50, initial_backoff: 200ms, max_backoff: 200ms } }
        sinks:
          first: { type: http, url: "\(receiver.url("/first"))" }
          second: { type: http, url: "\(receiver.url("/second"))" }
        \(extraSinks)
        routes:
        \(routes)
        """
    }

    static let auth = [("Authorization", "Bearer admin-token")]

    /// Defect 5: reloads were not serialized, so two at once could leave the router on one file
    /// and the dispatcher on the other.
    @Test func concurrentReloadsLeaveEverythingOnOneFile() async throws {
        let receiver = try await FakeReceiver.start()
        let path = try HeraldProcess.tempFolder().appendingPathComponent("channels.yaml").path
        let a = Self.yaml(receiver, routes: "  - { name: a, deliver: [first] }")
        let b = Self.yaml(receiver, routes: "  - { name: b, deliver: [third] }", extraSinks: "  third: { type: http, url: \"\(receiver.url("/third"))\" }")
        let server = try await TestServer.start(a, configPath: path)
        let runtime = server.runtime
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for round in 0..<40 {
                    try? (round % 2 == 0 ? b : a).write(toFile: path, atomically: true, encoding: .utf8)
                    try? await Task.sleep(for: .milliseconds(2))
                }
            }
            for _ in 0..<40 {
                group.addTask { _ = try? await runtime.reload() }
            }
        }
        #expect(await eventually { runtime.dispatcher.idle })
        let live = Set(runtime.live.current.sinks.map(\.name))
        #expect(live == runtime.dispatcher.laneNames)
        #expect(live == runtime.ingestor.table.sinkNames)
        await server.stop()
        await receiver.stop()
    }

    @Test func aGoodFileIsAppliedABadOneRefused() async throws {
        let receiver = try await FakeReceiver.start()
        let path = try HeraldProcess.tempFolder().appendingPathComponent("channels.yaml").path
        let server = try await TestServer.start(Self.yaml(receiver, routes: "  - { name: one, deliver: [first] }"), configPath: path)
        #expect(try await server.postTwilio(sms("code 111111", sid: "SMr1")).status == 200)
        #expect(await receiver.waitForRequests(1).map(\.path) == ["/first"])

        // A new route takes effect for the next webhook.
        try Self.yaml(receiver, routes: "  - { name: two, deliver: [second] }").write(toFile: path, atomically: true, encoding: .utf8)
        let reloaded = try await server.request(.POST, "/admin/reload", headers: Self.auth)
        #expect(reloaded.status == 200, "\(reloaded.body)")
        #expect(try await server.postTwilio(sms("code 222222", sid: "SMr2")).status == 200)
        #expect(await receiver.waitForRequests(2).map(\.path) == ["/first", "/second"])

        // A bad file is refused with its place; the old configuration keeps serving.
        try (Self.yaml(receiver, routes: "  - { name: three, deliver: [nowhere] }")).write(toFile: path, atomically: true, encoding: .utf8)
        let refused = try await server.request(.POST, "/admin/reload", headers: Self.auth)
        #expect(refused.status == 400)
        #expect(refused.body.contains("\(path):9:30: route 'three' delivers to unknown sink 'nowhere'"), "\(refused.body)")
        #expect(try await server.postTwilio(sms("code 333333", sid: "SMr3")).status == 200)
        #expect(await receiver.waitForRequests(3).map(\.path) == ["/first", "/second", "/second"])
        let metrics = try await server.request(.GET, "/metrics")
        #expect(metrics.body.contains("herald_config_reload_success 0"))
        #expect(try await server.request(.POST, "/admin/reload").status == 401)
        await server.stop()
        await receiver.stop()
    }

    /// A reload never reports success for a change it would ignore: switching the signature check
    /// on, rotating the admin token or turning body logging off is refused, naming the key, and
    /// everything stays as it was (the old admin token still works; the new one is not in force).
    @Test(arguments: [
        ("sources: { twilio: { auth_token: \(TestServer.twilioToken) } }", "sources: { twilio: { auth_token: \(TestServer.twilioToken), verify_signature: false } }", "sources.twilio"),
        ("admin_token: admin-token }", "admin_token: rotated-token }", "server.admin_token"),
        ("defaults:", "log_bodies: true\ndefaults:", "log_bodies"),
    ])
    func aChangeThatNeedsARestartIsRefusedNotIgnored(_ old: String, _ new: String, _ key: String) async throws {
        let receiver = try await FakeReceiver.start()
        let path = try HeraldProcess.tempFolder().appendingPathComponent("channels.yaml").path
        let original = Self.yaml(receiver, routes: "  - { name: one, deliver: [first] }")
        let server = try await TestServer.start(original, configPath: path)
        let changed = original.replacingOccurrences(of: old, with: new)
        #expect(changed != original)
        try changed.write(toFile: path, atomically: true, encoding: .utf8)
        let refused = try await server.request(.POST, "/admin/reload", headers: Self.auth)
        #expect(refused.status == 400, "\(refused.body)")
        #expect(refused.body.contains("\(key) changed, which takes effect only at a restart"), "\(refused.body)")
        #expect(try await server.request(.POST, "/admin/reload", headers: [("Authorization", "Bearer rotated-token")]).status == 401)
        #expect(try await server.request(.GET, "/metrics").body.contains("herald_config_reload_success 0"))
        let unsigned = try await server.postTwilio(sms("code 444444", sid: "SMunsigned"), signature: "d3Jvbmc=")
        #expect(unsigned.status == 403, "the signature check stays as it was")
        await server.stop()
        await receiver.stop()
    }

    @Test func pendingDeliveriesForARemovedSinkFail() async throws {
        let receiver = try await FakeReceiver.start()
        let down = try await FakeReceiver.start(fallback: .status(503, "down"))
        let path = try HeraldProcess.tempFolder().appendingPathComponent("channels.yaml").path
        let server = try await TestServer.start(
            Self.yaml(receiver, routes: "  - { deliver: [doomed] }", extraSinks: "  doomed: { type: http, url: \"\(down.url("/d"))\" }"), configPath: path)
        #expect(try await server.postTwilio(sms(sid: "SMdoomed")).status == 200)
        await down.waitForRequests(1)
        try Self.yaml(receiver, routes: "  - { deliver: [first] }").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try await server.request(.POST, "/admin/reload", headers: Self.auth).status == 200)
        _ = await eventually { (try? await server.allDeliveries().first?.state) == .failed }
        let delivery = try #require(try await server.allDeliveries().first)
        #expect(delivery.state == .failed)
        #expect(delivery.lastError == "sink removed: 'doomed' is no longer configured")
        await server.stop()
        await receiver.stop()
        await down.stop()
    }
}

extension ReloadTests {
    @Test func aChangedSinksPendingDeliveriesUseItsNewSettings() async throws {
        let old = try await FakeReceiver.start(fallback: .status(503, "moving"))
        let new = try await FakeReceiver.start()
        let path = try HeraldProcess.tempFolder().appendingPathComponent("channels.yaml").path
        func yaml(_ url: String) -> String {
            """
            server: { public_url: "\(TestServer.publicURL)", admin_token: admin-token }
            sources: { twilio: { auth_token: \(TestServer.twilioToken) } }
            defaults: { retry: { max_attempts: 50, initial_backoff: 200ms, max_backoff: 200ms } }
            sinks:
              hook: { type: http, url: "\(url)" }
            routes:
              - deliver: [hook]
            """
        }
        let server = try await TestServer.start(yaml(old.url("/old")), configPath: path)
        #expect(try await server.postTwilio(sms(sid: "SMmove")).status == 200)
        await old.waitForRequests(1)
        try yaml(new.url("/new")).write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try await server.request(.POST, "/admin/reload", headers: Self.auth).status == 200)
        _ = await eventually { (try? await server.allDeliveries().first?.state) == .delivered }
        #expect(try await server.allDeliveries().first?.state == .delivered)
        #expect(new.requests.map(\.path) == ["/new"], "the retry went to the new URL")
        await server.stop()
        await old.stop()
        await new.stop()
    }
}

@Suite("Reload (the herald binary)")
struct ReloadBinaryTests {
    @Test func sighupReloads() async throws {
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        func write(_ sink: String) throws {
            try """
                server: { listen: "127.0.0.1:0", public_url: "http://herald.test" }
                storage: memory
                sources: { twilio: { auth_token: hup-token } }
                sinks:
                  a: { type: file, path: a.jsonl }
                  b: { type: file, path: b.jsonl }
                routes:
                  - deliver: [\(sink)]
                """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)
        }
        try write("a")
        let herald = try HeraldProcess(["serve"], directory: folder)
        let port = try #require(await herald.listeningPort(), "\(herald.text)")
        func post(_ sid: String) async throws -> Int {
            try await postSignedWebhook(port: port, publicURL: "http://herald.test", token: "hup-token",
                                        [("MessageSid", twilioSID(sid)), ("From", "+15551234567"), ("Body", "code 123456")])
        }
        #expect(try await post("SMhup1") == 200)
        #expect(await eventually { FileManager.default.fileExists(atPath: folder.appendingPathComponent("a.jsonl").path) })
        try write("b")
        herald.signal(SIGHUP)
        #expect(await eventually { herald.text.contains("configuration reloaded") }, "\(herald.text)")
        #expect(try await post("SMhup2") == 200)
        #expect(await eventually { FileManager.default.fileExists(atPath: folder.appendingPathComponent("b.jsonl").path) })
        herald.signal(SIGTERM)
        #expect(await herald.wait() == 0)
    }
}
