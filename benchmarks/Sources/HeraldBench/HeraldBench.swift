import ArgumentParser
import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldPostgres
import HeraldSQLite
import HeraldTesting
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Drives the real `herald` binary with signed Twilio webhooks. One route delivers every message
/// to three sinks of the real types — `slack`, `twilio` (one recipient) and `http` — with their
/// default settings, to fake receivers on loopback, through the SQLite outbox. Each scenario
/// starts its own Herald:
/// - `fast`: receivers answer at once; open loop at 100 and 1,000 msg/s, then a closed loop;
/// - `slow`: every answer takes 50 ms; open loop at 100 and 500 msg/s;
/// - `failing`: 20 % of answers are 500; open loop at 100 msg/s; failure → retry times;
/// - `backlog`: 100,000 pending deliveries in the outbox at start-up; time to ready, memory,
///   and the drain once Herald runs.
/// - `postgres`: the `fast` load through a PostgreSQL outbox (a throwaway cluster, fsync on), with
///   one Herald process and then two sharing it; and what NOTIFY costs a webhook's statement.
/// Every scenario checks that every accepted message reached every sink.
@main
struct HeraldBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "herald-bench")

    @Option(help: "The herald binary to measure.")
    var herald = ".build/release/herald"

    @Option(parsing: .upToNextOption, help: "Scenarios to run: fast, slow, failing, backlog.")
    var scenarios: [String] = ["fast", "slow", "failing", "backlog"]

    @Option(help: "Seconds per open-loop phase.")
    var seconds = 10

    @Option(help: "Seconds of the closed-loop phase.")
    var throughputSeconds = 20

    @Option(help: "Requests in flight during the closed loop.")
    var concurrency = 32

    @Option(help: "Sinks: `real` (slack, twilio, http) or `http` (three http sinks, for comparison with earlier runs).")
    var sinkTypes = "real"

    @Option(help: "Override every sink's concurrency (default: the sinks' own defaults).")
    var sinkConcurrency: Int?

    @Option(help: "Herald's log level (its log goes to --herald-log or nowhere).")
    var logLevel = "info"

    @Option(help: "Pending deliveries in the outbox for the backlog scenario.")
    var backlog = 100_000

    @Option(help: "PostgreSQL scenario: a running server's URL to create the benchmark's database on (default: a throwaway cluster).")
    var postgresServer: String?

    @Option(help: "Run herald with `taskset -c CPU` (empty: no pinning).")
    var heraldCPU = "0"

    @Option(help: "Pin this load generator with `taskset -c CPU` is up to the caller; this only labels the output.")
    var label = ""

    @Option(help: "Write herald's log here (default: discarded; herald logs at info either way).")
    var heraldLog: String?

    @Option(help: "Only the code finder's micro-benchmark, over this table (Tests/HeraldCoreTests/Fixtures/otp-table.txt).")
    var otpTable: String?

    @Flag(help: "Only the micro-benchmark of a Twilio webhook's form parsing and signature check.")
    var webhookMicro = false

    @Flag(help: "Only the micro-benchmark of the SQLite outbox's writes: a message stored with three claimed deliveries, then their three results, 32 at once.")
    var storeMicro = false

    @Flag(help: "Only the micro-benchmark of what the libraries cost per exchange, without Herald: a bare Hummingbird answering a webhook, the sinks' AsyncHTTPClient request, and the same request on NIO alone, each on --herald-cpu.")
    var libraryFloor = false

    @Option(help: .hidden)
    var floorRole: String?

    @Option(help: .hidden)
    var floorTarget = ""

    func run() async throws {
        if let floorRole {
            try await runFloorRole(floorRole, target: floorTarget)
            return
        }
        if libraryFloor {
            try await libraryFloorBenchmark()
            return
        }
        if let otpTable {
            try finderBenchmark(otpTable)
            return
        }
        if webhookMicro {
            webhookBenchmark()
            return
        }
        if storeMicro {
            try await storeBenchmark()
            return
        }
        say("herald \(herald), slack + twilio + http sinks with default settings, SQLite outbox (synchronous=FULL), herald pinned to CPU \(heraldCPU.isEmpty ? "none" : heraldCPU)\(label.isEmpty ? "" : ", \(label)")")
        var incomplete = false
        for scenario in scenarios {
            switch scenario {
            case "fast": incomplete = try await fast() || incomplete
            case "slow": incomplete = try await slow() || incomplete
            case "failing": incomplete = try await failing() || incomplete
            case "backlog": incomplete = try await backlogScenario() || incomplete
            case "postgres": incomplete = try await postgresScenario() || incomplete
            default: throw ValidationError("unknown scenario \(scenario): fast, slow, failing, backlog or postgres")
            }
        }
        if incomplete {
            say("SOME ACCEPTED MESSAGES DID NOT REACH EVERY SINK")
            throw ExitCode(1)
        }
    }

    // MARK: Scenarios (each returns true when something accepted was not delivered everywhere)

    func fast() async throws -> Bool {
        let receivers = try await Receivers.start(Behaviour())
        let herald = try await HeraldUnderTest.start(self, receivers: receivers)
        defer { herald.stop() }
        say("[fast] receivers answer at once")
        say(String(format: "[fast] idle RSS: %.1f MB", Double(herald.rss().current) / 1024))
        let floor = try await healthFloor(client: herald.client)
        say(String(format: "[fast] floor (GET /healthz at 100/s through the same client): p50 %.2f ms, p99 %.2f ms", floor.p50, floor.p99))
        var sent = 0
        for rate in [100, 1000] {
            let result = try await steady(rate: rate, herald: herald, receivers: receivers, first: sent)
            sent += result.count
            say("[fast] " + result.line(rate: rate, seconds: seconds, rss: herald.rss()))
        }
        let loop = try await closedLoop(herald: herald, receivers: receivers, first: sent)
        sent += loop.sent
        say(String(format: "[fast] closed loop, %d in flight, %ds: %.0f msg/s accepted, %.0f msg/s delivered to all 3 sinks (%.1f %% of accepted); lag p50 %.1f ms, p99 %.1f ms; CPU %.3f ms per message; RSS peak %.1f MB",
                     concurrency, throughputSeconds, loop.accepted, loop.delivered, 100 * loop.delivered / max(loop.accepted, 1), loop.lagP50, loop.lagP99,
                     loop.cpuPerMessage, Double(herald.rss().peak) / 1024))
        return await complete("fast", receivers: receivers, accepted: herald.accepted)
    }

    func slow() async throws -> Bool {
        let receivers = try await Receivers.start(Behaviour(delay: .milliseconds(50)))
        let herald = try await HeraldUnderTest.start(self, receivers: receivers)
        defer { herald.stop() }
        say("[slow] every receiver answers after 50 ms")
        var sent = 0
        for rate in [100, 500] {
            let result = try await steady(rate: rate, herald: herald, receivers: receivers, first: sent)
            sent += result.count
            say("[slow] " + result.line(rate: rate, seconds: seconds, rss: herald.rss()))
        }
        return await complete("slow", receivers: receivers, accepted: herald.accepted)
    }

    func failing() async throws -> Bool {
        let receivers = try await Receivers.start(Behaviour(failureRate: 0.2))
        let herald = try await HeraldUnderTest.start(self, receivers: receivers)
        defer { herald.stop() }
        say("[failing] 20 % of all answers are HTTP 500")
        let result = try await steady(rate: 100, herald: herald, receivers: receivers, first: 0, settle: 60)
        say("[failing] " + result.line(rate: 100, seconds: seconds, rss: herald.rss()))
        let gaps = receivers.retryGaps()
        say(String(format: "[failing] %d answers were 500; failure → next attempt of the same delivery: p50 %.0f ms, p99 %.0f ms, max %.0f ms",
                     receivers.failureCount(), percentile(gaps, 0.5), percentile(gaps, 0.99), gaps.max() ?? .nan))
        return await complete("failing", receivers: receivers, accepted: herald.accepted)
    }

    /// A sink that was down for hours: the outbox holds `backlog` pending deliveries to the http
    /// sink when Herald starts; its receiver is up again.
    /// The `fast` load with the outbox on PostgreSQL: one process, then two on the same database
    /// (each webhook to one of them in turn, both pinned like the single one); then the webhook
    /// statement alone, with and without the NOTIFY that pending work costs.
    func postgresScenario() async throws -> Bool {
        let cluster = try HeraldUnderTest.makeFolder()
        var server = postgresServer
        if server == nil {
            let folder = cluster.appendingPathComponent("pg")
            server = try TestPostgres.startCluster(in: folder, durable: true)
        }
        defer { if postgresServer == nil { TestPostgres.destroyCluster(in: cluster.appendingPathComponent("pg")) } }
        guard let server else { return true }
        say("[postgres] PostgreSQL 15 on loopback, fsync on, synchronous_commit on (as durable as SQLite's synchronous=FULL)")
        var incomplete = false
        for processes in [1, 2] {
            let database = try TestPostgres.createDatabase(on: server)
            let receivers = try await Receivers.start(Behaviour())
            let herald = try await HeraldUnderTest.start(self, receivers: receivers, storage: database, processes: processes)
            let name = "[postgres ×\(processes)]"
            say(String(format: "\(name) idle RSS: %.1f MB (all processes)", Double(herald.rss().current) / 1024))
            var sent = 0
            for rate in [100, 1000] {
                let result = try await steady(rate: rate, herald: herald, receivers: receivers, first: sent)
                sent += result.count
                say("\(name) " + result.line(rate: rate, seconds: seconds, rss: herald.rss()))
            }
            let loop = try await closedLoop(herald: herald, receivers: receivers, first: sent)
            say(String(format: "\(name) closed loop, %d in flight, %ds: %.0f msg/s accepted, %.0f msg/s delivered to all 3 sinks (%.0f deliveries/s claimed and completed, %.1f %% of accepted); lag p50 %.1f ms, p99 %.1f ms; Herald CPU %.3f ms per message; duplicates %d",
                         concurrency, throughputSeconds, loop.accepted, loop.delivered, 3 * loop.delivered, 100 * loop.delivered / max(loop.accepted, 1),
                         loop.lagP50, loop.lagP99, loop.cpuPerMessage, receivers.duplicateCount()))
            let byWorker = try TestPostgres.psql(database, "SELECT string_agg(worker || ' ' || n, ', ' ORDER BY worker) FROM (SELECT worker, count(*) AS n FROM herald.attempts GROUP BY worker) w")
            say("\(name) attempts per process: \(byWorker)")
            incomplete = await complete("postgres ×\(processes)", receivers: receivers, accepted: herald.accepted) || incomplete
            herald.stop()
            await receivers.stop()
        }
        try await notifyCost(database: try TestPostgres.createDatabase(on: server))
        return incomplete
    }

    /// The webhook's one statement (event + 3 deliveries), 16 writers at once for 5 s each way:
    /// deliveries stored claimed (no NOTIFY) and stored pending (one NOTIFY per sink).
    func notifyCost(database: String) async throws {
        guard case .success(let storage) = PostgresStorage.parse(database) else { return }
        let store = try await PostgresOutboxStore.open(storage, nodeID: "bench", serving: false, maxConnections: 16,
                                                      logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }))
        for pending in [false, true] {
            let next = Locked(0)
            let times = Locked([Double]())
            let deadline = ContinuousClock.now + .seconds(5)
            let started = ContinuousClock.now
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        while ContinuousClock.now < deadline {
                            let i = next.withLock { value -> Int in defer { value += 1 }; return value }
                            let now = Date()
                            let event = Event(id: "evt_n\(pending)_\(i)", source: "twilio", sourceID: "SMnotify\(pending)\(i)", from: "+15551234567", to: nil,
                                              body: "Your code is 123456", otp: "123456", otpDomain: nil, app: nil, route: "all", receivedAt: now, media: [])
                            let deliveries = ["slack", "sms", "hook"].map { sink in
                                Delivery(id: "dlv_n\(pending)_\(i)_\(sink)", eventID: event.id, sink: sink, route: "all", app: nil,
                                         state: pending ? .pending : .inFlight, attempts: pending ? 0 : 1, nextAttemptAt: now,
                                         expiresAt: now.addingTimeInterval(600), leaseUntil: pending ? nil : now.addingTimeInterval(30), createdAt: now)
                            }
                            let start = ContinuousClock.now
                            _ = try? await store.insert(event, deliveries: deliveries)
                            let took = milliseconds(ContinuousClock.now - start)
                            times.withLock { $0.append(took) }
                        }
                    }
                }
            }
            let all = times.withLock { $0 }
            let seconds = milliseconds(ContinuousClock.now - started) / 1000
            say(String(format: "[postgres] webhook statement, 16 writers, deliveries stored %@: %.0f webhooks/s, p50 %.2f ms, p99 %.2f ms",
                         pending ? "pending (NOTIFY per sink)" : "claimed (no NOTIFY)", Double(all.count) / seconds, percentile(all, 0.5), percentile(all, 0.99)))
        }
        await store.close()
    }

    func backlogScenario() async throws -> Bool {
        let receivers = try await Receivers.start(Behaviour())
        let folder = try HeraldUnderTest.makeFolder()
        let filled = ContinuousClock.now
        try await fillOutbox(path: folder.appendingPathComponent("herald.db").path, count: backlog)
        say(String(format: "[backlog] %d pending deliveries written to the outbox in %.1f s", backlog, milliseconds(ContinuousClock.now - filled) / 1000))
        let started = ContinuousClock.now
        let herald = try await HeraldUnderTest.start(self, receivers: receivers, folder: folder, waitForReady: true)
        defer { herald.stop() }
        let ready = milliseconds(ContinuousClock.now - started)
        let firstArrival = await waitUntil(timeout: 30) { receivers.httpArrivals() > 0 }
        let first = milliseconds(ContinuousClock.now - started)
        say(String(format: "[backlog] started → /readyz 200 in %.2f s; first delivery after %.2f s%@; RSS %.1f MB",
                     ready / 1000, first / 1000, firstArrival ? "" : " (NONE)", Double(herald.rss().current) / 1024))
        let cpuBefore = herald.cpuSeconds()
        let drainStart = ContinuousClock.now
        let drained = await waitUntil(timeout: 600) { receivers.httpArrivals() >= backlog }
        let drainSeconds = milliseconds(ContinuousClock.now - drainStart) / 1000
        say(String(format: "[backlog] drained %d of %d in %.1f s: %.0f deliveries/s, CPU %.3f ms per delivery; RSS peak %.1f MB",
                     receivers.httpArrivals(), backlog, drainSeconds, Double(receivers.httpArrivals()) / drainSeconds,
                     (herald.cpuSeconds() - cpuBefore) * 1000 / Double(max(1, receivers.httpArrivals())), Double(herald.rss().peak) / 1024))
        if !drained { say("[backlog] INCOMPLETE") }
        await receivers.stop()
        return !drained
    }

    /// `count` events, each with one pending delivery to the http sink, due now and alive for an
    /// hour, written by concurrent writers so the store's group commit batches them.
    func fillOutbox(path: String, count: Int) async throws {
        let store = try SQLiteOutboxStore(path: path)
        let now = Date()
        let writers = 64
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    for index in stride(from: writer, to: count, by: writers) {
                        let event = Event(id: "evt_backlog_\(index)", source: "twilio", sourceID: "SMbacklog\(index)", from: "+15551234567", to: "+15005550006",
                                          body: "Your verification code is \(100_000 + index % 900_000). ref-\(index)", otp: "\(100_000 + index % 900_000)",
                                          otpDomain: nil, app: nil, route: "all", receivedAt: now.addingTimeInterval(-3600), media: [])
                        let delivery = Delivery(id: "dlv_backlog_\(index)", eventID: event.id, sink: "hook", recipient: nil, route: "all", app: nil, state: .pending,
                                                nextAttemptAt: now, expiresAt: now.addingTimeInterval(3600), createdAt: now.addingTimeInterval(-3600))
                        _ = try await store.insert(event, deliveries: [delivery])
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Waits for every accepted message to reach all three sinks and says so.
    func complete(_ name: String, receivers: Receivers, accepted: Locked<Set<Int>>, timeout: Double = 60) async -> Bool {
        let ids = accepted.withLock { $0 }
        let done = await waitUntil(timeout: timeout) { receivers.completeCount(of: ids) == ids.count }
        say("[\(name)] delivered to all 3 sinks: \(receivers.completeCount(of: ids)) of \(ids.count) accepted\(done ? "" : " (INCOMPLETE)"); duplicates \(receivers.duplicateCount())")
        await receivers.stop()
        return !done
    }

    // MARK: Phases

    struct Steady {
        var count: Int
        var accepted: Int
        var refused: Int
        /// No answer, or one other than 200 and 503 (a connection the server dropped, a timeout).
        var unanswered: Int
        var p50: Double
        var p99: Double
        var max: Double
        var missing: Int
        /// Webhook sent → Herald's 200 (stored and answered).
        var answerP50: Double
        var answerP99: Double
        var cpuPerMessage: Double

        func line(rate: Int, seconds: Int, rss: (current: Int, peak: Int)) -> String {
            String(format: "%4d msg/s for %ds: lag (sent → last sink) p50 %.2f ms, p99 %.2f ms, max %.1f ms; missing %d; webhook answered p50 %.2f ms, p99 %.2f ms; %d accepted, %d refused (503), %d unanswered; CPU %.3f ms per message; RSS %.1f MB (peak %.1f MB)",
                   rate, seconds, p50, p99, max, missing, answerP50, answerP99, accepted, refused, unanswered, cpuPerMessage, Double(rss.current) / 1024, Double(rss.peak) / 1024)
        }
    }

    /// What the load generator and loopback cost on their own: a request that does no work.
    func healthFloor(client: Client) async throws -> (p50: Double, p99: Double) {
        let times = Locked([Double]())
        let start = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<300 {
                try? await Task.sleep(until: start + .milliseconds(10 * i), clock: .continuous)
                group.addTask {
                    let sent = ContinuousClock.now
                    if (try? await client.health()) == true { times.withLock { $0.append(milliseconds(ContinuousClock.now - sent)) } }
                }
            }
        }
        let all = times.withLock { $0 }
        return (percentile(all, 0.5), percentile(all, 0.99))
    }

    /// Open loop: one webhook every 1/rate s, whatever the answers do.
    func steady(rate: Int, herald: HeraldUnderTest, receivers: Receivers, first: Int, settle: Double = 30) async throws -> Steady {
        let count = rate * seconds
        let sentAt = Locked([Int: ContinuousClock.Instant]())
        let answerTimes = Locked([Double]())
        let refused = Locked(0)
        let unanswered = Locked(0)
        let cpuBefore = herald.cpuSeconds()
        let start = ContinuousClock.now + .milliseconds(50)
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<count {
                let due = start + .nanoseconds(Int64(i) * 1_000_000_000 / Int64(rate))
                try? await Task.sleep(until: due, clock: .continuous)
                let id = first + i
                group.addTask {
                    let start = ContinuousClock.now
                    let status = try? await herald.send(id)
                    let took = milliseconds(ContinuousClock.now - start)
                    answerTimes.withLock { $0.append(took) }
                    if status == 200 { sentAt.withLock { $0[id] = start } } else if status == 503 { refused.withLock { $0 += 1 } } else { unanswered.withLock { $0 += 1 } }
                }
            }
        }
        let sent = sentAt.withLock { $0 }
        _ = await waitUntil(timeout: settle) { receivers.completeCount(of: Set(sent.keys)) >= sent.count }
        let cpu = herald.cpuSeconds() - cpuBefore
        var latencies: [Double] = []
        var missing = 0
        for (id, at) in sent {
            guard let last = receivers.lastArrival(id) else { missing += 1; continue }
            latencies.append(milliseconds(last - at))
        }
        let answers = answerTimes.withLock { $0 }
        return Steady(count: count, accepted: sent.count, refused: refused.withLock { $0 }, unanswered: unanswered.withLock { $0 }, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99),
                      max: latencies.max() ?? .nan, missing: missing, answerP50: percentile(answers, 0.5), answerP99: percentile(answers, 0.99),
                      cpuPerMessage: cpu * 1000 / Double(max(1, sent.count)))
    }

    struct Loop {
        var sent: Int
        var accepted: Double
        var delivered: Double
        var lagP50: Double
        var lagP99: Double
        var cpuPerMessage: Double
    }

    /// Closed loop: `concurrency` senders, each sending its next webhook as soon as the last is
    /// answered. Delivered counts what reached all three sinks within the same window.
    func closedLoop(herald: HeraldUnderTest, receivers: Receivers, first: Int) async throws -> Loop {
        let next = Locked(first)
        let sentAt = Locked([Int: ContinuousClock.Instant]())
        let deadline = ContinuousClock.now + .seconds(throughputSeconds)
        let started = ContinuousClock.now
        let cpuBefore = herald.cpuSeconds()
        let deliveredBefore = receivers.completeTotal()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    while ContinuousClock.now < deadline {
                        let id = next.withLock { value -> Int in defer { value += 1 }; return value }
                        let start = ContinuousClock.now
                        if (try? await herald.send(id)) == 200 { sentAt.withLock { $0[id] = start } }
                    }
                }
            }
        }
        let seconds = milliseconds(ContinuousClock.now - started) / 1000
        let delivered = receivers.completeTotal() - deliveredBefore
        let cpu = herald.cpuSeconds() - cpuBefore
        let sent = sentAt.withLock { $0 }
        _ = await waitUntil(timeout: 60) { receivers.completeCount(of: Set(sent.keys)) >= sent.count }
        let lags = sent.compactMap { id, at in receivers.lastArrival(id).map { milliseconds($0 - at) } }
        return Loop(sent: next.withLock { $0 } - first, accepted: Double(sent.count) / seconds, delivered: Double(delivered) / seconds,
                    lagP50: percentile(lags, 0.5), lagP99: percentile(lags, 0.99), cpuPerMessage: cpu * 1000 / Double(max(1, delivered)))
    }
}

