import Foundation
import HeraldCore
import HeraldSinks
import HeraldTesting
import Logging
import Synchronization
import MetricsTestKit
import Testing

/// The driver with a real store and a manual clock: the machine's decisions performed end to end.
/// (The decisions themselves are tested without tasks in `DispatchMachineTests`.)
@Suite("Dispatcher")
struct DispatcherTests {
    struct Harness {
        let clock: ManualClock
        let store: InMemoryOutboxStore
        let dispatcher: Dispatcher
        let ingestor: Ingestor

        init(sinks: [any Sink], retry: RetryPolicy = RetryPolicy(maxAttempts: 3, initialBackoff: .seconds(1), maxBackoff: .seconds(60)),
             concurrency: Int = 4, expireAfter: Duration = .seconds(600)) throws {
            let clock = ManualClock()
            self.clock = clock
            store = InMemoryOutboxStore(clock: clock)
            let names = sinks.map(\.name)
            let config = try ConfigLoader.parse("""
                sinks:
                \(names.map { "  \($0): { type: file, path: unused.jsonl }" }.joined(separator: "\n"))
                routes:
                  - name: all
                    deliver: [\(names.joined(separator: ", "))]
                """)
            let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            dispatcher = Dispatcher(
                store: store, sinks: sinks, lanes: sinks.map { LaneSettings(sink: $0.name, retry: retry, concurrency: concurrency, timeout: .seconds(5)) },
                clock: clock, logger: logger, random: { $0.upperBound }
            )
            var infos: [String: Ingestor.SinkInfo] = [:]
            for sink in sinks { infos[sink.name] = .init(recipients: sink.recipients) }
            ingestor = Ingestor(router: Router(routes: config.routes, defaultExpireAfter: expireAfter), store: store,
                                dispatcher: dispatcher, sinks: infos, clock: clock, logger: logger)
        }

        func send(_ body: String = "Your code is 123456", id: String? = nil) async throws -> Ingestor.Result {
            try await ingestor.ingest(InboundMessage(source: "twilio", sourceID: id, from: "+15550001111", to: nil, body: body))
        }

        func delivery(_ id: String) async throws -> Delivery? {
            try await store.deliveries(DeliveryFilter(limit: 1000)).first { $0.id == id }
        }

        func waitFor(_ id: String, _ predicate: @escaping (Delivery) -> Bool) async throws -> Delivery {
            var last: Delivery?
            let ok = try await eventually {
                last = try await delivery(id)
                return last.map(predicate) ?? false
            }
            #expect(ok, "delivery never reached the expected state; last: \(String(describing: last))")
            return try #require(last)
        }

        /// Runs the dispatcher for the duration of `body`.
        func run(_ body: () async throws -> Void) async throws {
            let task = Task { try await dispatcher.run() }
            defer { task.cancel() }
            try await body()
        }
    }

    @Test func freshDeliveryGoesOutWithoutWaitingOnTheClock() async throws {
        let sink = RecordingSink(name: "slack")
        let h = try Harness(sinks: [sink])
        try await h.run {
            let result = try await h.send()
            #expect(result.deliveries.count == 1)
            let delivery = try await h.waitFor(result.deliveries[0].id) { $0.state == .delivered }
            #expect(delivery.attempts == 1)
            #expect(sink.requests.first?.event.otp == "123456")
            #expect(h.clock.now() == Date(timeIntervalSince1970: 1_800_000_000), "the clock never moved")
        }
    }

    @Test func retriesOnTheBackoffScheduleThenDelivers() async throws {
        let sink = RecordingSink(name: "slack", script: [.retry(reason: "HTTP 500"), .retry(reason: "HTTP 502")])
        let h = try Harness(sinks: [sink])
        try await h.run {
            let id = try await h.send().deliveries[0].id
            var d = try await h.waitFor(id) { $0.attempts == 1 && $0.state == .pending }
            #expect(d.lastError == "HTTP 500")
            // Jitter pinned to the ceiling: 1 s after attempt 1.
            #expect(d.nextAttemptAt == h.clock.now().addingTimeInterval(1))
            #expect(await eventually { h.clock.sleepers.contains(d.nextAttemptAt) }, "the scheduler sleeps until the retry is due")
            h.clock.advance(by: .milliseconds(999))
            try await Task.sleep(for: .milliseconds(50))
            #expect(sink.requests.count == 1, "nothing is sent before the retry is due")
            h.clock.advance(by: .milliseconds(1))
            d = try await h.waitFor(id) { $0.attempts == 2 && $0.state == .pending }
            #expect(d.nextAttemptAt == h.clock.now().addingTimeInterval(2))
            h.clock.advance(by: .seconds(2))
            d = try await h.waitFor(id) { $0.state == .delivered }
            #expect(d.attempts == 3)
            #expect(sink.requests.map(\.delivery.id) == [id, id, id], "the delivery id is stable across retries")
            let stored = try #require(try await h.store.event(id: d.eventID))
            #expect(stored.attempts.map(\.outcome) == ["retry", "retry", "delivered"])
            #expect(stored.attempts.map(\.detail) == ["HTTP 500", "HTTP 502", nil])
        }
    }

