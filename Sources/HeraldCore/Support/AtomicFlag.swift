import Synchronization

/// A flag one task or callback sets and another reads: an attempt's cancellation, seen by a
/// blocking transfer; a message's deliveries started before its write committed.
public final class AtomicFlag: Sendable {
    private let value = Atomic<Bool>(false)

    public init() {}

    public func set() { value.store(true, ordering: .releasing) }

    public var isSet: Bool { value.load(ordering: .acquiring) }
}