/// A `herald serve` process with the benchmark's configuration, and a client for it.
final class HeraldUnderTest: Sendable {
    /// One process, or several sharing a PostgreSQL outbox (webhooks go to each in turn).
    let processes: [Process]
    let clients: [Client]
    let folder: URL
    /// Message ids Herald answered 200 for.
    let accepted = Locked(Set<Int>())

    var process: Process { processes[0] }
    var client: Client { clients[0] }

    private init(processes: [Process], clients: [Client], folder: URL) {
        self.processes = processes
        self.clients = clients
        self.folder = folder
    }

    static func makeFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herald-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    static func start(_ bench: HeraldBench, receivers: Receivers, folder given: URL? = nil, waitForReady: Bool = false,
                      storage: String = "sqlite:herald.db", processes count: Int = 1) async throws -> HeraldUnderTest {
        let folder = try given ?? makeFolder()
        var processes: [Process] = []
        var clients: [Client] = []
        for index in 0..<count {
            let own = count == 1 ? folder : folder.appendingPathComponent("node-\(index)")
            try FileManager.default.createDirectory(at: own, withIntermediateDirectories: true)
            let (process, client) = try await launch(bench, receivers: receivers, folder: own, storage: storage, nodeID: "bench-\(index)")
            processes.append(process)
            clients.append(client)
        }
        for client in clients { try await client.waitUntilUp(path: waitForReady ? "/readyz" : "/healthz") }
        return HeraldUnderTest(processes: processes, clients: clients, folder: folder)
    }

