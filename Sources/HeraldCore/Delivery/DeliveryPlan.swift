import Foundation

/// What a message becomes: its event, and one delivery per (sink, recipient) that its routes name.
/// Pure, and the one place fan-out is decided: the webhook path stores a plan, `herald route`
/// prints one, and `herald send` performs one.
public struct DeliveryPlan: Sendable, Equatable {
    /// What the ingest path knows of a sink when it plans.
    public struct SinkInfo: Sendable, Equatable {
        public var recipients: [String]
        /// Set for a disabled optional sink: its deliveries are recorded as skipped.
        public var disabledReason: String?
        /// Set when the sink retracts its messages once their code expired.
        public var retraction: RetractionPlan?

        public init(recipients: [String] = [], disabledReason: String? = nil, retraction: RetractionPlan? = nil) {
            self.recipients = recipients
            self.disabledReason = disabledReason
            self.retraction = retraction
        }
    }

    public var event: Event
    public var decision: RoutingDecision
    /// The deliveries proper, retractions left out.
    public var sends: [Delivery] { deliveries.filter { !$0.isRetraction } }
    /// Pending, or skipped for a disabled sink; never claimed (the ingest path decides that).
    /// A sink that retracts adds, after each delivery, its retraction: pending, due when the
    /// delivery expires.
    public var deliveries: [Delivery]

    public init(message: InboundMessage, router: Router, sinks: [String: SinkInfo], now: Date, eventID: String? = nil) {
        // A sender's clock may run ahead; never date an event in the future.
        let receivedAt = min(message.receivedAt ?? now, now)
        let decision = router.route(source: message.source, from: message.from, to: message.to, body: message.body)
        let event = Event(
            id: eventID ?? Identifier.make("evt", at: now), source: message.source, sourceID: message.sourceID,
            from: message.from, to: message.to, body: message.body, otp: decision.otp, otpDomain: decision.otpDomain,
            app: decision.app, route: decision.route, receivedAt: receivedAt, media: message.media
        )
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
                if delivery.state == .pending, let deadline = info.retraction?.deadline(createdAt: now, expiresAt: expiresAt) {
                    deliveries.append(Delivery(
                        id: Identifier.make("rtr", at: now), eventID: event.id, sink: target.sink, recipient: recipient,
                        route: target.route, app: target.app, nextAttemptAt: expiresAt, expiresAt: deadline,
                        retracts: delivery.id, createdAt: now
                    ))
                }
            }
        }
        self.event = event
        self.decision = decision
        self.deliveries = deliveries
    }
}
