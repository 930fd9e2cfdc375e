/// A place events are delivered to. A sink performs one attempt and says what happened; it never
/// retries on its own — the dispatcher and `RetryPolicy` decide what happens next.
public protocol Sink: Sendable {
    var name: String { get }
    /// One delivery per recipient (Twilio SMS to several phones); empty: one delivery in all.
    var recipients: [String] { get }
    func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome
}

extension Sink {
    public var recipients: [String] { [] }
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