    @Test func retryAfterIsHonoured() async throws {
        let sink = RecordingSink(name: "slack", script: [.retry(after: .seconds(30), reason: "HTTP 429")])
        let h = try Harness(sinks: [sink])
        try await h.run {
            let id = try await h.send().deliveries[0].id
            let d = try await h.waitFor(id) { $0.attempts == 1 && $0.state == .pending }
            #expect(d.nextAttemptAt == h.clock.now().addingTimeInterval(30))
            h.clock.advance(by: .seconds(30))
            _ = try await h.waitFor(id) { $0.state == .delivered }
            #expect(sink.requests.count == 2)
        }
    }

    @Test func stopsAtMaxAttemptsAndKeepsTheLastError() async throws {
        let sink = RecordingSink(name: "slack", fallback: .retry(reason: "HTTP 500: rollup_error"))
        let h = try Harness(sinks: [sink])
        try await h.run {
            let id = try await h.send().deliveries[0].id
            for attempt in 1...2 {
                let d = try await h.waitFor(id) { $0.attempts == attempt && $0.state == .pending }
                #expect(await eventually { h.clock.sleepers.contains(d.nextAttemptAt) })
                h.clock.advance(to: d.nextAttemptAt)
            }
            let d = try await h.waitFor(id) { $0.state == .failed }
            #expect(d.attempts == 3)
            #expect(d.lastError == "gave up after 3 attempts: HTTP 500: rollup_error")
            h.clock.advance(by: .seconds(3600))
            try await Task.sleep(for: .milliseconds(50))
            #expect(sink.requests.count == 3)
        }
    }

    @Test func permanentFailureIsNotRetried() async throws {
        let sink = RecordingSink(name: "slack", script: [.permanent(reason: "Slack: HTTP 400: invalid_payload")])
        let h = try Harness(sinks: [sink])
        try await h.run {
            let id = try await h.send().deliveries[0].id
            let d = try await h.waitFor(id) { $0.state == .failed }
            #expect(d.lastError == "Slack: HTTP 400: invalid_payload")
            h.clock.advance(by: .seconds(3600))
            try await Task.sleep(for: .milliseconds(50))
            #expect(sink.requests.count == 1)
        }
    }

    @Test func neverDeliveredAfterExpiry() async throws {
        let expiring = RecordingSink(name: "slack", fallback: .retry(after: .seconds(45), reason: "HTTP 503"))
        let h2 = try Harness(sinks: [expiring], retry: RetryPolicy(maxAttempts: 10), expireAfter: .seconds(60))
        try await h2.run {
            let id = try await h2.send().deliveries[0].id
            let first = try await h2.waitFor(id) { $0.attempts == 1 && $0.state == .pending }
            #expect(await eventually { h2.clock.sleepers.contains(first.nextAttemptAt) })
            h2.clock.advance(to: first.nextAttemptAt)
            let d = try await h2.waitFor(id) { $0.state == .expired }
            #expect(d.attempts == 2)
            #expect(d.lastError == "expired while retrying: HTTP 503")
            h2.clock.advance(by: .seconds(3600))
            try await Task.sleep(for: .milliseconds(50))
            #expect(expiring.requests.count == 2, "nothing is sent after expiry")
        }
    }

    @Test func expiredBeforeTheFirstAttempt() async throws {
        let sink = RecordingSink(name: "slack")
        let h = try Harness(sinks: [sink], expireAfter: .seconds(60))
        // Ingest while the dispatcher is not running; it starts after the code expired.
        let id = try await h.send().deliveries[0].id
        h.clock.advance(by: .seconds(61))
        try await h.run {
            let d = try await h.waitFor(id) { $0.state == .expired }
            #expect(d.attempts == 0)
            #expect(sink.requests.isEmpty)
        }
    }

    @Test func duplicateSourceIDCreatesNothing() async throws {
        let sink = RecordingSink(name: "slack")
        let h = try Harness(sinks: [sink])
        try await h.run {
            let first = try await h.send(id: "SM1")
            let second = try await h.send(id: "SM1")
            #expect(second.duplicate)
            #expect(second.eventID == first.eventID)
            #expect(second.deliveries.isEmpty)
            _ = try await h.waitFor(first.deliveries[0].id) { $0.state == .delivered }
            try await Task.sleep(for: .milliseconds(50))
            #expect(sink.requests.count == 1)
            #expect(await h.store.allEvents().count == 1)
        }
    }

