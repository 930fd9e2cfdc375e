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
    private let clock: any HeraldClock
    private let wakeupHub = StoreWakeups()

    /// `clock` is the store's clock (a shared database would use its own `now()`).
    public init(clock: any HeraldClock = SystemClock()) {
        self.clock = clock
    }

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

    public nonisolated func now() -> Date { clock.now() }

    public func claimDue(sink: String, limit: Int, leaseFor: Duration) throws -> ClaimBatch {
        let now = clock.now()
        var batch = ClaimBatch()
        let due = deliveryOrder.compactMap { deliveries[$0] }
            .filter { $0.sink == sink && $0.state == .pending && $0.nextAttemptAt <= now }
            .sorted { $0.nextAttemptAt < $1.nextAttemptAt }
        for var delivery in due {
            if now >= delivery.expiresAt {
                delivery.state = .expired
                delivery.lastError = delivery.lastError ?? "expired before it could be sent"
                delivery.updatedAt = now
                deliveries[delivery.id] = delivery
                batch.expired.append(delivery.id)
                continue
            }
            guard batch.claimed.count < limit, let event = events[delivery.eventID] else { continue }
            delivery.state = .inFlight
            delivery.attempts += 1
            delivery.leaseUntil = now.adding(leaseFor)
            delivery.updatedAt = now
            deliveries[delivery.id] = delivery
            batch.claimed.append(ClaimedDelivery(delivery: delivery, event: event))
        }
        let next = deliveries.values.filter { $0.sink == sink && $0.state == .pending }.map(\.nextAttemptAt).min()
        batch.nextDueIn = next.map { max(.zero, Duration.seconds($0.timeIntervalSince(now))) }
        return batch
    }

    public func complete(_ attempt: DeliveryAttempt, result: DeliveryResult) throws -> Bool {
        guard var delivery = deliveries[attempt.deliveryID], delivery.state == .inFlight, delivery.attempts == attempt.number else {
            return false
        }
        let now = clock.now()
        attempts[attempt.deliveryID, default: []].append(attempt)
        delivery.state = result.next
        delivery.leaseUntil = nil
        delivery.updatedAt = now
        if let error = result.error { delivery.lastError = error }
        if let receipt = result.receipt { delivery.receipt = receipt }
        if let retryIn = result.retryIn { delivery.nextAttemptAt = now.adding(retryIn) }
        deliveries[attempt.deliveryID] = delivery
        return true
    }

    public func release(_ claimed: Delivery) throws -> Bool {
        guard var delivery = deliveries[claimed.id], delivery.state == .inFlight, delivery.attempts == claimed.attempts else { return false }
        let now = clock.now()
        delivery.state = .pending
        delivery.attempts -= 1
        delivery.leaseUntil = nil
        delivery.nextAttemptAt = now
        delivery.updatedAt = now
        deliveries[claimed.id] = delivery
        return true
    }

    public func recover() throws -> Int {
        let now = clock.now()
        var count = 0
        for id in deliveryOrder {
            guard var delivery = deliveries[id], delivery.state == .inFlight else { continue }
            delivery.state = .pending
            delivery.leaseUntil = nil
            delivery.nextAttemptAt = now
            deliveries[id] = delivery
            count += 1
        }
        return count
    }

    public func releaseExpiredLeases() throws -> Set<String> {
        let now = clock.now()
        var sinks: Set<String> = []
        for id in deliveryOrder {
            guard var delivery = deliveries[id], delivery.state == .inFlight, let lease = delivery.leaseUntil, lease < now else { continue }
            delivery.state = .pending
            delivery.leaseUntil = nil
            delivery.nextAttemptAt = now
            delivery.updatedAt = now
            deliveries[id] = delivery
            sinks.insert(delivery.sink)
        }
        return sinks
    }

    public func failPending(outside sinks: Set<String>) throws -> [String: Int] {
        let now = clock.now()
        var failed: [String: Int] = [:]
        for id in deliveryOrder {
            guard var delivery = deliveries[id], delivery.state == .pending, !sinks.contains(delivery.sink) else { continue }
            delivery.state = .failed
            delivery.lastError = DeliveryRules.sinkRemoved(delivery.sink)
            delivery.updatedAt = now
            deliveries[id] = delivery
            failed[delivery.sink, default: 0] += 1
        }
        return failed
    }

    public func retry(deliveryID: String, expiresIn: Duration) throws -> Delivery? {
        guard var delivery = deliveries[deliveryID], delivery.state == .failed || delivery.state == .expired else { return nil }
        let now = clock.now()
        delivery.state = .pending
        delivery.nextAttemptAt = now
        delivery.expiresAt = max(delivery.expiresAt, now.adding(expiresIn))
        delivery.updatedAt = now
        deliveries[deliveryID] = delivery
        wakeupHub.notify(delivery.sink)
        return delivery
    }

    public nonisolated func wakeups() -> AsyncStream<String> { wakeupHub.subscribe() }

    public func purge(olderThan age: Duration) throws -> Int {
        let cutoff = clock.now().adding(.zero - age)
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

    public func pendingBySink() throws -> [String: Int] {
        deliveries.values.reduce(into: [:]) { counts, delivery in
            if delivery.state == .pending && !delivery.isRetraction { counts[delivery.sink, default: 0] += 1 }
        }
    }

    public func count(state: DeliveryState) throws -> Int {
        deliveries.values.filter { $0.state == state && !$0.isRetraction }.count
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
