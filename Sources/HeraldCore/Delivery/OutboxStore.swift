import Foundation

/// The durable record of events and their deliveries, shaped for a store that several processes
/// may share: work is claimed per sink in batches with leases, results are fenced by the attempt
/// number (a worker whose lease ran out cannot overwrite the result of the worker that took over),
/// every time is the store's own (`now()`), and callers send durations, never instants, so two
/// machines' clocks never have to agree.
public protocol OutboxStore: Sendable {
    /// The store's clock: due times, leases and expiry are compared with it.
    func now() async throws -> Date

    /// Stores the event and all its deliveries in one transaction. When an event with the same
    /// `(source, sourceID)` exists, stores nothing and returns the first event's id.
    func insert(_ event: Event, deliveries: [Delivery]) async throws -> InsertResult

    /// `insert(_:deliveries:)`, calling `beforeCommit` once with its result as soon as nothing but
    /// the commit itself can undo the write (SQLite: its statements ran in the open transaction,
    /// and the commit with its `fsync` is next). The ingest path starts a message's deliveries
    /// then, so that they do not wait for the sync. A store that cannot tell calls it after the
    /// commit (the default). Should the commit then fail, `insert` throws as usual.
    func insert(_ event: Event, deliveries: [Delivery], beforeCommit: @escaping @Sendable (InsertResult) -> Void) async throws -> InsertResult

    /// Claims up to `limit` pending deliveries to `sink` that are due, the longest-waiting first:
    /// each becomes `in_flight` with `attempts + 1`, leased for `leaseFor`. Due deliveries whose
    /// expiry has passed are marked `expired` instead and reported, never claimed. The batch also
    /// says how long until the next pending delivery to `sink` is due, so the caller knows when to
    /// look again without polling.
    func claimDue(sink: String, limit: Int, leaseFor: Duration) async throws -> ClaimBatch

    /// Records the attempt and applies its result, only if attempt `attempt.number` still holds the
    /// claim. Returns false when the claim was lost (fenced out).
    func complete(_ attempt: DeliveryAttempt, result: DeliveryResult) async throws -> Bool

    /// Gives a claim back without an attempt (shutdown came first, or too little lease was left):
    /// the delivery is pending again, due now, with its attempt count restored. Fenced like
    /// `complete`. Returns false when the claim was no longer this one.
    func release(_ delivery: Delivery) async throws -> Bool

    /// Start-up of a process that owns the store alone: every in-flight delivery (left by a crash)
    /// becomes pending, due now. Returns how many.
    func recover() async throws -> Int

    /// Lost claims: in-flight deliveries whose lease has ended become pending, due now. Returns
    /// the sinks they belong to.
    func releaseExpiredLeases() async throws -> Set<String>

    /// Pending deliveries to sinks outside `sinks` (removed from the configuration) can never be
    /// made: they fail with `DeliveryRules.sinkRemoved(_:)`. Returns how many failed per sink.
    func failPending(outside sinks: Set<String>) async throws -> [String: Int]

    /// A person asked to try a `failed` or `expired` delivery again: it becomes pending, due now,
    /// and may be sent for at least `expiresIn` more. Returns nil when the delivery does not exist
    /// or is not failed or expired. Wakes the engine (`wakeups`).
    func retry(deliveryID: String, expiresIn: Duration) async throws -> Delivery?

    /// Deletes events received more than `age` ago whose deliveries are all finished, with their
    /// deliveries and attempts. Never touches anything pending. Returns how many events went.
    func purge(olderThan age: Duration) async throws -> Int

    /// Names of sinks that got pending work from outside the engine (a retry from the admin API, or
    /// for a shared store another process): the engine looks for due work there at once.
    func wakeups() -> AsyncStream<String>

    /// Housekeeping the store wants now and then, off the hot path (SQLite: a WAL checkpoint).
    func maintain() async throws

    func event(id: String) async throws -> StoredEvent?
    func delivery(id: String) async throws -> Delivery?
    /// How many deliveries are in `state` (for the pending gauge); retractions left out.
    func count(state: DeliveryState) async throws -> Int
    /// Pending deliveries per sink, due or not (the dispatcher's backlog estimate; sinks with none
    /// left out). Retractions, due only once their code expired, are not counted.
    func pendingBySink() async throws -> [String: Int]
    func deliveries(_ filter: DeliveryFilter) async throws -> [Delivery]
    /// Events newest first, each with its deliveries (attempts left out).
    func events(_ filter: EventFilter) async throws -> [StoredEvent]
}

extension OutboxStore {
    public func maintain() async throws {}

    public func insert(_ event: Event, deliveries: [Delivery], beforeCommit: @escaping @Sendable (InsertResult) -> Void) async throws -> InsertResult {
        let result = try await insert(event, deliveries: deliveries)
        beforeCommit(result)
        return result
    }
}

/// A store's own failures that are not the database's: what it read cannot be what Herald wrote.
public struct OutboxStoreError: Error, CustomStringConvertible, Equatable {
    private enum Code: Equatable {
        case corrupt(String)
    }

    private let code: Code

    /// A row holds a value Herald never writes (an unknown delivery state, say).
    public static func corrupt(_ what: String) -> OutboxStoreError { OutboxStoreError(code: .corrupt(what)) }

    public var description: String {
        switch code {
        case .corrupt(let what): "the outbox holds data this Herald cannot read: \(what)"
        }
    }
}

/// What one attempt makes of a delivery, as the store records it.
public struct DeliveryResult: Sendable, Equatable {
    /// `.pending` (with `retryIn`) or a finished state.
    public var next: DeliveryState
    /// From the store's now; only with `.pending`.
    public var retryIn: Duration?
    public var error: String?
    public var receipt: String?

    public init(next: DeliveryState, retryIn: Duration? = nil, error: String? = nil, receipt: String? = nil) {
        self.next = next
        self.retryIn = retryIn
        self.error = error
        self.receipt = receipt
    }
}

public struct ClaimBatch: Sendable, Equatable {
    /// Claimed now, each with its event.
    public var claimed: [ClaimedDelivery]
    /// Ids of due deliveries that had expired: now `expired`, not claimed.
    public var expired: [String]
    /// How long until the next pending delivery to this sink is due (zero: due now, nil: none).
    public var nextDueIn: Duration?

    public init(claimed: [ClaimedDelivery] = [], expired: [String] = [], nextDueIn: Duration? = nil) {
        self.claimed = claimed
        self.expired = expired
        self.nextDueIn = nextDueIn
    }
}

public enum InsertResult: Sendable, Equatable {
    case inserted
    case duplicate(eventID: String)
}

public struct ClaimedDelivery: Sendable, Equatable {
    public var delivery: Delivery
    public var event: Event

    public init(delivery: Delivery, event: Event) {
        self.delivery = delivery
        self.event = event
    }
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