    /// A sink that never answers holds only its own lane.
    @Test func aHangingSinkDoesNotDelayAnother() async throws {
        let hanging = HangingSink(name: "slow")
        let fast = RecordingSink(name: "fast")
        let h = try Harness(sinks: [hanging, fast], concurrency: 2)
        try await h.run {
            var ids: [String] = []
            for i in 0..<5 { ids += try await h.send("code \(1000 + i)").deliveries.filter { $0.sink == "fast" }.map(\.id) }
            for id in ids { _ = try await h.waitFor(id) { $0.state == .delivered } }
            #expect(fast.requests.count == 5)
            #expect(hanging.started.value == 2, "the slow sink's concurrency limit holds")
        }
    }

    @Test func recipientsGetOneDeliveryEach() async throws {
        let sink = RecordingSink(name: "phones", recipients: ["+15550000001", "+15550000002"], script: [.permanent(reason: "21211")])
        let h = try Harness(sinks: [sink])
        try await h.run {
            let result = try await h.send()
            #expect(result.deliveries.map(\.recipient) == ["+15550000001", "+15550000002"])
            let states = try await (result.deliveries.asyncMap { d in try await h.waitFor(d.id) { $0.state.isFinished }.state })
            #expect(states.sorted { $0.rawValue < $1.rawValue } == [.delivered, .failed])
        }
    }

    /// A delivery a crashed run left in flight is sent again at the next start, without waiting
    /// for its lease.
    @Test func startUpResumesWhatACrashLeftInFlight() async throws {
        let sink = RecordingSink(name: "slack")
        let h = try Harness(sinks: [sink])
        let now = h.clock.now()
        let event = Event(id: "evt_1", source: "twilio", sourceID: "SM1", from: "+1", to: nil, body: "x", receivedAt: now)
        let delivery = Delivery(id: "dlv_1", eventID: "evt_1", sink: "slack", route: "all", app: nil, nextAttemptAt: now, expiresAt: now.addingTimeInterval(600), createdAt: now)
        _ = try await h.store.insert(event, deliveries: [delivery])
        let claimed = try await h.store.claimDue(sink: "slack", limit: 1, leaseFor: .seconds(30))
        #expect(claimed.claimed.count == 1)
        try await h.run {
            let d = try await h.waitFor("dlv_1") { $0.state == .delivered }
            #expect(d.attempts == 2, "the crashed run's attempt counts")
            #expect(h.clock.now() == now, "no lease had to run out")
        }
        // The old claim's result is fenced off: attempt 1 no longer owns the delivery.
        let stale = DeliveryAttempt(deliveryID: "dlv_1", number: 1, startedAt: now, duration: .zero, outcome: "delivered", detail: nil)
        #expect(try await h.store.complete(stale, result: DeliveryResult(next: .delivered)) == false)
    }
}

/// A sink whose attempts never end until cancelled.
final class HangingSink: Sink {
    let name: String
    let started = Counter()

    init(name: String) {
        self.name = name
    }

    func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome {
        started.increment()
        try? await Task.sleep(for: .seconds(3600))
        return .retry(reason: "cancelled")
    }
}

final class Counter: Sendable {
    private let storage = Mutex(0)
    var value: Int { storage.withLock { $0 } }
    func increment() { storage.withLock { $0 += 1 } }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}

/// Defect 9: a result that did not land (fenced out, or the store failed) is not counted or
/// reported as if it had.
@Suite("Dispatcher: results that did not land")
struct UnappliedResultTests {
    struct DiskFull: Error {}

    @Test(arguments: [false, true])
    func aResultThatDidNotLandIsNotCounted(_ storeFails: Bool) async throws {
        let clock = ManualClock()
        // Every `complete` is fenced out, or fails.
        let store = HookedStore(clock: clock, complete: { _, _ in
            if storeFails { throw DiskFull() }
            return false
        })
        let metrics = TestMetrics()
        let sink = RecordingSink(name: "slack")
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let dispatcher = Dispatcher(store: store, sinks: [sink], lanes: [LaneSettings(sink: "slack")], clock: clock, logger: logger,
                                    metrics: HeraldMetrics(factory: metrics))
        let config = try ConfigLoader.parse("sinks: { slack: { type: file, path: unused.jsonl } }\nroutes: [ { deliver: [slack] } ]")
        let ingestor = Ingestor(router: Router(config: config), store: store, dispatcher: dispatcher, sinks: ["slack": .init()], clock: clock, logger: logger)
        let task = Task { try await dispatcher.run() }
        defer { task.cancel() }
        #expect(await eventually { dispatcher.phase == .running })
        _ = try await ingestor.ingest(InboundMessage(source: "twilio", sourceID: "SM1", from: "+15550001111", to: nil, body: "code 123456"))
        #expect(await eventually { sink.requests.count == 1 })
        #expect(await eventually { dispatcher.idle })
        #expect(metrics.counterTotal(label: "herald_deliveries_total") == 0, "nothing is counted for a result that is not in force")
        #expect(metrics.timers.isEmpty)
        #expect(try await store.delivery(id: sink.requests[0].delivery.id)?.state == .inFlight, "the lease returns it to pending")
    }
}

