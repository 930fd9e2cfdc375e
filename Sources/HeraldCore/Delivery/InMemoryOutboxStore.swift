import Foundation

/// An `OutboxStore` that keeps everything in memory: for tests and `storage: memory`. It follows
/// the same contract as the database stores, fences included.
public actor InMemoryOutboxStore: OutboxStore {
    private var events: [String: Event] = [:]
    private var eventOrder: [String] = []
    private var sourceIndex: [String: String] = [:]
    private var deliveries: [String: Delivery] = [:]
    private var deliveryOrder: [String] = []
    private var attempts: [String: [DeliveryAttempt]] = [:]

    public init() {}

    public func insert(_ event: Event, deliveries newDeliveries: [Delivery]) throws -> InsertResult {
        if let sourceID = event.sourceID {
            let key = event.source + "\u{0}" + sourceID
            if let existing = sourceIndex[key] { return .duplicate(eventID: existing) }
            sourceIndex[key] = event.id
        }
        events[event.id] = event
        eventOrder.append(event.id)
        for delivery in newDeliveries {
            deliveries[delivery.id] = delivery
            deliveryOrder.append(delivery.id)
        }
        return .inserted
    }

    public func claim(deliveryID: String, now: Date, leaseUntil: Date) throws -> ClaimResult {
        guard var delivery = deliveries[deliveryID], delivery.state == .pending, delivery.nextAttemptAt <= now,
              let event = events[delivery.eventID]
        else {
            return .unavailable
        }
        if now >= delivery.expiresAt {
            delivery.state = .expired
            delivery.lastError = delivery.lastError ?? "expired before it could be sent"
            delivery.updatedAt = now
            deliveries[deliveryID] = delivery
            return .expired
        }
        delivery.state = .inFlight
        delivery.attempts += 1
        delivery.leaseUntil = leaseUntil
        delivery.updatedAt = now
        deliveries[deliveryID] = delivery
        return .claimed(ClaimedDelivery(delivery: delivery, event: event))
    }

    public func complete(_ attempt: DeliveryAttempt, next: DeliveryState, nextAttemptAt: Date?, error: String?, now: Date) throws -> Bool {
        guard var delivery = deliveries[attempt.deliveryID], delivery.state == .inFlight, delivery.attempts == attempt.number else {
            return false
        }
        attempts[attempt.deliveryID, default: []].append(attempt)
        delivery.state = next
        delivery.leaseUntil = nil
        delivery.updatedAt = now
        if let error { delivery.lastError = error }
        if let nextAttemptAt { delivery.nextAttemptAt = nextAttemptAt }
        deliveries[attempt.deliveryID] = delivery
        return true
    }

    public func recover(now: Date) throws -> [ScheduledDelivery] {
        var result: [ScheduledDelivery] = []
        for id in deliveryOrder {
            guard var delivery = deliveries[id] else { continue }
            if delivery.state == .inFlight {
                delivery.state = .pending
                delivery.leaseUntil = nil
                delivery.nextAttemptAt = now
                deliveries[id] = delivery
            }
            if delivery.state == .pending {
                result.append(ScheduledDelivery(id: id, sink: delivery.sink, dueAt: delivery.nextAttemptAt))
            }
        }
        return result
    }

    public func event(id: String) throws -> StoredEvent? {
        guard let event = events[id] else { return nil }
        let list = deliveryOrder.compactMap { deliveries[$0] }.filter { $0.eventID == id }
        let recorded = list.flatMap { attempts[$0.id] ?? [] }.sorted { $0.startedAt < $1.startedAt }
        return StoredEvent(event: event, deliveries: list, attempts: recorded)
    }

    public func deliveries(_ filter: DeliveryFilter) throws -> [Delivery] {
        var result: [Delivery] = []
        for id in deliveryOrder.reversed() {
            guard let delivery = deliveries[id] else { continue }
            if let state = filter.state, delivery.state != state { continue }
            if let sink = filter.sink, delivery.sink != sink { continue }
            if let eventID = filter.eventID, delivery.eventID != eventID { continue }
            result.append(delivery)
            if result.count >= filter.limit { break }
        }
        return result
    }

    /// Every event, oldest first (for tests).
    public func allEvents() -> [Event] {
        eventOrder.compactMap { events[$0] }
    }
}
