import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Sends deliveries to their sinks: one lane per sink with its own concurrency limit (a slow or
/// dead sink only ever occupies its own lane), retries on the schedule `RetryPolicy` decides, and
/// never sends after expiry.
///
/// Fresh deliveries go straight to their lane (`schedule` with a due time of now); retries wait in
/// an in-memory timetable, and one scheduler task sleeps until exactly the next due time. The store
/// stays the truth: every attempt claims the delivery first, so a delivery scheduled twice is still
/// sent once, and `recover` rebuilds the timetable at start-up.
public final class Dispatcher: Service, Sendable {
    public struct Lane: Sendable {
        public var sink: any Sink
        public var retry: RetryPolicy
        public var concurrency: Int
        public var timeout: Duration
        /// Attempts per second (nil: as fast as the concurrency allows) and the burst above it.
        public var rateLimit: Double?
        public var burst: Int

        public init(sink: any Sink, retry: RetryPolicy, concurrency: Int, timeout: Duration, rateLimit: Double? = nil, burst: Int = 1) {
            self.sink = sink
            self.retry = retry
            self.concurrency = max(1, concurrency)
            self.timeout = timeout
            self.rateLimit = rateLimit
            self.burst = max(1, burst)
        }
    }

    /// A lane's pace: its token bucket, and a pause when the receiver asked to wait (429 with
    /// `Retry-After`), which holds back every later delivery to that sink, not only the retried one.
    final class Pacer: Sendable {
        struct State {
            var bucket: TokenBucket?
            var pausedUntil: Date?
        }
        let state: Mutex<State>

        init(rate: Double?, burst: Int, now: Date) {
            state = Mutex(State(bucket: rate.map { TokenBucket(rate: $0, burst: burst, now: now) }))
        }

        /// When the next attempt may start (nil: now), taking its token.
        func nextStart(now: Date) -> Date? {
            state.withLock { state in
                if let paused = state.pausedUntil, paused > now { return paused }
                guard var bucket = state.bucket else { return nil }
                let wait = bucket.take(now: now)
                state.bucket = bucket
                return wait.map { now.adding($0) }
            }
        }

        func pause(until date: Date) {
            state.withLock { $0.pausedUntil = max($0.pausedUntil ?? date, date) }
        }
    }

    /// What waits in a lane: a delivery to claim from the store, or one claimed already (a fresh
    /// delivery written in flight together with its event, so its first attempt needs no write).
    enum LaneItem: Sendable {
        case scheduled(ScheduledDelivery)
        case claimed(ClaimedDelivery)
    }

    private struct LaneQueue: Sendable {
        var lane: Lane
        var pacer: Pacer
        var stream: AsyncStream<LaneItem>
        var continuation: AsyncStream<LaneItem>.Continuation
    }

    private struct State {
        /// Deliveries waiting for a later time, sorted by due time.
        var timetable: [ScheduledDelivery] = []
        /// Ids in the timetable or waiting in a lane, so the sweep never queues one twice.
        var known: Set<String> = []
        var wakeWaiter: CheckedContinuation<Void, Never>?
        var wakePending = false
        var stopping = false
        /// Start-up recovery is done: from now on fresh deliveries may arrive claimed.
        var recovered = false
    }

    private let store: any OutboxStore
    private let clock: any HeraldClock
    /// The lanes by sink name; replaced on reload.
    private let lanes: Mutex<[String: LaneQueue]>
    /// Lanes added by a reload, picked up by `run()`.
    private let additions: (stream: AsyncStream<LaneQueue>, continuation: AsyncStream<LaneQueue>.Continuation)
    private let logger: Logger
    private let logBodies: Bool
    private let shutdownGrace: Duration
    private let random: @Sendable (ClosedRange<Double>) -> Double
    private let metrics: HeraldMetrics
    private let state = Mutex(State())

    public init(
        store: any OutboxStore, lanes: [Lane], clock: any HeraldClock = SystemClock(), logger: Logger,
        logBodies: Bool = false, shutdownGrace: Duration = .seconds(10), metrics: HeraldMetrics = .none,
        random: @escaping @Sendable (ClosedRange<Double>) -> Double = { Double.random(in: $0) }
    ) {
        self.metrics = metrics
        self.store = store
        self.clock = clock
        self.logger = logger
        self.logBodies = logBodies
        self.shutdownGrace = shutdownGrace
        self.random = random
        var queues: [String: LaneQueue] = [:]
        for lane in lanes {
            let (stream, continuation) = AsyncStream<LaneItem>.makeStream()
            queues[lane.sink.name] = LaneQueue(
                lane: lane, pacer: Pacer(rate: lane.rateLimit, burst: lane.burst, now: clock.now()), stream: stream, continuation: continuation
            )
        }
        self.lanes = Mutex(queues)
        self.additions = AsyncStream<LaneQueue>.makeStream()
    }

    // MARK: Scheduling

    /// Hands deliveries to the dispatcher: those due now go straight to their sink's lane, later
    /// ones into the timetable.
    public func schedule(_ items: [ScheduledDelivery]) {
        let now = clock.now()
        var later = false
        for item in items {
            guard state.withLock({ $0.known.insert(item.id).inserted }) else { continue }
            if item.dueAt <= now {
                send(item)
            } else {
                state.withLock { state in
                    let index = state.timetable.firstIndex { $0.dueAt > item.dueAt } ?? state.timetable.endIndex
                    state.timetable.insert(item, at: index)
                }
                later = true
            }
        }
        if later { wake() }
    }

    /// True once start-up recovery has run: only then may fresh deliveries be stored already
    /// claimed (`recover` would otherwise return them to pending under a worker's feet).
    public var acceptsClaimedDeliveries: Bool { state.withLock { $0.recovered && !$0.stopping } }

    /// How long a claim on a delivery to `sink` lasts: longer than any attempt can take.
    public func lease(forSink sink: String) -> Duration {
        max(Duration.seconds(30), (lanes.withLock { $0[sink] }?.lane.timeout ?? .seconds(10)) + .seconds(5))
    }

    /// The fast path: fresh deliveries, stored in flight with their event, go straight to their lanes.
    public func dispatch(_ claimed: [ClaimedDelivery]) {
        for item in claimed {
            lanes.withLock { $0[item.delivery.sink] }?.continuation.yield(.claimed(item))
        }
    }

    private func send(_ item: ScheduledDelivery) {
        if let queue = lanes.withLock({ $0[item.sink] }) {
            queue.continuation.yield(.scheduled(item))
        } else {
            // The sink is gone from the configuration: the delivery can never be made.
            Task { await self.failOrphan(item) }
        }
    }

    // MARK: Service

    public func run() async throws {
        let recovered = try await store.recover(now: clock.now())
        if !recovered.isEmpty {
            logger.info("resuming pending deliveries", metadata: ["delivery.count": "\(recovered.count)"])
        }
        schedule(recovered)
        state.withLock { $0.recovered = true }
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                for queue in lanes.withLock({ Array($0.values) }) {
                    group.addTask { await self.runLane(queue) }
                }
                group.addTask { await self.runScheduler() }
                // Lanes for sinks a reload added; this ends when the dispatcher stops.
                for await queue in additions.stream {
                    group.addTask { await self.runLane(queue) }
                }
            }
        } onGracefulShutdown: {
            self.stop()
        }
    }

    /// Stops taking new work. Attempts under way get `shutdownGrace` to finish; what was not
    /// started stays pending in the store for the next start.
    public func stop() {
        state.withLock { $0.stopping = true }
        for queue in lanes.withLock({ Array($0.values) }) { queue.continuation.finish() }
        additions.continuation.finish()
        wake()
    }

    private var isStopping: Bool { state.withLock { $0.stopping } }

    private func runScheduler() async {
        while !Task.isCancelled && !isStopping {
            let now = clock.now()
            let (due, next) = state.withLock { state -> ([ScheduledDelivery], Date?) in
                let count = state.timetable.prefix { $0.dueAt <= now }.count
                let due = Array(state.timetable.prefix(count))
                state.timetable.removeFirst(count)
                return (due, state.timetable.first?.dueAt)
            }
            for item in due { send(item) }
            await sleep(until: next)
        }
    }

    /// Returns at `deadline`, when `wake()` is called, or on cancellation, whichever comes first.
    private func sleep(until deadline: Date?) async {
        await withTaskGroup(of: Void.self) { group in
            if let deadline {
                group.addTask { try? await self.clock.sleep(until: deadline) }
            }
            group.addTask { await self.waitForWake() }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForWake() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.wakePending || Task.isCancelled {
                        state.wakePending = false
                        return true
                    }
                    state.wakeWaiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.wakeWaiter = nil }
                return state.wakeWaiter
            }
            waiter?.resume()
        }
    }

    private func wake() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.wakeWaiter else {
                state.wakePending = true
                return nil
            }
            state.wakeWaiter = nil
            return waiter
        }
        waiter?.resume()
    }

    // MARK: Lanes

    private func runLane(_ queue: LaneQueue) async {
        // Each child returns true only for the grace timer.
        await withTaskGroup(of: Bool.self) { group in
            var running = 0
            for await item in queue.stream {
                if isStopping { break }
                // A reload may have changed the sink's settings, or removed it.
                guard let queue = lanes.withLock({ $0[queue.lane.sink.name] }) else {
                    await failRemoved(item)
                    continue
                }
                if running >= queue.lane.concurrency {
                    _ = await group.next()
                    running -= 1
                }
                // Wait for the sink's rate limit or pause: deliveries wait their turn, never fail for it.
                while let start = queue.pacer.nextStart(now: clock.now()), !isStopping {
                    do { try await clock.sleep(until: start) } catch { break }
                }
                if isStopping { break }
                group.addTask {
                    switch item {
                    case .scheduled(let scheduled): await self.attempt(scheduled, lane: queue.lane, pacer: queue.pacer)
                    case .claimed(let claimed): await self.attemptClaimed(claimed, lane: queue.lane, pacer: queue.pacer)
                    }
                    return false
                }
                running += 1
            }
            guard running > 0 else { return }
            let grace = shutdownGrace
            group.addTask {
                try? await Task.sleep(for: grace)
                return true
            }
            while let isTimer = await group.next() {
                if isTimer {
                    guard running > 0 else { continue }
                    logger.warning("shutdown grace ran out; cancelling deliveries under way", metadata: ["sink.name": "\(queue.lane.sink.name)"])
                    group.cancelAll()
                } else {
                    running -= 1
                    if running == 0 { group.cancelAll() }
                }
            }
        }
    }

    /// Ids the dispatcher holds right now (in the timetable or a lane queue).
    public var scheduledCount: Int { state.withLock { $0.known.count } }

    private func attempt(_ item: ScheduledDelivery, lane: Lane, pacer: Pacer) async {
        // From here on the store says what happens to it; a later schedule() may queue it again.
        _ = state.withLock { $0.known.remove(item.id) }
        let metadata: Logger.Metadata = ["delivery.id": "\(item.id)", "sink.name": "\(lane.sink.name)"]
        let now = clock.now()
        let claimed: ClaimedDelivery
        do {
            switch try await store.claim(deliveryID: item.id, now: now, leaseUntil: now.adding(lease(forSink: lane.sink.name))) {
            case .unavailable:
                return
            case .expired:
                metrics.delivery(sink: lane.sink.name, outcome: .expired)
                logger.notice("delivery expired before it could be sent", metadata: metadata)
                return
            case .claimed(let value):
                claimed = value
            }
        } catch {
            logger.error("could not claim delivery; it stays pending", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            return
        }
        await perform(claimed, lane: lane, pacer: pacer)
    }

    /// A fresh delivery that arrived claimed. If it waited in the lane so long that its lease is
    /// nearly over, it is left alone: the maintenance sweep returns it to pending when the lease
    /// ends, and no two workers ever hold it at once.
    private func attemptClaimed(_ claimed: ClaimedDelivery, lane: Lane, pacer: Pacer) async {
        let now = clock.now()
        let delivery = claimed.delivery
        guard let leaseUntil = delivery.leaseUntil, now.adding(.seconds(5)) < leaseUntil else {
            logger.notice("a fresh delivery waited past its lease; the sweep will retry it", metadata: ["delivery.id": "\(delivery.id)", "sink.name": "\(lane.sink.name)"])
            return
        }
        if now >= delivery.expiresAt {
            await finishUnsent(delivery, as: .expired, reason: "expired before it could be sent")
            return
        }
        await perform(claimed, lane: lane, pacer: pacer)
    }

    /// One attempt on a claimed delivery, and its result written back (fenced by the attempt number).
    private func perform(_ claimed: ClaimedDelivery, lane: Lane, pacer: Pacer) async {
        let delivery = claimed.delivery
        var metadata: Logger.Metadata = ["delivery.id": "\(delivery.id)", "sink.name": "\(lane.sink.name)"]
        metadata["event.id"] = "\(delivery.eventID)"
        metadata["route.name"] = "\(delivery.route ?? "-")"
        metadata["delivery.attempt"] = "\(delivery.attempts)"

        let started = clock.now()
        let stopwatch = ContinuousClock.now
        let outcome = await lane.sink.deliver(DeliveryRequest(event: claimed.event, delivery: delivery))
        let elapsed = ContinuousClock.now - stopwatch
        let finished = clock.now()

        var next: DeliveryState
        var nextAttemptAt: Date?
        var error: String?
        switch outcome {
        case .delivered:
            next = .delivered
        case .skipped(let reason):
            next = .skipped
            error = reason
        case .permanent(let reason):
            next = .failed
            error = reason
        case .retry(let after, let reason):
            error = reason
            if let after { pacer.pause(until: finished.adding(after)) }
            switch lane.retry.decide(afterAttempt: delivery.attempts, retryAfter: after, now: finished, expiresAt: delivery.expiresAt, random: random) {
            case .retry(let at):
                next = .pending
                nextAttemptAt = at
            case .giveUp:
                next = .failed
                error = "gave up after \(delivery.attempts) attempts: \(reason)"
            case .expire:
                next = .expired
                error = "expired while retrying: \(reason)"
            }
        }
        let record = DeliveryAttempt(
            deliveryID: delivery.id, number: delivery.attempts, startedAt: started, duration: elapsed,
            outcome: outcome.label, detail: outcome.detail
        )
        do {
            let applied = try await store.complete(record, next: next, nextAttemptAt: nextAttemptAt, error: error, now: finished)
            guard applied else {
                logger.warning("delivery result dropped: the claim was lost (lease ran out)", metadata: metadata)
                return
            }
        } catch {
            logger.error("could not record delivery result; the lease will return it to pending", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            return
        }
        metrics.attempt(sink: lane.sink.name, duration: elapsed)
        switch next {
        case .delivered:
            metrics.delivery(sink: lane.sink.name, outcome: .delivered)
            metrics.latency(sink: lane.sink.name, duration: .milliseconds(Int64(max(0, finished.timeIntervalSince(claimed.event.receivedAt)) * 1000)))
        case .pending: metrics.delivery(sink: lane.sink.name, outcome: .retried)
        case .failed: metrics.delivery(sink: lane.sink.name, outcome: .failed)
        case .expired: metrics.delivery(sink: lane.sink.name, outcome: .expired)
        case .skipped: metrics.delivery(sink: lane.sink.name, outcome: .skipped)
        case .inFlight: break
        }
        metadata["delivery.outcome"] = "\(next.rawValue)"
        metadata["delivery.duration_ms"] = "\(Int(elapsed.seconds * 1000))"
        if let error { metadata["delivery.error"] = "\(logBodies ? error : Self.redact(error, event: claimed.event))" }
        if let nextAttemptAt {
            metadata["delivery.next_attempt_in_ms"] = "\(Int(nextAttemptAt.timeIntervalSince(finished) * 1000))"
            logger.info("delivery will be retried", metadata: metadata)
            schedule([ScheduledDelivery(id: delivery.id, sink: delivery.sink, dueAt: nextAttemptAt)])
        } else if next == .delivered {
            logger.info("delivered", metadata: metadata)
        } else {
            logger.warning("delivery \(next.rawValue)", metadata: metadata)
        }
    }

    /// A receiver may echo what it was sent; without `log_bodies` the code, the text and the full
    /// numbers stay out of the log line (the stored error keeps them for the audit trail).
    static func redact(_ text: String, event: Event) -> String {
        var result = text
        for secret in [event.body, event.otp].compactMap({ $0 }) where secret.count >= 4 {
            result = result.replacingOccurrences(of: secret, with: "<redacted>")
        }
        for number in [event.from, event.to].compactMap({ $0 }) where number.count > 4 {
            result = result.replacingOccurrences(of: number, with: PhoneNumber.masked(number))
        }
        return result
    }

    // MARK: Reload

    /// Applies a new set of sinks: changed sinks use their new settings from their next attempt,
    /// new sinks get a lane, and deliveries for removed sinks fail with "sink removed" when they
    /// come up.
    public func reconfigure(_ newLanes: [Lane]) {
        let now = clock.now()
        var added: [LaneQueue] = []
        var removed: [LaneQueue] = []
        lanes.withLock { current in
            let names = Set(newLanes.map(\.sink.name))
            for (name, queue) in current where !names.contains(name) {
                removed.append(queue)
                current[name] = nil
            }
            for lane in newLanes {
                if var queue = current[lane.sink.name] {
                    if queue.lane.rateLimit != lane.rateLimit || queue.lane.burst != lane.burst {
                        queue.pacer = Pacer(rate: lane.rateLimit, burst: lane.burst, now: now)
                    }
                    queue.lane = lane
                    current[lane.sink.name] = queue
                } else {
                    let (stream, continuation) = AsyncStream<LaneItem>.makeStream()
                    let queue = LaneQueue(lane: lane, pacer: Pacer(rate: lane.rateLimit, burst: lane.burst, now: now), stream: stream, continuation: continuation)
                    current[lane.sink.name] = queue
                    added.append(queue)
                }
            }
        }
        // The removed lanes drain what they hold, failing each item; then they end.
        for queue in removed { queue.continuation.finish() }
        for queue in added { additions.continuation.yield(queue) }
    }

    private func failRemoved(_ item: LaneItem) async {
        switch item {
        case .scheduled(let scheduled):
            await failOrphan(scheduled)
        case .claimed(let claimed):
            await finishUnsent(claimed.delivery, as: .failed, reason: "sink removed: '\(claimed.delivery.sink)' is no longer configured")
        }
    }

    /// Ends a claimed delivery without sending it (expired, or its sink is gone): the result is
    /// recorded like an attempt, fenced by the claim, and counted.
    private func finishUnsent(_ delivery: Delivery, as state: DeliveryState, reason: String) async {
        let now = clock.now()
        let record = DeliveryAttempt(deliveryID: delivery.id, number: delivery.attempts, startedAt: now, duration: .zero,
                                     outcome: state == .expired ? "expired" : "permanent", detail: reason)
        _ = try? await store.complete(record, next: state, nextAttemptAt: nil, error: reason, now: now)
        metrics.delivery(sink: delivery.sink, outcome: state == .expired ? .expired : .failed)
        logger.notice("delivery \(state.rawValue) without an attempt: \(reason)", metadata: ["delivery.id": "\(delivery.id)", "sink.name": "\(delivery.sink)"])
    }

    private func failOrphan(_ item: ScheduledDelivery) async {
        _ = state.withLock { $0.known.remove(item.id) }
        let now = clock.now()
        guard case .claimed(let claimed) = try? await store.claim(deliveryID: item.id, now: now, leaseUntil: now.adding(.seconds(30))) else { return }
        await finishUnsent(claimed.delivery, as: .failed, reason: "sink removed: '\(item.sink)' is no longer configured")
    }
}