    private static func launch(_ bench: HeraldBench, receivers: Receivers, folder: URL, storage: String, nodeID: String) async throws -> (Process, Client) {
        let port = try await freePort()
        let extra = bench.sinkConcurrency.map { ", concurrency: \($0)" } ?? ""
        let sinks = bench.sinkTypes == "http"
            ? """
              slack: { type: http, url: "\(receivers.url(.slack))"\(extra) }
              sms: { type: http, url: "\(receivers.url(.twilio))/2010-04-01/Accounts/AC0/Messages.json"\(extra) }
              hook: { type: http, url: "\(receivers.url(.http))"\(extra) }
            """
            : """
              slack: { type: slack, webhook_url: "\(receivers.url(.slack))", rate_limit: 1000000/s, burst: 10000\(extra) }
              sms:
                type: twilio
                account_sid: AC00000000000000000000000000000000
                auth_token: bench-twilio-token
                from: "+15005550006"
                to: ["+15557654321"]
                base_url: "\(receivers.url(.twilio))"\(extra.isEmpty ? "" : "\n    concurrency: \(bench.sinkConcurrency!)")
              hook: { type: http, url: "\(receivers.url(.http))"\(extra) }
            """
        // Default sink settings, except two limits that would measure themselves: the load
        // generator is one client (server.limits.per_client, 100/s by default), and Slack's own
        // limit (rate_limit 1/s by default, as Slack documents) is lifted for the fake Slack.
        try """
            server:
              listen: "127.0.0.1:\(port)"
              public_url: "http://bench.test"
              limits: { per_client: 1000000/s, per_client_burst: 1000000 }
              node_id: \(nodeID)
            storage: \(storage)
            sources: { twilio: { auth_token: bench-token } }
            sinks:
            \(sinks)
            routes:
              - name: all
                deliver: [slack, sms, hook]
            """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)
        let process = Process()
        let arguments = ["serve", "--log-level", bench.logLevel]
        if bench.heraldCPU.isEmpty {
            process.executableURL = URL(fileURLWithPath: bench.herald)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
            process.arguments = ["-c", bench.heraldCPU, URL(fileURLWithPath: bench.herald).standardizedFileURL.path] + arguments
        }
        process.currentDirectoryURL = folder
        if let log = bench.heraldLog {
            if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
            let handle = FileHandle(forWritingAtPath: log)
            handle?.seekToEndOfFile()
            process.standardError = handle
        } else {
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        return (process, Client(port: port))
    }

