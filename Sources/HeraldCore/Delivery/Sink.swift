/// A place events are delivered to. A sink performs one attempt and says what happened; it never
/// retries on its own — the dispatcher and `RetryPolicy` decide what happens next.
public protocol Sink: Sendable {
    var name: String { get }
    /// One delivery per recipient (Twilio SMS to several phones); empty: one delivery in all.
    var recipients: [String] { get }
    func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome
    /// Set when the sink retracts what it sent once the code has expired (`retract: on_expiry`).
    var retraction: RetractionPlan? { get }
    /// Deletes (or redacts) the message a delivery sent. Classified like a delivery: delivered
    /// means it is gone (or was gone already).
    func retract(_ request: RetractionRequest) async -> DeliveryOutcome
}

extension Sink {
    public var recipients: [String] { [] }
    public var retraction: RetractionPlan? { nil }
    public func retract(_ request: RetractionRequest) async -> DeliveryOutcome {
        .permanent(reason: "sink '\(name)' cannot retract messages")
    }
}

/// One attempt's input: the event, the delivery (its stable id, attempt number, recipient, route).
public struct DeliveryRequest: Sendable {
    public var event: Event
    public var delivery: Delivery

    public init(event: Event, delivery: Delivery) {
        self.event = event
        self.delivery = delivery
    }

    public var templateContext: TemplateContext { TemplateContext(event: event, delivery: delivery) }
}
