import Foundation
import Logging
import Synchronization

/// The webhook path: route the message, write the event and its deliveries in one store write,
/// then hand the deliveries to the dispatcher. No network call and no timer on the way.
public struct Ingestor: Sendable {
    public struct SinkInfo: Sendable {
        public var recipients: [String]
        /// Set for a disabled optional sink: its deliveries are recorded as skipped.
        public var disabledReason: String?

        public init(recipients: [String] = [], disabledReason: String? = nil) {
            self.recipients = recipients
            self.disabledReason = disabledReason
        }
    }

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
        // A sender's clock may run ahead; never date an event in the future.
        let receivedAt = min(message.receivedAt ?? now, now)
        let (router, sinks) = table.current
        let decision = router.route(source: message.source, from: message.from, to: message.to, body: message.body)
        let event = Event(
            id: Identifier.make("evt", at: now), source: message.source, sourceID: message.sourceID,
            from: message.from, to: message.to, body: message.body, otp: decision.otp,
            app: decision.app, route: decision.route, receivedAt: receivedAt, media: message.media
        )
        var deliveries = makeDeliveries(for: event, decision: decision, sinks: sinks, now: now)
        // Fast path: store fresh deliveries already claimed, so their first attempt starts without
        // another write. Before the dispatcher's start-up recovery they are stored pending instead.
        let claimNow = dispatcher?.acceptsClaimedDeliveries == true
        if claimNow, let dispatcher {
            for index in deliveries.indices where deliveries[index].state == .pending {
                deliveries[index].state = .inFlight
                deliveries[index].attempts = 1
                deliveries[index].leaseUntil = now.adding(dispatcher.lease(forSink: deliveries[index].sink))
            }
        }
        switch try await store.insert(event, deliveries: deliveries) {
        case .duplicate(let existing):
            logger.info("duplicate event ignored", metadata: ["event.id": "\(existing)", "event.source": "\(message.source)"])
            return Result(eventID: existing, duplicate: true, decision: nil, deliveries: [])
        case .inserted:
            break
        }
        var metadata: Logger.Metadata = [
            "event.id": "\(event.id)", "event.source": "\(event.source)",
            "event.from": "\(logBodies ? event.from : PhoneNumber.masked(event.from))",
            "route.name": "\(decision.route ?? "-")", "delivery.count": "\(deliveries.count)",
        ]
        if logBodies {
            metadata["event.body"] = "\(event.body)"
            metadata["event.otp"] = "\(event.otp ?? "-")"
        }
        logger.info(decision.isRouted ? "event received" : "event received; no route matched", metadata: metadata)
        for delivery in deliveries where delivery.state == .skipped {
            metrics.delivery(sink: delivery.sink, outcome: .skipped)
        }
        if claimNow {
            dispatcher?.dispatch(deliveries.filter { $0.state == .inFlight }.map { ClaimedDelivery(delivery: $0, event: event) })
        } else {
            let ready = deliveries.filter { $0.state == .pending }
            dispatcher?.schedule(ready.map { ScheduledDelivery(id: $0.id, sink: $0.sink, dueAt: $0.nextAttemptAt) })
        }
        return Result(eventID: event.id, duplicate: false, decision: decision, deliveries: deliveries)
    }

    func makeDeliveries(for event: Event, decision: RoutingDecision, sinks: [String: SinkInfo], now: Date) -> [Delivery] {
        var deliveries: [Delivery] = []
        for target in decision.targets {
            let info = sinks[target.sink] ?? SinkInfo(disabledReason: "not configured")
            let expiresAt = event.receivedAt.adding(target.expireAfter)
            let recipients: [String?] = info.recipients.isEmpty ? [nil] : info.recipients
            for recipient in recipients {
                var delivery = Delivery(
                    id: Identifier.make("dlv", at: now), eventID: event.id, sink: target.sink, recipient: recipient,
                    route: target.route, app: target.app, nextAttemptAt: now, expiresAt: expiresAt, createdAt: now
                )
                if let reason = info.disabledReason {
                    delivery.state = .skipped
                    delivery.lastError = "sink disabled: \(reason)"
                }
                deliveries.append(delivery)
            }
        }
        return deliveries
    }
}
