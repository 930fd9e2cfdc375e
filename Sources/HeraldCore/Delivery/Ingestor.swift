import Foundation
import Logging
import Synchronization

/// The webhook path: plan the message, write the event and its deliveries in one store write,
/// and hand the deliveries to the dispatcher once only the write's commit is left (its `fsync`
/// runs while they go out); the answer waits for the commit. No network call and no timer on
/// the way.
///
/// Intake keeps pace with delivery: a delivery whose sink is healthy but busy waits (up to
/// `intakeWait`) for a slot, so the answer slows instead of a backlog growing behind it. Only when
/// none of a message's deliveries could start before its code expires (`refuseWhen`) is the
/// message refused (`IngestError.overloaded`: the webhook answers 503).
public struct Ingestor: Sendable {
    public typealias SinkInfo = DeliveryPlan.SinkInfo

    public struct Result: Sendable, Equatable {
        public var eventID: String
        public var duplicate: Bool
        public var decision: RoutingDecision?
        public var deliveries: [Delivery]
    }

    /// The routes and sinks in force; a reload swaps them between two messages.
    public final class Table: Sendable {
        let state: Mutex<(router: Router, sinks: [String: SinkInfo])>

        init(router: Router, sinks: [String: SinkInfo]) {
            state = Mutex((router, sinks))
        }

        public func update(router: Router, sinks: [String: SinkInfo]) {
            state.withLock { $0 = (router, sinks) }
        }

        var current: (router: Router, sinks: [String: SinkInfo]) { state.withLock { $0 } }

        /// The sinks routes may deliver to now.
        public var sinkNames: Set<String> { Set(state.withLock { $0.sinks.keys }) }
    }

    public let table: Table
    let store: any OutboxStore
    let dispatcher: Dispatcher?
    let clock: any HeraldClock
    let logger: Logger
    let logBodies: Bool
    let metrics: HeraldMetrics
    let intakeWait: Duration
    let refuseWhen: QueueBound

    public init(
        router: Router, store: any OutboxStore, dispatcher: Dispatcher?, sinks: [String: SinkInfo],
        clock: any HeraldClock = SystemClock(), logger: Logger, logBodies: Bool = false, metrics: HeraldMetrics = .none,
        intakeWait: Duration = ConfigDefaults.limits.intakeWait, refuseWhen: QueueBound = ConfigDefaults.limits.refuseWhen
    ) {
        self.metrics = metrics
        self.intakeWait = intakeWait
        self.refuseWhen = refuseWhen
        self.table = Table(router: router, sinks: sinks)
        self.store = store
        self.dispatcher = dispatcher
        self.clock = clock
        self.logger = logger
        self.logBodies = logBodies
    }