/// A message's deliveries start once only its write's commit is left (the `fsync` runs while they
/// go out); the webhook's answer still waits for the commit.
@Suite("Dispatcher: deliveries start before the commit")
struct DeliveriesBeforeCommitTests {
    struct CommitFailed: Error {}
    enum Commit { case pass, hold, fail }

    /// The store's "commit": passes, waits for `release`, or fails (the memory store keeps the write).
    final class Commits: Sendable {
        let mode = Mutex(Commit.pass)
        let released: AsyncStream<Void>
        let release: AsyncStream<Void>.Continuation
        init() { (released, release) = AsyncStream<Void>.makeStream() }

        func commit() async throws {
            switch mode.withLock({ $0 }) {
            case .pass: return
            case .fail: throw CommitFailed()
            case .hold: for await _ in released { return }
            }
        }
    }

    struct Setup {
        let commits = Commits()
        let store: HookedStore
        let sink = RecordingSink(name: "slack")
        let dispatcher: Dispatcher
        let ingestor: Ingestor

        init(concurrency: Int = 4) throws {
            let clock = ManualClock()
            let commits = self.commits
            store = HookedStore(clock: clock, commit: { try await commits.commit() })
            let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            dispatcher = Dispatcher(store: store, sinks: [sink], lanes: [LaneSettings(sink: "slack", concurrency: concurrency)], clock: clock, logger: logger)
            let config = try ConfigLoader.parse("sinks: { slack: { type: file, path: unused.jsonl } }\nroutes: [ { deliver: [slack] } ]")
            ingestor = Ingestor(router: Router(config: config), store: store, dispatcher: dispatcher, sinks: ["slack": .init()], clock: clock, logger: logger)
        }

        func send(_ id: String) async throws -> Ingestor.Result {
            try await ingestor.ingest(InboundMessage(source: "twilio", sourceID: id, from: "+15550001111", to: nil, body: "code 123456"))
        }
    }

    @Test func aDeliveryGoesOutWhileItsWriteCommits() async throws {
        let s = try Setup()
        let task = Task { try await s.dispatcher.run() }
        defer { task.cancel() }
        #expect(await eventually { s.dispatcher.idle }, "running, its first look at the store done")
        s.commits.mode.withLock { $0 = .hold }
        let answered = Locked(false)
        let ingest = Task {
            defer { answered.update { $0 = true } }
            return try await s.send("SM1")
        }
        #expect(await eventually { s.sink.requests.count == 1 }, "the delivery does not wait for the commit")
        #expect(!answered.current, "the answer does")
        s.commits.release.yield()
        let result = try await ingest.value
        #expect(!result.duplicate)
        #expect(result.deliveries.map(\.state) == [.inFlight], "stored claimed: the lane had room")
        #expect(s.sink.requests.first?.delivery.id == result.deliveries.first?.id)
        #expect(await eventually { s.dispatcher.idle })
        #expect(try await s.store.delivery(id: result.deliveries[0].id)?.state == .delivered)

        // A repeat of the message is known by its write, before anything goes out.
        s.commits.mode.withLock { $0 = .pass }
        #expect(try await s.send("SM1").duplicate)
        #expect(await eventually { s.dispatcher.idle })
        #expect(s.sink.requests.count == 1)
    }

    /// The commit fails after the delivery started: the webhook hears the error, the delivery
    /// still ends and gives its slot back once (not a second time as a cancelled reservation),
    /// and the next message is taken and delivered as usual.
    @Test func aCommitThatFailsAfterTheDeliveryStarted() async throws {
        let s = try Setup(concurrency: 1)
        let task = Task { try await s.dispatcher.run() }
        defer { task.cancel() }
        #expect(await eventually { s.dispatcher.idle }, "running, its first look at the store done")
        s.commits.mode.withLock { $0 = .fail }
        await #expect(throws: CommitFailed.self) { try await s.send("SM1") }
        #expect(await eventually { s.sink.requests.count == 1 })
        #expect(await eventually { s.dispatcher.idle }, "nothing held, nothing given back twice")

        s.commits.mode.withLock { $0 = .pass }
        let next = try await s.send("SM2")
        #expect(next.deliveries.map(\.state) == [.inFlight], "the lane's one slot is free again")
        #expect(await eventually { s.sink.requests.count == 2 })
        #expect(await eventually { s.dispatcher.idle })
    }
}
