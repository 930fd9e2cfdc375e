import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The driver of `DispatchMachine`: feeds it events, performs its actions (claim, send, write,
/// timers) as child tasks of one task group, and records metrics and log lines. Every decision is
/// the machine's; this file only does I/O.
///
/// Events arrive through one buffered stream, from the ingest path, the child tasks, the store's
/// wake-ups and the sweep, and are handled one at a time under the machine's lock.
public final class Dispatcher: Service, Sendable {
    private let machine: Mutex<DispatchMachine>
    private let sinks: Mutex<[String: any Sink]>
    private let inputs: AsyncStream<DispatchMachine.Input>
    private let input: AsyncStream<DispatchMachine.Input>.Continuation
    private let store: any OutboxStore
    private let clock: any HeraldClock
    private let logger: Logger
    private let logBodies: Bool
    private let metrics: HeraldMetrics
    /// Events submitted and not handled yet.
    private let queued = Atomic<Int>(0)
    /// Webhooks waiting for a slot on a full, healthy lane (see `admit`), by ticket.
    private let waiters = Mutex<(next: UInt64, waiting: [String: [UInt64: CheckedContinuation<Void, Never>]], sinks: [UInt64: String])>((0, [:], [:]))
    private let waiting = Atomic<Int>(0)

    public init(
        store: any OutboxStore, sinks: [any Sink], lanes: [LaneSettings], clock: any HeraldClock = SystemClock(), logger: Logger,
        logBodies: Bool = false, metrics: HeraldMetrics = .none,
        random: @escaping @Sendable (ClosedRange<Double>) -> Double = { Double.random(in: $0) }
    ) {
        self.store = store
        self.clock = clock
        self.logger = logger
        self.logBodies = logBodies
        self.metrics = metrics
        self.machine = Mutex(DispatchMachine(lanes: lanes, now: clock.now(), random: random))
        self.sinks = Mutex(Dictionary(sinks.map { ($0.name, $0) }, uniquingKeysWith: { $1 }))
        (inputs, input) = AsyncStream<DispatchMachine.Input>.makeStream()
    }

    // MARK: For the ingest path and the rest of the server

    /// A slot for a fresh delivery that will be stored claimed: the lease to store it with, or nil
    /// (store it pending and say so with `submit(.workStored)`). While the lane is healthy and only
    /// full, waits for a slot until `deadline`: this is how intake slows to the pace of delivery. A
    /// lane that is paused, out of tokens or failing answers nil at once (its deliveries wait in
    /// the store, not the webhook).
    public func admit(sink: String, waitingUntil deadline: Date) async -> Duration? {
        while true {
            let now = clock.now()
            switch machine.withLock({ $0.reserve(sink: sink, now: now) }) {
            case .start(let lease): return lease
            case .pending: return nil
            case .full:
                guard now < deadline, !Task.isCancelled else { return nil }
                await waitForRoom(sink: sink, until: deadline)
            }
        }
    }

    /// How long a delivery stored pending for `sink` now would wait for its attempt (nil: no
    /// measurement yet).
    public func queueWait(sink: String) -> Duration? {
        let now = clock.now()
        return machine.withLock { $0.queueWait(sink: sink, now: now) }
    }

    /// Suspends until the driver sees room on `sink` (or the lane no longer worth waiting for),
    /// until `deadline`, or until the task is cancelled.
    private func waitForRoom(sink: String, until deadline: Date) async {
        let ticket = waiters.withLock { state -> UInt64 in
            state.next += 1
            return state.next
        }
        let timeout = Task {
            try? await clock.sleep(until: deadline)
            wake(ticket)
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                waiters.withLock {
                    $0.waiting[sink, default: [:]][ticket] = continuation
                    $0.sinks[ticket] = sink
                }
                waiting.add(1, ordering: .relaxed)
                // Room may have freed between the check and the registration.
                let now = clock.now()
                if machine.withLock({ $0.admission(sink: sink, now: now) }) != .full || now >= deadline || Task.isCancelled {
                    wake(ticket)
                }
            }
        } onCancel: {
            wake(ticket)
        }
        timeout.cancel()
    }

    private func wake(_ ticket: UInt64) {
        let continuation = waiters.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let sink = state.sinks.removeValue(forKey: ticket) else { return nil }
            let continuation = state.waiting[sink]?.removeValue(forKey: ticket)
            if state.waiting[sink]?.isEmpty == true { state.waiting[sink] = nil }
            return continuation
        }
        guard let continuation else { return }
        waiting.subtract(1, ordering: .relaxed)
        continuation.resume()
    }

    /// After an event: wakes as many waiters of each lane as it has room for, oldest first (all
    /// of them when the lane is no longer worth waiting for).
    private func wakeWaiters(now: Date) {
        guard waiting.load(ordering: .relaxed) > 0 else { return }
        let sinks = waiters.withLock { Array($0.waiting.keys) }
        for sink in sinks {
            let room = machine.withLock { $0.waiterRoom(sink: sink, now: now) }
            guard room > 0 else { continue }
            let tickets = waiters.withLock { ($0.waiting[sink]?.keys.sorted() ?? []).prefix(room) }
            for ticket in tickets { wake(ticket) }
        }
    }

    public func submit(_ event: DispatchMachine.Input) {
        queued.add(1, ordering: .relaxed)
        if case .terminated = input.yield(event) { queued.subtract(1, ordering: .relaxed) }
    }

    /// A reload: sinks are replaced by name, lanes take their new settings from the next attempt.
    public func reconfigure(sinks newSinks: [any Sink], lanes: [LaneSettings]) {
        sinks.withLock { sinks in
            for sink in newSinks { sinks[sink.name] = sink }
        }
        submit(.reconfigured(lanes))
    }

    public var phase: DispatchMachine.Phase { machine.withLock { $0.phase } }

    /// The sinks with a lane (after the events handled so far).
    public var laneNames: Set<String> { machine.withLock { $0.laneNames } }

    /// Nothing to handle and nothing under way (timers aside): what tests wait for instead of
    /// sleeping to show that nothing more happens.
    public var idle: Bool {
        queued.load(ordering: .relaxed) == 0 && machine.withLock { $0.outstanding == 0 && $0.phase == .running }
    }

    // MARK: Service

    public func run() async throws {
        let released = try await store.recover()
        if released > 0 {
            logger.info("resuming deliveries a previous run left in flight", metadata: ["delivery.count": "\(released)"])
        }
        let wakeups = store.wakeups()
        submit(.started)
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await sink in wakeups {
                        self.submit(sink == StoreWakeups.everySink ? .wakeAll : .workStored(sinks: [sink]))
                    }
                }
                for await event in inputs {
                    let now = clock.now()
                    let actions = machine.withLock { $0.handle(event, now: now) }
                    queued.subtract(1, ordering: .relaxed)
                    if actions.contains(.stopped) { break }
                    for action in actions { perform(action, in: &group) }
                    wakeWaiters(now: now)
                }
                // Stopped, or cancelled (the service group's shutdown grace ran out): whatever
                // still runs is cancelled; its deliveries stay in flight and the next start
                // resumes them. Nothing is taken in any more.
                input.finish()
                group.cancelAll()
                for ticket in waiters.withLock({ Array($0.sinks.keys) }) { wake(ticket) }
            }
        } onGracefulShutdown: {
            self.submit(.shutdown)
        }
    }

    // MARK: Actions

    private func perform(_ action: DispatchMachine.Action, in group: inout DiscardingTaskGroup) {
        switch action {
        case .claim(let sink, let limit, let lease):
            group.addTask {
                do {
                    self.submit(.claimed(sink: sink, batch: try await self.store.claimDue(sink: sink, limit: limit, leaseFor: lease)))
                } catch {
                    self.logger.error("could not claim deliveries; trying again shortly", metadata: ["sink.name": "\(sink)", "error": "\(error)"])
                    self.submit(.claimFailed(sink: sink))
                }
            }
        case .send(let claimed, _):
            let sink = sinks.withLock { $0[claimed.delivery.sink] }
            group.addTask {
                let started = self.clock.now()
                let stopwatch = ContinuousClock.now
                let outcome: DeliveryOutcome
                if let sink {
                    outcome = claimed.delivery.isRetraction
                        ? await self.retract(claimed, with: sink)
                        : await sink.deliver(DeliveryRequest(event: claimed.event, delivery: claimed.delivery))
                } else {
                    outcome = .permanent(reason: DeliveryRules.sinkRemoved(claimed.delivery.sink))
                }
                self.submit(.attemptFinished(claimed, outcome: outcome, startedAt: started, duration: ContinuousClock.now - stopwatch))
            }
        case .complete(let claimed, let attempt, let result, let retryAt):
            group.addTask {
                let applied = await self.write(claimed, attempt: attempt, result: result, retryAt: retryAt)
                self.submit(.written(sink: claimed.delivery.sink, retryAt: applied ? retryAt : nil))
            }
        case .release(let claimed, let reason):
            group.addTask {
                let metadata = self.metadata(claimed.delivery)
                do {
                    if try await self.store.release(claimed.delivery) {
                        self.logger.notice("claim given back without an attempt: \(reason)", metadata: metadata)
                    }
                } catch {
                    self.logger.error("could not give a claim back; its lease will", metadata: metadata.merging(["error": "\(error)"]) { $1 })
                }
                self.submit(.written(sink: claimed.delivery.sink, retryAt: nil))
            }
        case .expired(let sink, let ids):
            for id in ids {
                if id.hasPrefix("rtr_") {
                    metrics.retraction(sink: sink, outcome: .expired)
                    logger.warning("retraction expired: the message could not be retracted in time", metadata: ["delivery.id": "\(id)", "sink.name": "\(sink)"])
                    continue
                }
                metrics.delivery(sink: sink, outcome: .expired)
                logger.notice("delivery expired before it could be sent", metadata: ["delivery.id": "\(id)", "sink.name": "\(sink)"])
            }
        case .failOrphans(let keeping):
            group.addTask {
                do {
                    for (sink, count) in try await self.store.failPending(outside: keeping) where count > 0 {
                        for _ in 0..<count { self.metrics.delivery(sink: sink, outcome: .failed) }
                        self.logger.warning("deliveries failed: their sink is no longer configured", metadata: ["sink.name": "\(sink)", "delivery.count": "\(count)"])
                    }
                } catch {
                    self.logger.error("could not fail the deliveries of removed sinks; the sweep tries again", metadata: ["error": "\(error)"])
                }
            }
        case .armTimer(let deadline):
            group.addTask {
                do {
                    try await self.clock.sleep(until: deadline)
                    self.submit(.timerFired)
                } catch {}
            }
        case .stopped:
            break
        }
    }

    /// A retraction's attempt: reads the delivery it retracts (its state and the receiver's id for
    /// the sent message), then asks the sink to delete it, or ends without asking.
    private func retract(_ claimed: ClaimedDelivery, with sink: any Sink) async -> DeliveryOutcome {
        guard let targetID = claimed.delivery.retracts else { return .permanent(reason: "not a retraction") }
        let target: Delivery?
        do {
            target = try await store.delivery(id: targetID)
        } catch {
            return .retry(reason: "could not read the delivery to retract: \(error)")
        }
        switch RetractionRules.step(for: target) {
        case .finish(let outcome):
            return outcome
        case .retract(let receipt):
            guard let target else { return .permanent(reason: "not a retraction") }
            return await sink.retract(RetractionRequest(event: claimed.event, retraction: claimed.delivery, target: target, receipt: receipt))
        }
    }

    /// Writes one attempt's result, fenced by its claim; counts and logs it only once it is in
    /// force. Returns whether it was applied.
    private func write(_ claimed: ClaimedDelivery, attempt: DeliveryAttempt, result: DeliveryResult, retryAt: Date?) async -> Bool {
        let delivery = claimed.delivery
        var metadata = metadata(delivery)
        do {
            guard try await store.complete(attempt, result: result) else {
                logger.warning("delivery result dropped: the claim was lost (its lease ran out, or its message was not stored after all)", metadata: metadata)
                return false
            }
        } catch {
            logger.error("could not record delivery result; the lease will return it to pending", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            return false
        }
        let sink = delivery.sink
        if attempt.outcome != "expired" { metrics.attempt(sink: sink, duration: attempt.duration) }
        let finished = clock.now()
        if delivery.isRetraction {
            metrics.retraction(sink: sink, outcome: result.next)
            metadata["delivery.retracts"] = "\(delivery.retracts ?? "-")"
            metadata["delivery.outcome"] = "\(result.next.rawValue)"
            if let error = result.error { metadata["delivery.error"] = "\(logBodies ? error : LogRedaction.redact(error, event: claimed.event))" }
            if let retryAt { metadata["delivery.next_attempt_in_ms"] = "\(Int(retryAt.timeIntervalSince(finished) * 1000))" }
            switch result.next {
            case .delivered: logger.info("message retracted: its code expired", metadata: metadata)
            case .pending: logger.info("retraction will be retried", metadata: metadata)
            case .skipped: logger.debug("retraction skipped", metadata: metadata)
            default: logger.warning("retraction \(result.next.rawValue)", metadata: metadata)
            }
            return true
        }
        switch result.next {
        case .delivered:
            metrics.delivery(sink: sink, outcome: .delivered)
            metrics.latency(sink: sink, duration: .milliseconds(saturating: finished.timeIntervalSince(claimed.event.receivedAt) * 1000))
        case .pending: metrics.delivery(sink: sink, outcome: .retried)
        case .failed: metrics.delivery(sink: sink, outcome: .failed)
        case .expired: metrics.delivery(sink: sink, outcome: .expired)
        case .skipped: metrics.delivery(sink: sink, outcome: .skipped)
        case .inFlight: break
        }
        metadata["delivery.outcome"] = "\(result.next.rawValue)"
        metadata["delivery.duration_ms"] = "\(Int(attempt.duration.seconds * 1000))"
        if let error = result.error { metadata["delivery.error"] = "\(logBodies ? error : LogRedaction.redact(error, event: claimed.event))" }
        if let retryAt {
            metadata["delivery.next_attempt_in_ms"] = "\(Int(retryAt.timeIntervalSince(finished) * 1000))"
            logger.info("delivery will be retried", metadata: metadata)
        } else if result.next == .delivered {
            // The happy path logs one line per message ("event received"); each success is in
            // the outbox's audit trail and the metrics, and in the log at debug.
            logger.debug("delivered", metadata: metadata)
        } else if attempt.outcome == "expired" {
            // "delivery expired before it could be sent", or "… before its next attempt" (with
            // the last attempt's error kept in the outbox).
            logger.notice("delivery \(attempt.detail ?? DeliveryRules.expiredUnsent)", metadata: metadata)
        } else {
            logger.warning("delivery \(result.next.rawValue)", metadata: metadata)
        }
        return true
    }

    private func metadata(_ delivery: Delivery) -> Logger.Metadata {
        [
            "delivery.id": "\(delivery.id)", "sink.name": "\(delivery.sink)", "event.id": "\(delivery.eventID)",
            "route.name": "\(delivery.route ?? "-")", "delivery.attempt": "\(delivery.attempts)",
        ]
    }
}