    func send(_ id: Int) async throws -> Int {
        let status = try await clients[id % clients.count].send(id)
        if status == 200 { _ = accepted.withLock { $0.insert(id) } }
        return status
    }

    /// User + system CPU time of the processes so far.
    func cpuSeconds() -> Double {
        processes.reduce(0) { $0 + processCPUSeconds($1.processIdentifier) }
    }

    func rss() -> (current: Int, peak: Int) {
        processes.map { residentKB($0.processIdentifier) }.reduce((0, 0)) { ($0.0 + $1.current, $0.1 + $1.peak) }
    }

    func stop() {
        for process in processes { process.terminate() }
        for process in processes { process.waitUntilExit() }
        for client in clients { Task { try? await client.http.shutdown() } }
        try? FileManager.default.removeItem(at: folder)
    }
}

/// Signed webhooks to Herald.
struct Client: Sendable {
    let port: Int
    let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 256
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    func send(_ id: Int) async throws -> Int {
        let sid = "SM" + String(format: "%032x", id)
        let parameters = [("MessageSid", sid), ("From", "+15551234567"), ("To", "+15005550006"),
                          ("Body", "Your verification code is \(100_000 + id % 900_000). ref-\(id)")]
        let signature = TwilioSignature.compute(url: "http://bench.test/twilio/sms", parameters: parameters.map { (name: $0.0, value: $0.1) }, authToken: "bench-token")
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/twilio/sms")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "X-Twilio-Signature", value: signature)
        let body = parameters.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&")
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await http.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 4096)
        return Int(response.status.code)
    }

    func health() async throws -> Bool {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/healthz")
        request.method = .GET
        let response = try await http.execute(request, timeout: .seconds(5))
        _ = try await response.body.collect(upTo: 1024)
        return response.status == .ok
    }

    func waitUntilUp(path: String = "/healthz") async throws {
        for _ in 0..<1200 {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
            request.method = .GET
            if let response = try? await http.execute(request, timeout: .seconds(1)), response.status == .ok { return }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw ValidationError("herald did not start")
    }
}