    public func ingest(_ message: InboundMessage) async throws -> Result {
        let now = clock.now()
        let (router, sinks) = table.current
        let plan = DeliveryPlan(message: message, router: router, sinks: sinks, now: now)
        let event = plan.event
        var deliveries = plan.deliveries
        // Fast path: a delivery its lane can start at once is stored already claimed, so its first
        // attempt needs no other write. The rest is stored pending and claimed when a slot frees.
        var reserved: [String] = []
        if let dispatcher {
            let deadline = now.adding(intakeWait)
            for index in deliveries.indices where deliveries[index].state == .pending && !deliveries[index].isRetraction {
                guard let lease = await dispatcher.admit(sink: deliveries[index].sink, waitingUntil: deadline) else { continue }
                // A wait moves the lease's start, never its length.
                deliveries[index].state = .inFlight
                deliveries[index].attempts = 1
                deliveries[index].leaseUntil = clock.now().adding(lease)
                reserved.append(deliveries[index].sink)
            }
            if reserved.isEmpty, let retryAfter = overloaded(deliveries, dispatcher: dispatcher) {
                logger.warning("message refused: the deliveries queued ahead of it would outlast its code", metadata: [
                    "event.id": "\(event.id)", "event.source": "\(event.source)", "retry_after_s": "\(Int(retryAfter.seconds))",
                ])
                throw IngestError.overloaded(retryAfter: retryAfter)
            }
        }
        // The deliveries stored claimed start as soon as only the write's commit could still undo
        // it (`beforeCommit`), so they do not wait for its `fsync`; the answer still does. Should
        // the commit fail after all, they went out for a message the source hears was not taken,
        // and may send again: a repeat, never a loss.
        let claimed = deliveries.filter { $0.state == .inFlight }.map { ClaimedDelivery(delivery: $0, event: event) }
        // Whether the hook handed the deliveries to the dispatcher before the commit.
        let started = AtomicFlag()
        let inserted: InsertResult
        do {
            inserted = try await store.insert(event, deliveries: deliveries) { [dispatcher] result in
                guard result == .inserted, let dispatcher, !claimed.isEmpty else { return }
                started.set()
                dispatcher.submit(.freshClaimed(claimed))
            }
        } catch {
            if started.isSet {
                logger.error("event not stored after its deliveries had started; they may be repeated if the source sends it again", metadata: [
                    "event.id": "\(event.id)", "event.source": "\(event.source)", "delivery.count": "\(claimed.count)", "error": "\(error)",
                ])
            } else if !reserved.isEmpty {
                dispatcher?.submit(.reservationsCancelled(reserved))
            }
            throw error
        }
        if case .duplicate(let existing) = inserted {
            if !reserved.isEmpty { dispatcher?.submit(.reservationsCancelled(reserved)) }
            logger.info("duplicate event ignored", metadata: ["event.id": "\(existing)", "event.source": "\(message.source)"])
            return Result(eventID: existing, duplicate: true, decision: nil, deliveries: [])
        }
        var metadata: Logger.Metadata = [
            "event.id": "\(event.id)", "event.source": "\(event.source)",
            "event.from": "\(logBodies ? event.from : PhoneNumber.masked(event.from))",
            "route.name": "\(plan.decision.route ?? "-")", "delivery.count": "\(plan.sends.count)",
        ]
        if logBodies {
            metadata["event.body"] = "\(event.body)"
            metadata["event.otp"] = "\(event.otp ?? "-")"
        }
        logger.info(plan.decision.isRouted ? "event received" : "event received; no route matched", metadata: metadata)
        for delivery in deliveries where delivery.state == .skipped {
            metrics.delivery(sink: delivery.sink, outcome: .skipped)
        }
        if let dispatcher {
            let waiting = Set(deliveries.filter { $0.state == .pending && !$0.isRetraction }.map(\.sink))
            if !waiting.isEmpty { dispatcher.submit(.workStored(sinks: waiting)) }
            // Retractions are due when their code expires: the lane sets its wake-up for then.
            for retraction in deliveries where retraction.isRetraction {
                dispatcher.submit(.workDue(sink: retraction.sink, at: retraction.nextAttemptAt))
            }
        }
        return Result(eventID: event.id, duplicate: false, decision: plan.decision, deliveries: deliveries)
    }

    /// The last resort: when every delivery of the message would wait in the outbox past its
    /// bound (by default its own expiry), how long the source should wait before sending again.
    /// Nil: accept. A message with no delivery to make, or a sink without a measured pace yet, is
    /// always accepted.
    private func overloaded(_ deliveries: [Delivery], dispatcher: Dispatcher) -> Duration? {
        if refuseWhen == .never { return nil }
        let waiting = deliveries.filter { $0.state == .pending && !$0.isRetraction }
        guard !waiting.isEmpty else { return nil }
        let now = clock.now()
        var shortestExcess = Double.infinity
        for delivery in waiting {
            guard let wait = dispatcher.queueWait(sink: delivery.sink) else { return nil }
            let bound: Double = switch refuseWhen {
            case .expiry: delivery.expiresAt.timeIntervalSince(now)
            case .after(let limit): min(limit.seconds, delivery.expiresAt.timeIntervalSince(now))
            case .never: .infinity
            }
            let excess = wait.seconds - bound
            guard excess >= 0 else { return nil }
            shortestExcess = min(shortestExcess, excess)
        }
        return .seconds(Int64(min(60, max(1, shortestExcess.rounded(.up)))))
    }
}

public enum IngestError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Every delivery of the message would wait past its bound: answer 503 with `Retry-After`.
    case overloaded(retryAfter: Duration)

    public var description: String {
        switch self {
        case .overloaded(let retryAfter):
            "overloaded: the deliveries already queued could not start before this message's code expires; try again in \(Int(retryAfter.seconds)) s"
        }
    }
}
