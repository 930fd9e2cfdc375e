import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldTesting
import NIOCore
import NIOHTTP1
import Testing

/// Several real `herald serve` processes on one PostgreSQL outbox (the cluster `make test`
/// starts): exactly-once delivery, `kill -9`, a retry left by a stopped process, the database
/// going away under a running Herald, and one MessageSid at two processes at once.
@Suite("Several processes on PostgreSQL (the herald binary)", .serialized,
       .enabled(if: TestPostgres.isAvailable, "needs HERALD_TEST_POSTGRES (make test starts a cluster)"))
struct PostgresProcessTests {
    static let token = "postgres-processes-token"

    /// One process's folder and configuration; every process of a test shares `database`.
    static func start(_ node: String, database: String, sinkPort: Int, lease: String = "30s", timeout: String = "10s",
                      retry: String = "{ max_attempts: 100, initial_backoff: 100ms, max_backoff: 400ms }") throws -> (HeraldProcess, URL) {
        let folder = try HeraldProcess.tempFolder()
        try """
            server: { listen: "127.0.0.1:0", public_url: "http://herald.test", node_id: \(node), shutdown_grace: 5s }
            storage: \(database)
            sources: { twilio: { auth_token: \(token) } }
            defaults: { expire_after: 10m, lease: \(lease), retry: \(retry) }
            sinks:
              a: { type: http, url: "http://127.0.0.1:\(sinkPort)/a", timeout: \(timeout) }
              b: { type: http, url: "http://127.0.0.1:\(sinkPort)/b", timeout: \(timeout) }
            routes:
              - deliver: [a, b]
            """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)
        return (try HeraldProcess(["serve"], directory: folder), folder)
    }

    static func post(_ port: Int, sid: String, body: String = "Your code is 123456") async throws -> Int {
        try await postSignedWebhook(port: port, publicURL: "http://herald.test", token: token,
                                    [("MessageSid", twilioSID(sid)), ("From", "+15551234567"), ("To", "+15005550006"), ("Body", body)])
    }

    static func count(_ database: String, _ whereClause: String) throws -> Int {
        Int(try TestPostgres.psql(database, "SELECT count(*) FROM herald.deliveries WHERE \(whereClause)")) ?? -1
    }

    /// Every webhook-id the sink saw, and how many times.
    static func arrivals(_ sink: FakeReceiver) -> [String: Int] {
        var seen: [String: Int] = [:]
        for request in sink.requests { seen["\(request.path) \(request.header("webhook-id") ?? "?")", default: 0] += 1 }
        return seen
    }

    @Test func threeProcessesDeliverEveryMessageExactlyOnce() async throws {
        let database = try TestPostgres.createDatabase()
        let sink = try await FakeReceiver.start()
        var processes: [(HeraldProcess, URL)] = []
        for node in ["herald-a", "herald-b", "herald-c"] { processes.append(try Self.start(node, database: database, sinkPort: sink.port)) }
        defer { for (_, folder) in processes { try? FileManager.default.removeItem(at: folder) } }
        var listening: [Int] = []
        for (process, _) in processes { listening.append(try #require(await process.listeningPort(), "\(process.text)")) }
        let ports = listening

        let n = 150
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<n {
                group.addTask { try await Self.post(ports[i % 3], sid: "SMthree\(i)", body: "Your code is \(200_000 + i)") }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses.allSatisfy { $0 == 200 }, "\(statuses.filter { $0 != 200 })")
        _ = await sink.waitForRequests(2 * n, timeout: .seconds(30))
        _ = await eventually(timeout: .seconds(10)) { (try? Self.count(database, "state = 'delivered'")) == 2 * n }
        let seen = Self.arrivals(sink)
        #expect(seen.count == 2 * n, "every (sink, delivery) arrived")
        #expect(seen.values.allSatisfy { $0 == 1 }, "none twice: \(seen.filter { $0.value > 1 })")
        #expect(try Self.count(database, "state = 'delivered'") == 2 * n)
        #expect(try TestPostgres.psql(database, "SELECT count(*) FROM herald.attempts WHERE outcome = 'delivered'") == "\(2 * n)", "one delivered attempt each")
        #expect(try TestPostgres.psql(database, "SELECT count(DISTINCT worker) FROM herald.attempts") == "3", "all three processes delivered")
        for (process, _) in processes { process.signal(SIGTERM) }
        for (process, _) in processes { #expect(await process.wait() == 0) }
        await sink.stop()
    }

    /// `kill -9` of one process while its sink is slow: the others finish its deliveries once its
    /// leases run out, and what arrives twice is at most what it had in flight.
    @Test func killNineOfOneProcessLosesNothing() async throws {
        let database = try TestPostgres.createDatabase()
        let sink = try await FakeReceiver.start(fallback: Reply(delay: .milliseconds(400)))
        // A 1 s timeout makes the lease 11 s (timeout + twice the 5 s margin).
        let (a, folderA) = try Self.start("herald-a", database: database, sinkPort: sink.port, lease: "2s", timeout: "1s")
        var (victim, folderB) = try Self.start("herald-b", database: database, sinkPort: sink.port, lease: "2s", timeout: "1s")
        defer { for folder in [folderA, folderB] { try? FileManager.default.removeItem(at: folder) } }
        let portA = try #require(await a.listeningPort(), "\(a.text)")
        let portB = try #require(await victim.listeningPort(), "\(victim.text)")

        let n = 24
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<n { group.addTask { try await Self.post(i < 20 ? portB : portA, sid: "SMkill\(i)", body: "Your code is \(300_000 + i)") } }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses.allSatisfy { $0 == 200 })
        let inFlightAtKill = try Self.count(database, "state = 'in_flight' AND lease_owner = 'herald-b'")
        victim.signal(SIGKILL)
        _ = await victim.wait()
        #expect(inFlightAtKill > 0, "the victim had work under way")

        let delivered = await eventually(timeout: .seconds(30)) { (try? Self.count(database, "state = 'delivered'")) == 2 * n }
        #expect(delivered, "\((try? Self.count(database, "state <> 'delivered'")) ?? -1) not delivered")
        let seen = Self.arrivals(sink)
        #expect(seen.count == 2 * n)
        let repeats = seen.values.reduce(0) { $0 + $1 - 1 }
        #expect(repeats <= inFlightAtKill, "\(repeats) repeats, \(inFlightAtKill) were in flight")
        #expect(a.text.contains("claims whose lease ran out are pending again"), "the survivor's reaper took them back")

        // The same node id starts again at once: its lock went with the dead process's session.
        victim = try HeraldProcess(["serve"], directory: folderB)
        #expect(await victim.listeningPort() != nil, "\(victim.text)")
        for process in [a, victim] { process.signal(SIGTERM) }
        for process in [a, victim] { #expect(await process.wait() == 0) }
        await sink.stop()
    }

    /// A retry that one process scheduled (the sink said `Retry-After: 2`) and then left behind
    /// when it stopped is sent by another process, when it is due.
    @Test func aRetryLeftByAStoppedProcessIsSentByAnother() async throws {
        let database = try TestPostgres.createDatabase()
        let sink = try await FakeReceiver.start(script: [.status(503, "busy", headers: ["Retry-After": "2"])])
        let (a, folderA) = try Self.start("herald-a", database: database, sinkPort: sink.port)
        let (b, folderB) = try Self.start("herald-b", database: database, sinkPort: sink.port)
        defer { for folder in [folderA, folderB] { try? FileManager.default.removeItem(at: folder) } }
        let portA = try #require(await a.listeningPort(), "\(a.text)")
        #expect(await b.listeningPort() != nil, "\(b.text)")

        #expect(try await Self.post(portA, sid: "SMretry1") == 200)
        #expect(await sink.waitForRequests(2).count == 2, "a's attempt (refused: the first one) and b's")
        a.signal(SIGTERM)
        #expect(await a.wait() == 0)
        _ = await sink.waitForRequests(3, timeout: .seconds(10))
        let requests = sink.requests
        #expect(requests.count == 3, "the refused one was sent again, once")
        let refused = try #require(requests.first)
        let again = try #require(requests.last)
        #expect(again.path == refused.path && again.header("webhook-id") == refused.header("webhook-id"))
        #expect(again.receivedAt.timeIntervalSince(refused.receivedAt) >= 1.8, "not before the Retry-After")
        _ = await eventually { (try? Self.count(database, "state = 'delivered'")) == 2 }
        #expect(try TestPostgres.psql(database, "SELECT worker FROM herald.attempts WHERE number = 2") == "herald-b")
        b.signal(SIGTERM)
        #expect(await b.wait() == 0)
        await sink.stop()
    }

    @Test func theSameMessageAtTwoProcessesAtOnceIsOneEvent() async throws {
        let database = try TestPostgres.createDatabase()
        let sink = try await FakeReceiver.start()
        let (a, folderA) = try Self.start("herald-a", database: database, sinkPort: sink.port)
        let (b, folderB) = try Self.start("herald-b", database: database, sinkPort: sink.port)
        defer { for folder in [folderA, folderB] { try? FileManager.default.removeItem(at: folder) } }
        let portA = try #require(await a.listeningPort(), "\(a.text)")
        let portB = try #require(await b.listeningPort(), "\(b.text)")
        let rounds = 10
        for round in 0..<rounds {
            async let x = Self.post(portA, sid: "SMsame\(round)")
            async let y = Self.post(portB, sid: "SMsame\(round)")
            #expect(try await [x, y] == [200, 200], "both answer 200: the loser like a duplicate")
        }
        _ = await sink.waitForRequests(2 * rounds)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try TestPostgres.psql(database, "SELECT count(*) FROM herald.events") == "\(rounds)")
        #expect(sink.requests.count == 2 * rounds, "one delivery per sink per message")
        for process in [a, b] { process.signal(SIGTERM) }
        for process in [a, b] { #expect(await process.wait() == 0) }
        await sink.stop()
    }

    /// The database stops under a running Herald: `/readyz` says so, webhooks get 500 (never a
    /// 200 for a message that was not stored), and when it is back Herald carries on by itself.
    @Test func theDatabaseGoesAwayAndComesBack() async throws {
        let clusterFolder = try HeraldProcess.tempFolder()
        defer { TestPostgres.destroyCluster(in: clusterFolder.appendingPathComponent("pg")) }
        let cluster = clusterFolder.appendingPathComponent("pg")
        let server = try TestPostgres.startCluster(in: cluster)
        let database = try TestPostgres.createDatabase(on: server)
        let sink = try await FakeReceiver.start()
        let (herald, folder) = try Self.start("herald-a", database: database, sinkPort: sink.port)
        defer { try? FileManager.default.removeItem(at: folder) }
        let port = try #require(await herald.listeningPort(), "\(herald.text)")
        #expect(try await Self.post(port, sid: "SMdb1") == 200)
        _ = await sink.waitForRequests(2)
        #expect(try await Self.get(port, "/readyz") == 200)

        try TestPostgres.stopCluster(in: cluster)
        #expect(await eventually(timeout: .seconds(10)) { (try? await Self.get(port, "/readyz")) == 503 })
        let refused = try await Self.post(port, sid: "SMdb2")
        #expect(refused >= 500, "not stored, so not a 200: \(refused)")

        _ = try TestPostgres.restartCluster(in: cluster)
        #expect(await eventually(timeout: .seconds(20)) { (try? await Self.get(port, "/readyz")) == 200 }, "\(herald.text.suffix(2000))")
        #expect(try await Self.post(port, sid: "SMdb2") == 200, "the sender's retry is taken")
        _ = await sink.waitForRequests(4, timeout: .seconds(10))
        #expect(Self.arrivals(sink).count == 4)
        #expect(await eventually(timeout: .seconds(10)) { herald.text.contains("outbox listener reconnected") })
        herald.signal(SIGTERM)
        #expect(await herald.wait() == 0)
        await sink.stop()
    }

    /// The admin API and the commands that read or change the outbox work on PostgreSQL too.
    @Test func adminAPIAndCommandsWorkOnTheSharedOutbox() async throws {
        let database = try TestPostgres.createDatabase()
        let sinkPort = try await freeLoopbackPort()
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try """
            server: { listen: "127.0.0.1:0", public_url: "http://herald.test", node_id: herald-admin, admin_token: admin-secret }
            storage: \(database)
            sources: { twilio: { auth_token: \(Self.token) } }
            defaults: { retry: { max_attempts: 1 } }
            sinks:
              a: { type: http, url: "http://127.0.0.1:\(sinkPort)/a", timeout: 2s }
            routes:
              - deliver: [a]
            """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)
        let herald = try HeraldProcess(["serve"], directory: folder)
        let port = try #require(await herald.listeningPort(), "\(herald.text)")
        #expect(try await Self.post(port, sid: "SMadmin1") == 200)
        // Nobody listens on the sink's port yet: the one attempt fails.
        #expect(await eventually { (try? Self.count(database, "state = 'failed'")) == 1 })
        let id = try TestPostgres.psql(database, "SELECT id FROM herald.deliveries")

        let list = try HeraldProcess(["deliveries", "--state", "failed"], directory: folder)
        #expect(await list.wait() == 0)
        #expect(list.text.contains(id) && list.text.contains("failed"), "\(list.text)")

        // `herald retry` cannot reach this server's admin API (it listens on a port chosen at start),
        // so it changes the outbox itself; the announcement wakes the running server.
        let sink = try await FakeReceiver.start(port: sinkPort)
        let retry = try HeraldProcess(["retry", id], directory: folder)
        #expect(await retry.wait() == 0)
        #expect(retry.text.contains("\(id) is pending again"), "\(retry.text)")
        #expect(await sink.waitForRequests(1, timeout: .seconds(5)).count == 1)
        #expect(await eventually { (try? Self.count(database, "state = 'delivered'")) == 1 })
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/admin/deliveries?state=delivered")
        request.headers.add(name: "Authorization", value: "Bearer admin-secret")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
        let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
        #expect(response.status == .ok)
        #expect(body.contains(id) && body.contains("\"attempts\":2"), "\(body.prefix(500))")
        herald.signal(SIGTERM)
        #expect(await herald.wait() == 0)
        await sink.stop()
    }

    static func get(_ port: Int, _ path: String) async throws -> Int {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"), timeout: .seconds(5))
        return Int(response.status.code)
    }
}

private typealias Reply = FakeReceiver.Reply
