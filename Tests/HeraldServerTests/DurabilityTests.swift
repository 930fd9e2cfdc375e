import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldSQLite
import HeraldTesting
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// Nothing answered 200 is lost: kill -9, restarts, sinks down for a while, SIGTERM mid-delivery.
/// These run the real binary against a SQLite outbox in a temporary folder.
@Suite("Durability (the herald binary with SQLite)")
struct DurabilityTests {
    static let token = "durability-token"

    static func writeConfig(_ folder: URL, sinkPort: Int, expireAfter: String = "10m", grace: String = "10s", admin: String = "", listenPort: Int = 0) throws {
        try """
            server: { listen: "127.0.0.1:\(listenPort)", public_url: "http://herald.test", shutdown_grace: \(grace)\(admin.isEmpty ? "" : ", admin_token: \(admin)") }
            storage: sqlite:state/herald.db
            sources: { twilio: { auth_token: \(token) } }
            defaults: { expire_after: \(expireAfter), retry: { max_attempts: 1000, initial_backoff: 100ms, max_backoff: 400ms } }
            sinks:
              a: { type: http, url: "http://127.0.0.1:\(sinkPort)/a", timeout: 10s }
              b: { type: http, url: "http://127.0.0.1:\(sinkPort)/b", timeout: 10s }
            routes:
              - deliver: [a, b]
            """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)
    }

    static func post(_ port: Int, sid: String, body: String = "Your code is 123456") async throws -> Int {
        try await postSignedWebhook(port: port, publicURL: "http://herald.test", token: token,
                                    [("MessageSid", twilioSID(sid)), ("From", "+15551234567"), ("To", "+15005550006"), ("Body", body)])
    }

    /// Reads the outbox with an independent client (Debian's sqlite3).
    static func query(_ folder: URL, _ sql: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = [folder.appendingPathComponent("state/herald.db").path, sql]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func count(_ folder: URL, state: String) throws -> Int {
        Int(try query(folder, "SELECT COUNT(*) FROM deliveries WHERE state = '\(state)'")) ?? -1
    }

    @Test func killNineLosesNothing() async throws {
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let sinkPort = try await freeLoopbackPort()
        try Self.writeConfig(folder, sinkPort: sinkPort)

        let first = try HeraldProcess(["serve"], directory: folder)
        let port = try #require(await first.listeningPort(), "\(first.text)")
        let n = 40
        for i in 0..<n {
            #expect(try await Self.post(port, sid: "SMcrash\(i)", body: "Your code is \(100_000 + i)") == 200)
        }
        // Let the dispatcher work against the dead sink for a moment, then pull the plug.
        try await Task.sleep(for: .milliseconds(300))
        first.signal(SIGKILL)
        _ = await first.wait()
        let inFlightAtKill = try Self.count(folder, state: "in_flight")
        #expect(try Self.count(folder, state: "pending") + inFlightAtKill == 2 * n, "every answered webhook is in the outbox")

        let sink = try await FakeReceiver.start(port: sinkPort)
        let second = try HeraldProcess(["serve"], directory: folder)
        let port2 = try #require(await second.listeningPort(), "\(second.text)")
        _ = await eventually(timeout: .seconds(20)) { (try? Self.count(folder, state: "delivered")) == 2 * n }
        #expect(try Self.count(folder, state: "delivered") == 2 * n)

        // Every (sink, event) arrived; repeats only for what was in flight at the kill.
        let received = sink.requests
        let unique = Set(received.map { "\($0.path) \($0.header("webhook-id") ?? "?")" })
        #expect(unique.count == 2 * n)
        #expect(received.count - unique.count <= inFlightAtKill, "\(received.count - unique.count) repeats, \(inFlightAtKill) were in flight")
        let codes = Set(received.compactMap { $0.json?["otp"] as? String })
        #expect(codes.count == n)

        // The same webhook again after the restart creates nothing.
        #expect(try await Self.post(port2, sid: "SMcrash0", body: "Your code is 100000") == 200)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try Self.query(folder, "SELECT COUNT(*) FROM events") == "\(n)")
        #expect(sink.requests.count == received.count)

        second.signal(SIGTERM)
        #expect(await second.wait() == 0)
        await sink.stop()
    }

    /// A second `herald serve` on the same outbox would "recover" the first one's in-flight
    /// deliveries under it: it refuses to start, and the first keeps its claims.
    @Test func aSecondServerOnTheSameOutboxRefusesToStart() async throws {
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let sinkPort = try await freeLoopbackPort()
        try Self.writeConfig(folder, sinkPort: sinkPort)
        let first = try HeraldProcess(["serve"], directory: folder)
        let port = try #require(await first.listeningPort(), "\(first.text)")
        #expect(try await Self.post(port, sid: "SMlock1") == 200)
        let second = try HeraldProcess(["serve"], directory: folder)
        let status = await second.wait()
        #expect(status != 0)
        #expect(second.text.contains("another herald serve is using this outbox"), "\(second.text)")
        #expect(!second.text.contains("resuming deliveries"), "it reset nothing of the first one's")
        // The first still serves; once it is gone, a new one starts.
        #expect(try await Self.post(port, sid: "SMlock2") == 200)
        first.signal(SIGTERM)
        #expect(await first.wait() == 0)
        let third = try HeraldProcess(["serve"], directory: folder)
        #expect(await third.listeningPort() != nil, "\(third.text)")
        third.signal(SIGTERM)
        _ = await third.wait()
    }

    /// `Retry-After: 3600` pauses the sink, but no wait outlives SIGTERM: Herald stops within its
    /// grace, and what waited is pending for the next start.
    @Test func aLongRetryAfterDoesNotHoldUpShutdown() async throws {
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let sink = try await FakeReceiver.start(fallback: .status(503, "busy", headers: ["Retry-After": "3600"]))
        try Self.writeConfig(folder, sinkPort: sink.port, grace: "2s")
        // One attempt at a time, so the later deliveries wait behind the pause.
        let file = folder.appendingPathComponent("channels.yaml")
        // (And no 503: with both sinks paused past the codes' life, later messages would be refused.)
        try String(contentsOf: file, encoding: .utf8).replacingOccurrences(of: "timeout: 10s }", with: "timeout: 10s, concurrency: 1 }")
            .replacingOccurrences(of: "shutdown_grace: 2s", with: "shutdown_grace: 2s, limits: { refuse_when: never }")
            .write(to: file, atomically: true, encoding: .utf8)
        let herald = try HeraldProcess(["serve"], directory: folder)
        let port = try #require(await herald.listeningPort(), "\(herald.text)")
        for index in 0..<4 { #expect(try await Self.post(port, sid: "SMpause\(index)") == 200) }
        _ = await sink.waitForRequests(2)
        try await Task.sleep(for: .milliseconds(200))
        let stopping = ContinuousClock.now
        herald.signal(SIGTERM)
        #expect(await herald.wait() == 0)
        let took = ContinuousClock.now - stopping
        #expect(took < .seconds(3), "stopped after \(took)")
        // A code's sink asked for an hour it does not have: those expire; the rest wait for the next start.
        let waiting = try Self.count(folder, state: "pending") + Self.count(folder, state: "in_flight")
        #expect(waiting + (try Self.count(folder, state: "expired")) == 8)
        #expect(waiting >= 4, "the deliveries behind the pause are kept")
        await sink.stop()
    }

    @Test func aSinkDownLongerThanTheCodeLivesExpiresAndSendsNothingLate() async throws {
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let sinkPort = try await freeLoopbackPort()
        try Self.writeConfig(folder, sinkPort: sinkPort, expireAfter: "2s")
        let herald = try HeraldProcess(["serve"], directory: folder)
        let port = try #require(await herald.listeningPort(), "\(herald.text)")
        #expect(try await Self.post(port, sid: "SMexpire") == 200)
        _ = await eventually(timeout: .seconds(10)) { (try? Self.count(folder, state: "expired")) == 2 }
        #expect(try Self.count(folder, state: "expired") == 2)
        let errors = try Self.query(folder, "SELECT DISTINCT last_error FROM deliveries")
        #expect(errors.contains("connection refused"), "the last error says why: \(errors)")

        let sink = try await FakeReceiver.start(port: sinkPort)
        try await Task.sleep(for: .seconds(1))
        #expect(sink.requests.isEmpty, "nothing is sent after expiry")
        herald.signal(SIGTERM)
        #expect(await herald.wait() == 0)
        await sink.stop()
    }

    @Test func sigtermLetsASlowDeliveryFinish() async throws {
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let sink = try await FakeReceiver.start(fallback: .init(delay: .milliseconds(1500)))
        try Self.writeConfig(folder, sinkPort: sink.port)
        let herald = try HeraldProcess(["serve"], directory: folder)
        let port = try #require(await herald.listeningPort(), "\(herald.text)")
        #expect(try await Self.post(port, sid: "SMslow") == 200)
        await sink.waitForRequests(2)
        herald.signal(SIGTERM)
        #expect(await herald.wait() == 0, "\(herald.text)")
        #expect(try Self.count(folder, state: "delivered") == 2, "the deliveries under way completed before exit")
        await sink.stop()
    }

    @Test func sigtermPastTheGraceLeavesWorkPendingForTheNextStart() async throws {
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let sink = try await FakeReceiver.start(fallback: .init(delay: .seconds(8)))
        try Self.writeConfig(folder, sinkPort: sink.port, grace: "300ms")
        let herald = try HeraldProcess(["serve"], directory: folder)
        let port = try #require(await herald.listeningPort(), "\(herald.text)")
        #expect(try await Self.post(port, sid: "SMstuck") == 200)
        await sink.waitForRequests(2)
        let started = ContinuousClock.now
        herald.signal(SIGTERM)
        #expect(await herald.wait() == 0, "\(herald.text)")
        #expect(ContinuousClock.now - started < .seconds(5), "shutdown waited longer than its grace")
        #expect(try Self.count(folder, state: "delivered") == 0)
        #expect(try Self.count(folder, state: "pending") + Self.count(folder, state: "in_flight") == 2, "nothing lost")

        sink.setFallback(.ok)
        let again = try HeraldProcess(["serve"], directory: folder)
        _ = await again.listeningPort()
        _ = await eventually { (try? Self.count(folder, state: "delivered")) == 2 }
        #expect(try Self.count(folder, state: "delivered") == 2)
        again.signal(SIGTERM)
        #expect(await again.wait() == 0)
        await sink.stop()
    }

    @Test func deliveriesAndRetryCommands() async throws {
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let sink = try await FakeReceiver.start(script: [.status(400, "bad"), .status(400, "bad")])
        // A fixed port, so that the command line can find the running server.
        try Self.writeConfig(folder, sinkPort: sink.port, admin: "admin-secret", listenPort: try await freeLoopbackPort())
        let herald = try HeraldProcess(["serve"], directory: folder)
        let port = try #require(await herald.listeningPort(), "\(herald.text)")
        #expect(try await Self.post(port, sid: "SMcli") == 200)
        _ = await eventually { (try? Self.count(folder, state: "failed")) == 2 }

        let list = try HeraldProcess(["deliveries", "--state", "failed"], directory: folder)
        #expect(await list.wait() == 0)
        let lines = list.text.split(separator: "\n")
        #expect(lines.count == 2, "\(list.text)")
        #expect(lines.allSatisfy { $0.contains("failed") && $0.contains("last error: HTTP 400: bad") })
        let id = try #require(lines.first?.split(separator: " ").first.map(String.init))

        // The server runs with an admin token: it takes the retry and sends at once.
        let retry = try HeraldProcess(["retry", id], directory: folder)
        #expect(await retry.wait() == 0, "\(retry.text)")
        #expect(retry.text.contains("being sent again by the running server"))
        _ = await eventually { (try? Self.count(folder, state: "delivered")) == 1 }
        #expect(try Self.count(folder, state: "delivered") == 1)
        let again = try HeraldProcess(["retry", id], directory: folder)
        #expect(await again.wait() == 1)
        #expect(again.text.contains("neither failed nor expired"))

        // With the server stopped, the store is changed directly and the next start sends it.
        herald.signal(SIGTERM)
        #expect(await herald.wait() == 0)
        let other = try #require(try Self.query(folder, "SELECT id FROM deliveries WHERE state = 'failed'").split(separator: "\n").first.map(String.init))
        let offline = try HeraldProcess(["retry", other], directory: folder)
        #expect(await offline.wait() == 0, "\(offline.text)")
        #expect(try Self.count(folder, state: "pending") == 1)
        let restarted = try HeraldProcess(["serve"], directory: folder)
        _ = await restarted.listeningPort()
        _ = await eventually { (try? Self.count(folder, state: "delivered")) == 2 }
        #expect(try Self.count(folder, state: "delivered") == 2)
        let missing = try HeraldProcess(["retry", "dlv_nope"], directory: folder)
        #expect(await missing.wait() == 1)
        #expect(missing.text.contains("no delivery dlv_nope"))
        restarted.signal(SIGTERM)
        #expect(await restarted.wait() == 0)
        await sink.stop()
    }
}
