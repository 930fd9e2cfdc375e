import Foundation

/// The durable record of events and their deliveries. Shaped for a real database: one write per
/// step, claims with leases, and results fenced by the attempt number so that a worker whose lease
/// ran out cannot overwrite the result of the worker that took over.
public protocol OutboxStore: Sendable {
    /// Stores the event and all its deliveries in one transaction. When an event with the same
    /// `(source, sourceID)` exists, stores nothing and returns the first event's id.
    func insert(_ event: Event, deliveries: [Delivery]) async throws -> InsertResult

    /// Takes a pending delivery that is due (`nextAttemptAt <= now`) for one attempt: `in_flight`,
    /// `attempts + 1`, leased until `leaseUntil`. A delivery whose expiry has passed is marked
    /// `expired` instead. Anything else is `.unavailable`, so a delivery scheduled twice is still
    /// attempted once, and never before its retry is due.
    func claim(deliveryID: String, now: Date, leaseUntil: Date) async throws -> ClaimResult

    /// Records the attempt and applies its result, only if attempt `attempt.number` still holds the
    /// claim. `next` is the new state: `.pending` (with `nextAttemptAt`) or a finished state.
    /// Returns false when the claim was lost.
    func complete(_ attempt: DeliveryAttempt, next: DeliveryState, nextAttemptAt: Date?, error: String?, now: Date) async throws -> Bool

    /// Start-up: in-flight deliveries (left by a crash) become pending; returns every pending
    /// delivery so the dispatcher can schedule it.
    func recover(now: Date) async throws -> [ScheduledDelivery]

    /// Makes lost claims available again: in-flight deliveries whose lease ended before `now`
    /// become pending (due at once) and are returned for scheduling.
    func releaseExpiredLeases(now: Date) async throws -> [ScheduledDelivery]

    /// Pending deliveries due by `now`, oldest first (for the periodic sweep).
    func dueDeliveries(now: Date, limit: Int) async throws -> [ScheduledDelivery]

    /// A person asked to try a `failed` or `expired` delivery again: it becomes pending, due now,
    /// and may be sent until `expiresAt`. Returns nil when the delivery does not exist or is not
    /// failed or expired.
    func retry(deliveryID: String, now: Date, expiresAt: Date) async throws -> Delivery?

    /// Deletes events received before `cutoff` whose deliveries are all finished, with their
    /// deliveries and attempts. Never touches anything pending. Returns how many events went.
    func purge(receivedBefore cutoff: Date) async throws -> Int

    /// Housekeeping the store wants now and then, off the hot path (SQLite: a WAL checkpoint).
    func maintain() async throws

    func event(id: String) async throws -> StoredEvent?
    func delivery(id: String) async throws -> Delivery?
    /// How many deliveries are in `state` (for the pending gauge).
    func count(state: DeliveryState) async throws -> Int
    func deliveries(_ filter: DeliveryFilter) async throws -> [Delivery]
    /// Events newest first, each with its deliveries (attempts left out).
    func events(_ filter: EventFilter) async throws -> [StoredEvent]
}

public struct EventFilter: Sendable, Equatable {
    /// Events with at least one delivery in this state.
    public var state: DeliveryState?
    /// Only events that matched no route.
    public var unrouted: Bool
    public var route: String?
    public var sink: String?
    public var since: Date?
    public var until: Date?
    public var limit: Int

    public init(state: DeliveryState? = nil, unrouted: Bool = false, route: String? = nil, sink: String? = nil,
                since: Date? = nil, until: Date? = nil, limit: Int = 50) {
        self.state = state
        self.unrouted = unrouted
        self.route = route
        self.sink = sink
        self.since = since
        self.until = until
        self.limit = limit
    }
}

extension OutboxStore {
    public func maintain() async throws {}
}

public enum InsertResult: Sendable, Equatable {
    case inserted
    case duplicate(eventID: String)
}

public enum ClaimResult: Sendable, Equatable {
    case claimed(ClaimedDelivery)
    /// The delivery had expired; it is now `expired` and must not be sent.
    case expired
    /// Not pending (finished, or claimed by another worker).
    case unavailable
}

public struct ClaimedDelivery: Sendable, Equatable {
    public var delivery: Delivery
    public var event: Event

    public init(delivery: Delivery, event: Event) {
        self.delivery = delivery
        self.event = event
    }
}

/// What the dispatcher needs to schedule a delivery.
public struct ScheduledDelivery: Sendable, Equatable {
    public var id: String
    public var sink: String
    public var dueAt: Date

    public init(id: String, sink: String, dueAt: Date) {
        self.id = id
        self.sink = sink
        self.dueAt = dueAt
    }
}

public struct StoredEvent: Sendable, Equatable {
    public var event: Event
    public var deliveries: [Delivery]
    public var attempts: [DeliveryAttempt]

    public init(event: Event, deliveries: [Delivery], attempts: [DeliveryAttempt]) {
        self.event = event
        self.deliveries = deliveries
        self.attempts = attempts
    }

    public var isRouted: Bool { !deliveries.isEmpty }
}

public struct DeliveryFilter: Sendable, Equatable {
    public var state: DeliveryState?
    public var sink: String?
    public var eventID: String?
    public var limit: Int

    public init(state: DeliveryState? = nil, sink: String? = nil, eventID: String? = nil, limit: Int = 100) {
        self.state = state
        self.sink = sink
        self.eventID = eventID
        self.limit = limit
    }
}
