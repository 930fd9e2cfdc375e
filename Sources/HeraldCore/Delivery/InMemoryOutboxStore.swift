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

    public func releaseExpiredLeases(now: Date) throws -> [ScheduledDelivery] {
        var result: [ScheduledDelivery] = []
        for id in deliveryOrder {
            guard var delivery = deliveries[id], delivery.state == .inFlight, let lease = delivery.leaseUntil, lease < now else { continue }
            delivery.state = .pending
            delivery.leaseUntil = nil
            delivery.nextAttemptAt = now
            delivery.updatedAt = now
            deliveries[id] = delivery
            result.append(ScheduledDelivery(id: id, sink: delivery.sink, dueAt: now))
        }
        return result
    }

    public func dueDeliveries(now: Date, limit: Int) throws -> [ScheduledDelivery] {
        let due = deliveryOrder.compactMap { deliveries[$0] }.filter { $0.state == .pending && $0.nextAttemptAt <= now }
        return due.sorted { $0.nextAttemptAt < $1.nextAttemptAt }.prefix(limit).map { ScheduledDelivery(id: $0.id, sink: $0.sink, dueAt: $0.nextAttemptAt) }
    }

    public func retry(deliveryID: String, now: Date, expiresAt: Date) throws -> Delivery? {
        guard var delivery = deliveries[deliveryID], delivery.state == .failed || delivery.state == .expired else { return nil }
        delivery.state = .pending
        delivery.nextAttemptAt = now
        delivery.expiresAt = max(delivery.expiresAt, expiresAt)
        delivery.updatedAt = now
        deliveries[deliveryID] = delivery
        return delivery
    }

    public func purge(receivedBefore cutoff: Date) throws -> Int {
        var removed = 0
        for id in eventOrder {
            guard let event = events[id], event.receivedAt < cutoff else { continue }
            let owned = deliveryOrder.filter { deliveries[$0]?.eventID == id }
            guard owned.allSatisfy({ deliveries[$0]?.state.isFinished == true }) else { continue }
            for deliveryID in owned {
                deliveries[deliveryID] = nil
                attempts[deliveryID] = nil
            }
            deliveryOrder.removeAll { owned.contains($0) }
            events[id] = nil
            if let sourceID = event.sourceID { sourceIndex[event.source + "\u{0}" + sourceID] = nil }
            removed += 1
        }
        eventOrder.removeAll { events[$0] == nil }
        return removed
    }

    public func events(_ filter: EventFilter) throws -> [StoredEvent] {
        var result: [StoredEvent] = []
        let newestFirst = eventOrder.compactMap { events[$0] }.sorted { ($0.receivedAt, $0.id) > ($1.receivedAt, $1.id) }
        for event in newestFirst {
            let id = event.id
            if let since = filter.since, event.receivedAt < since { continue }
            if let until = filter.until, event.receivedAt >= until { continue }
            let owned = deliveryOrder.compactMap { deliveries[$0] }.filter { $0.eventID == id }
            if filter.unrouted && !owned.isEmpty { continue }
            if let state = filter.state, !owned.contains(where: { $0.state == state }) { continue }
            if let sink = filter.sink, !owned.contains(where: { $0.sink == sink }) { continue }
            if let route = filter.route, event.route != route && !owned.contains(where: { $0.route == route }) { continue }
            result.append(StoredEvent(event: event, deliveries: owned, attempts: []))
            if result.count >= filter.limit { break }
        }
        return result
    }

    public func event(id: String) throws -> StoredEvent? {
        guard let event = events[id] else { return nil }
        let list = deliveryOrder.compactMap { deliveries[$0] }.filter { $0.eventID == id }
        let recorded = list.flatMap { attempts[$0.id] ?? [] }.sorted { $0.startedAt < $1.startedAt }
        return StoredEvent(event: event, deliveries: list, attempts: recorded)
    }

    public func count(state: DeliveryState) throws -> Int {
        deliveries.values.filter { $0.state == state }.count
    }

    public func delivery(id: String) throws -> Delivery? {
        deliveries[id]
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
