import Synchronization

/// Fan-out of "this sink has new pending work" to every subscriber, for stores that learn of work
/// the engine did not create (an admin retry; for a shared store, another process's NOTIFY).
/// Each subscriber gets its own buffered stream; a subscriber that stops listening is dropped.
public final class StoreWakeups: Sendable {
    private let subscribers = Mutex<[Int: AsyncStream<String>.Continuation]>([:])
    private let nextID = Atomic<Int>(0)

    /// Not a sink name (sink names are identifiers): every lane should look in the store (a
    /// shared store's listener reconnected and may have missed announcements).
    public static let everySink = "*"

    public init() {}

    public func subscribe() -> AsyncStream<String> {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        subscribers.withLock { $0[id] = continuation }
        return stream
    }

    public func notify(_ sink: String) {
        for continuation in subscribers.withLock({ Array($0.values) }) {
            continuation.yield(sink)
        }
    }
}
