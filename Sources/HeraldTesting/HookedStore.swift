import Foundation
import HeraldCore

/// A memory store with hooks, for tests of what Herald does when its store is slow, loses a
/// claim or fails: each hook runs before (or instead of) the memory store's own call.
public final class HookedStore: OutboxStore {
    public let inner: InMemoryOutboxStore
    let beforeInsert: @Sendable () async throws -> Void
    let commit: @Sendable () async throws -> Void
    let completeOverride: (@Sendable (DeliveryAttempt, DeliveryResult) async throws -> Bool)?
    let beforeCount: @Sendable () async throws -> Void

    public init(
        clock: any HeraldClock = SystemClock(),
        beforeInsert: @escaping @Sendable () async throws -> Void = {},
        commit: @escaping @Sendable () async throws -> Void = {},
        complete: (@Sendable (DeliveryAttempt, DeliveryResult) async throws -> Bool)? = nil,
        beforeCount: @escaping @Sendable () async throws -> Void = {}
    ) {
        inner = InMemoryOutboxStore(clock: clock)
        self.beforeInsert = beforeInsert
        self.commit = commit
        self.completeOverride = complete
        self.beforeCount = beforeCount
    }

    public func now() async throws -> Date { inner.now() }
    public func insert(_ event: Event, deliveries: [Delivery]) async throws -> InsertResult {
        try await beforeInsert()
        return try await inner.insert(event, deliveries: deliveries)
    }
    /// As a SQLite store does: `beforeCommit` once the write stands, then the `commit` hook (which
    /// may hold the "commit" or throw as a failed one would; the memory store keeps the write).
    public func insert(_ event: Event, deliveries: [Delivery], beforeCommit: @escaping @Sendable (InsertResult) -> Void) async throws -> InsertResult {
        let result = try await insert(event, deliveries: deliveries)
        beforeCommit(result)
        try await commit()
        return result
    }
    public func claimDue(sink: String, limit: Int, leaseFor: Duration) async throws -> ClaimBatch { try await inner.claimDue(sink: sink, limit: limit, leaseFor: leaseFor) }
    public func complete(_ attempt: DeliveryAttempt, result: DeliveryResult) async throws -> Bool {
        if let completeOverride { return try await completeOverride(attempt, result) }
        return try await inner.complete(attempt, result: result)
    }
    public func release(_ delivery: Delivery) async throws -> Bool { try await inner.release(delivery) }
    public func recover() async throws -> Int { try await inner.recover() }
    public func releaseExpiredLeases() async throws -> Set<String> { try await inner.releaseExpiredLeases() }
    public func failPending(outside sinks: Set<String>) async throws -> [String: Int] { try await inner.failPending(outside: sinks) }
    public func retry(deliveryID: String, expiresIn: Duration) async throws -> Delivery? { try await inner.retry(deliveryID: deliveryID, expiresIn: expiresIn) }
    public func purge(olderThan age: Duration) async throws -> Int { try await inner.purge(olderThan: age) }
    public func wakeups() -> AsyncStream<String> { inner.wakeups() }
    public func event(id: String) async throws -> StoredEvent? { try await inner.event(id: id) }
    public func delivery(id: String) async throws -> Delivery? { try await inner.delivery(id: id) }
    public func count(state: DeliveryState) async throws -> Int {
        try await beforeCount()
        return try await inner.count(state: state)
    }
    public func pendingBySink() async throws -> [String: Int] { try await inner.pendingBySink() }
    public func deliveries(_ filter: DeliveryFilter) async throws -> [Delivery] { try await inner.deliveries(filter) }
    public func events(_ filter: EventFilter) async throws -> [StoredEvent] { try await inner.events(filter) }
}