/// How the fake receivers answer.
struct Behaviour: Sendable {
    var delay: Duration = .zero
    var failureRate: Double = 0
}

/// Fake Slack, Twilio and HTTP receivers on loopback, answering as those services do. Each
/// request is matched to its message by the `ref-N` the load generator put in the SMS text.
final class Receivers: Sendable {
    enum Kind: Int, CaseIterable, Sendable {
        case slack, twilio, http
    }

    struct Record: Sendable {
        /// Bit per receiver that answered it with success.
        var mask: UInt8 = 0
        var last: ContinuousClock.Instant?
        var duplicates = 0
    }

    private let ports: [Int]
    private let tasks: [Task<Void, any Error>]
    private let state: State

    private init(ports: [Int], tasks: [Task<Void, any Error>], state: State) {
        self.ports = ports
        self.tasks = tasks
        self.state = state
    }

    final class State: Sendable {
        let table = Mutex<[Int: Record]>([:])
        let failedAt = Mutex<[Int: ContinuousClock.Instant]>([:])
        let gaps = Mutex<[Double]>([])
        let failures = Atomic<Int>(0)
        let hookArrivals = Atomic<Int>(0)
        let behaviour: Behaviour

        init(behaviour: Behaviour) {
            self.behaviour = behaviour
        }

