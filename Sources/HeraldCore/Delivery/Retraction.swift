import Foundation

/// How a sink retracts what it sent (`retract: on_expiry`): when the code expires, a retraction
/// row, stored with the delivery, deletes or redacts the sent message. This says until when it
/// keeps trying.
public struct RetractionPlan: Sendable, Equatable {
    /// How long after the code expired Herald keeps trying to retract.
    public var keepTrying: Duration
    /// The service deletes only messages younger than this (Telegram: 48 h), counted from when
    /// Herald received the message (which is before it was sent), less a margin.
    public var sentWithin: Duration?

    public init(keepTrying: Duration = .seconds(24 * 3600), sentWithin: Duration? = nil) {
        self.keepTrying = keepTrying
        self.sentWithin = sentWithin
    }

    /// The retraction's own expiry for a delivery created at `createdAt` that expires at
    /// `expiresAt`; nil when the service could no longer delete it by then.
    public func deadline(createdAt: Date, expiresAt: Date) -> Date? {
        var deadline = expiresAt.adding(keepTrying)
        if let window = sentWithin { deadline = min(deadline, createdAt.adding(window)) }
        return deadline > expiresAt ? deadline : nil
    }

    /// Whether a code that lives `life` gets a retraction at all (`deadline` is not nil for it).
    public func retracts(codesLiving life: Duration) -> Bool {
        let now = Date()
        return deadline(createdAt: now, expiresAt: now.adding(life)) != nil
    }
}

/// One retraction attempt's input: the retraction row, and the delivery it retracts with the
/// receiver's id for the sent message (`receipt`).
public struct RetractionRequest: Sendable {
    public var event: Event
    public var retraction: Delivery
    public var target: Delivery
    public var receipt: String

    public init(event: Event, retraction: Delivery, target: Delivery, receipt: String) {
        self.event = event
        self.retraction = retraction
        self.target = target
        self.receipt = receipt
    }
}

/// What a retraction does given the delivery it retracts (read from the store when the retraction
/// is due). Pure, so a table tests it.
public enum RetractionRules {
    public enum Step: Sendable, Equatable {
        /// Ask the sink to delete the message the receiver calls `receipt`.
        case retract(receipt: String)
        /// Nothing to ask: the retraction ends (or waits) with this outcome.
        case finish(DeliveryOutcome)
    }

    /// | the delivery | the retraction |
    /// | --- | --- |
    /// | delivered, with the receiver's message id | retract it |
    /// | delivered, no message id kept | skipped |
    /// | pending or in flight (an attempt that began before expiry) | retried later |
    /// | failed, expired, skipped | skipped: nothing was sent |
    /// | gone (purged) | skipped |
    public static func step(for target: Delivery?) -> Step {
        guard let target else { return .finish(.skipped(reason: "nothing to retract: the delivery is no longer stored")) }
        switch target.state {
        case .delivered:
            guard let receipt = target.receipt, !receipt.isEmpty else {
                return .finish(.skipped(reason: "nothing to retract: the service gave no id for the sent message"))
            }
            return .retract(receipt: receipt)
        case .pending, .inFlight:
            return .finish(.retry(reason: "the delivery it retracts is still under way"))
        case .failed, .expired, .skipped:
            return .finish(.skipped(reason: "nothing to retract: the delivery was not sent (\(target.state.rawValue))"))
        }
    }
}
