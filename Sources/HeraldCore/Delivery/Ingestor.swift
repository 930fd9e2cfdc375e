import Foundation
import Logging
import Synchronization

/// The webhook path: plan the message, write the event and its deliveries in one store write,
/// then hand the deliveries to the dispatcher. No network call and no timer on the way.
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

    public init(
        router: Router, store: any OutboxStore, dispatcher: Dispatcher?, sinks: [String: SinkInfo],
        clock: any HeraldClock = SystemClock(), logger: Logger, logBodies: Bool = false, metrics: HeraldMetrics = .none
    ) {
        self.metrics = metrics
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
            for index in deliveries.indices where deliveries[index].state == .pending {
                guard let lease = dispatcher.reserve(sink: deliveries[index].sink) else { continue }
                deliveries[index].state = .inFlight
                deliveries[index].attempts = 1
                deliveries[index].leaseUntil = now.adding(lease)
                reserved.append(deliveries[index].sink)
            }
        }
        let inserted: InsertResult
        do {
            inserted = try await store.insert(event, deliveries: deliveries)
        } catch {
            if !reserved.isEmpty { dispatcher?.submit(.reservationsCancelled(reserved)) }
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
            "route.name": "\(plan.decision.route ?? "-")", "delivery.count": "\(deliveries.count)",
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
            let claimed = deliveries.filter { $0.state == .inFlight }.map { ClaimedDelivery(delivery: $0, event: event) }
            if !claimed.isEmpty { dispatcher.submit(.freshClaimed(claimed)) }
            let waiting = Set(deliveries.filter { $0.state == .pending }.map(\.sink))
            if !waiting.isEmpty { dispatcher.submit(.workStored(sinks: waiting)) }
        }
        return Result(eventID: event.id, duplicate: false, decision: plan.decision, deliveries: deliveries)
    }
}