        /// Returns whether to answer with success.
        func handle(_ kind: Kind, body: String) async -> Bool {
            let arrived = ContinuousClock.now
            guard let range = body.range(of: "ref-") else { return true }
            let id = Int(body[range.upperBound...].prefix { $0.isNumber }) ?? -1
            if behaviour.delay > .zero { try? await Task.sleep(for: behaviour.delay) }
            let key = id * 4 + kind.rawValue
            if behaviour.failureRate > 0, Double.random(in: 0..<1) < behaviour.failureRate {
                failures.add(1, ordering: .relaxed)
                let now = ContinuousClock.now
                failedAt.withLock { $0[key] = now }
                return false
            }
            if let failed = failedAt.withLock({ $0.removeValue(forKey: key) }) {
                gaps.withLock { $0.append(milliseconds(arrived - failed)) }
            }
            if kind == .http { hookArrivals.add(1, ordering: .relaxed) }
            let now = ContinuousClock.now
            table.withLock { table in
                var record = table[id] ?? Record()
                let bit = UInt8(1) << UInt8(kind.rawValue)
                if record.mask & bit != 0 { record.duplicates += 1 }
                record.mask |= bit
                record.last = now
                table[id] = record
            }
            return true
        }
    }

    static func start(_ behaviour: Behaviour) async throws -> Receivers {
        let state = State(behaviour: behaviour)
        var ports: [Int] = []
        var tasks: [Task<Void, any Error>] = []
        for kind in Kind.allCases {
            let router = Router()
            router.post("/**") { request, _ -> Response in
                let buffer = try await request.body.collect(upTo: 65536)
                let body = String(buffer: buffer)
                guard await state.handle(kind, body: body) else {
                    return Response(status: .internalServerError, body: .init(byteBuffer: ByteBuffer(string: "try again")))
                }
                switch kind {
                case .slack:
                    return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok")))
                case .twilio:
                    let sid = "SM" + String(format: "%032x", Int.random(in: 0..<Int.max))
                    return Response(status: .created, headers: [.contentType: "application/json"],
                                    body: .init(byteBuffer: ByteBuffer(string: #"{"sid":"\#(sid)","status":"queued"}"#)))
                case .http:
                    return Response(status: .ok)
                }
            }
            let (stream, continuation) = AsyncStream<Int>.makeStream()
            let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
                                  onServerRunning: { continuation.yield($0.localAddress?.port ?? 0); continuation.finish() },
                                  logger: Logger(label: "receiver", factory: { _ in SwiftLogNoOpLogHandler() }))
            tasks.append(Task { try await app.run() })
            var iterator = stream.makeAsyncIterator()
            guard let port = await iterator.next() else { throw ValidationError("receiver did not start") }
            ports.append(port)
        }
        return Receivers(ports: ports, tasks: tasks, state: state)
    }

    func url(_ kind: Kind) -> String {
        switch kind {
        case .slack: "http://127.0.0.1:\(ports[0])/services/T0000/B0000/benchsecret"
        case .twilio: "http://127.0.0.1:\(ports[1])"
        case .http: "http://127.0.0.1:\(ports[2])/hook"
        }
    }

    /// When message `id` reached its last receiver, if all three have it.
    func lastArrival(_ id: Int) -> ContinuousClock.Instant? {
        state.table.withLock { $0[id].flatMap { $0.mask == 0b111 ? $0.last : nil } }
    }

    func completeCount(of ids: Set<Int>) -> Int {
        state.table.withLock { table in ids.reduce(0) { $0 + (table[$1]?.mask == 0b111 ? 1 : 0) } }
    }

    func completeTotal() -> Int {
        state.table.withLock { $0.values.reduce(0) { $0 + ($1.mask == 0b111 ? 1 : 0) } }
    }

    func duplicateCount() -> Int { state.table.withLock { $0.values.reduce(0) { $0 + $1.duplicates } } }
    func retryGaps() -> [Double] { state.gaps.withLock { $0 } }
    func failureCount() -> Int { state.failures.load(ordering: .relaxed) }
    func httpArrivals() -> Int { state.hookArrivals.load(ordering: .relaxed) }

    func stop() async {
        for task in tasks { task.cancel() }
    }
}

/// User + system CPU time of a process so far (0 once it is gone).
func processCPUSeconds(_ pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After the command: state is field 3, utime 14, stime 15 (1-based over the whole line).
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Resident memory of a process in KiB: now and the peak (VmHWM).
func residentKB(_ pid: Int32) -> (current: Int, peak: Int) {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
    func field(_ name: String) -> Int {
        status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
            .flatMap { Int($0.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") } ?? 0
    }
    return (field("VmRSS"), field("VmHWM"))
}

func waitUntil(timeout seconds: Double, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

/// A loopback port nobody listens on right now.
func freePort() async throws -> Int {
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    let app = Application(router: Router(), configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
                          onServerRunning: { continuation.yield($0.localAddress?.port ?? 0); continuation.finish() },
                          logger: Logger(label: "port", factory: { _ in SwiftLogNoOpLogHandler() }))
    let task = Task { try await app.run() }
    var iterator = ports.makeAsyncIterator()
    let port = await iterator.next() ?? 0
    task.cancel()
    _ = try? await task.value
    return port
}

/// A value behind a lock that closures can share.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) {
        mutex = Mutex(value)
    }

    func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T {
        mutex.withLock { body(&$0) }
    }
}

/// Unbuffered, so progress shows even when the output is a pipe.
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

extension HeraldBench {
    /// The code finder alone: every message of its table, many times over, in five rounds; the
    /// cost per message is the median round's time divided by the messages it handled.
    func finderBenchmark(_ path: String) throws {
        let rows = OTPTableRow.parse(try String(contentsOfFile: path, encoding: .utf8))
        let wrong = rows.filter { OTPExtractor.extract(from: $0.message) != $0.otp }
        guard wrong.isEmpty, !rows.isEmpty else {
            say("the finder disagrees with its table on \(wrong.count) of \(rows.count) rows; run make test")
            throw ExitCode(1)
        }
        let passes = 400
        var found = 0
        for row in rows { if OTPExtractor.extract(from: row.message) != nil { found += 1 } }
        var perMessage: [Double] = []
        for _ in 0..<5 {
            let start = ContinuousClock.now
            for _ in 0..<passes {
                for row in rows where OTPExtractor.extract(from: row.message) != nil { found &+= 1 }
            }
            let elapsed = ContinuousClock.now - start
            perMessage.append(Double(elapsed.components.attoseconds) / 1e9 / Double(passes * rows.count) + Double(elapsed.components.seconds) * 1e9 / Double(passes * rows.count))
        }
        perMessage.sort()
        let bytes = rows.reduce(0) { $0 + $1.message.utf8.count } / rows.count
        say(String(format: "code finder: %d messages (%d bytes on average) × %d passes × 5 rounds: median %.2f µs a message (rounds %.2f–%.2f µs)",
                   rows.count, bytes, passes, perMessage[2] / 1000, perMessage[0] / 1000, perMessage[4] / 1000))
        if found == 0 { say("") }
    }
}

extension HeraldBench {
    /// What the Twilio handler does before routing: decode a typical inbound SMS form and check its
    /// signature (which tries the URL as given and with the default port).
    func webhookBenchmark() {
        let url = "https://herald.example.com/twilio/sms"
        let fields: [(name: String, value: String)] = [
            ("ToCountry", "US"), ("ToState", "CA"), ("SmsMessageSid", "SM0123456789abcdef0123456789abcdef"), ("NumMedia", "0"),
            ("ToCity", "SAN FRANCISCO"), ("FromZip", "94105"), ("SmsSid", "SM0123456789abcdef0123456789abcdef"), ("FromState", "CA"),
            ("SmsStatus", "received"), ("FromCity", "SAN FRANCISCO"), ("Body", "Your Amazon verification code is: 482913. Don't share it."),
            ("FromCountry", "US"), ("To", "+15005550006"), ("ToZip", "94105"), ("NumSegments", "1"),
            ("MessageSid", "SM0123456789abcdef0123456789abcdef"), ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("From", "+15551234567"), ("ApiVersion", "2010-04-01"),
        ]
        let body = fields.map { "\($0.name)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&")
        let signature = TwilioSignature.compute(url: url, parameters: fields, authToken: "bench-token")
        let iterations = 20_000
        var rounds: [Double] = []
        var valid = 0
        for _ in 0..<5 {
            let start = ContinuousClock.now
            for _ in 0..<iterations {
                let parameters = TwilioSignature.parseForm(body)
                if TwilioSignature.isValid(signature: signature, url: url, parameters: parameters, authToken: "bench-token") { valid += 1 }
            }
            let elapsed = ContinuousClock.now - start
            rounds.append((Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12) / Double(iterations))
        }
        rounds.sort()
        say(String(format: "webhook form + signature (%d fields, %d bytes): median %.2f µs (rounds %.2f–%.2f µs)%@",
                   fields.count, body.utf8.count, rounds[2], rounds[0], rounds[4], valid == 5 * iterations ? "" : " — SIGNATURE FAILED"))
    }

    /// The outbox's write path without the network: per message, the webhook's insert (the event
    /// and three deliveries stored claimed) and the three results, from 32 writers at once, so the
    /// group commit batches as under load. CPU time is this process's own (user + system).
    func storeBenchmark() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-store-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteOutboxStore(path: directory.appendingPathComponent("herald.db").path)
        let t = OutboxStoreContract.Fixture(t0: Date())
        let writers = 32, perWriter = 125, roundCount = 5
        var cpu: [Double] = [], rates: [Double] = []
        var failures = 0
        for round in 0..<roundCount {
            let cpuBefore = Self.ownCPUSeconds()
            let start = ContinuousClock.now
            failures += try await withThrowingTaskGroup(of: Int.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        var failed = 0
                        for n in 0..<perWriter {
                            let id = "\(round)_\(writer)_\(n)"
                            let deliveries = ["slack", "twilio", "http"].map { sink in
                                var d = t.delivery("dlv_\(id)_\(sink)", event: "evt_\(id)", sink: sink, state: .inFlight)
                                d.attempts = 1
                                d.leaseUntil = t.t0.addingTimeInterval(30)
                                return d
                            }
                            _ = try await store.insert(t.event("evt_\(id)", sourceID: "SM\(id)"), deliveries: deliveries)
                            try await withThrowingTaskGroup(of: Bool.self) { results in
                                for d in deliveries {
                                    results.addTask {
                                        try await store.complete(t.attempt(d, number: 1, outcome: "delivered", detail: "HTTP 200"), result: DeliveryResult(next: .delivered))
                                    }
                                }
                                for try await applied in results where !applied { failed += 1 }
                            }
                        }
                        return failed
                    }
                }
                return try await group.reduce(0, +)
            }
            let elapsed = ContinuousClock.now - start
            let messages = Double(writers * perWriter)
            cpu.append((Self.ownCPUSeconds() - cpuBefore) * 1e6 / messages)
            rates.append(messages / elapsed.seconds)
        }
        // The first round warms the file and the caches; the figures are of the other four.
        let kept = Array(cpu.dropFirst()).sorted(), keptRates = Array(rates.dropFirst()).sorted()
        say(String(format: "outbox writes (SQLite, synchronous=FULL; insert of 1 event + 3 deliveries, then 3 results; %d writers): CPU %.0f µs per message (rounds %.0f–%.0f), %.0f msg/s (%.0f–%.0f)%@",
                   writers, (kept[1] + kept[2]) / 2, kept[0], kept[3], (keptRates[1] + keptRates[2]) / 2, keptRates[0], keptRates[3],
                   failures == 0 ? "" : " — \(failures) RESULTS NOT APPLIED"))
    }

    /// User + system CPU time of this process so far.
    static func ownCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return [usage.ru_utime, usage.ru_stime].reduce(0) { $0 + Double($1.tv_sec) + Double($1.tv_usec) / 1e6 }
    }
}
