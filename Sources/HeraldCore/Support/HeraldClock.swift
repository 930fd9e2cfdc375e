import Foundation

/// The one source of time for the delivery engine. Production uses `SystemClock`; tests use a
/// manual clock so that a retry due in two minutes is tested without waiting two minutes.
public protocol HeraldClock: Sendable {
    func now() -> Date
    /// Suspends until `deadline`; throws `CancellationError` when the task is cancelled.
    func sleep(until deadline: Date) async throws
}

public struct SystemClock: HeraldClock {
    public init() {}

    public func now() -> Date { Date() }

    public func sleep(until deadline: Date) async throws {
        let interval = deadline.timeIntervalSinceNow
        if interval > 0 {
            try await Task.sleep(for: .milliseconds(saturating: (interval * 1000).rounded(.up)))
        } else {
            try Task.checkCancellation()
        }
    }
}
