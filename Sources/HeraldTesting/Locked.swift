import Synchronization

/// A value that tasks and callbacks of a test share (a `Mutex` cannot be captured by an escaping
/// closure itself).
public final class Locked<Value: Sendable>: Sendable {
    private let value: Mutex<Value>

    public init(_ value: Value) { self.value = Mutex(value) }

    public var current: Value { value.withLock { $0 } }

    public func update<T: Sendable>(_ body: (inout sending Value) -> T) -> T { value.withLock { body(&$0) } }
}
