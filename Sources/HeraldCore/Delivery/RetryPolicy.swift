import Foundation

/// Exponential backoff with full jitter, bounded by `maxAttempts` and by the delivery's expiry.
///
/// The wait before attempt n+1 is drawn uniformly from `initial ... min(max, initial × 2^(n-1))`:
///
/// | attempt that failed | initial 1s, max 2m: wait drawn from |
/// | --- | --- |
/// | 1 | 1s |
/// | 2 | 1s … 2s |
/// | 3 | 1s … 4s |
/// | 8 | 1s … 2m |
///
/// A `Retry-After` from the receiver replaces the drawn wait (it is not capped by `max`).
public struct RetryPolicy: Sendable, Equatable {
    public var maxAttempts: Int
    public var initialBackoff: Duration
    public var maxBackoff: Duration

    public init(maxAttempts: Int = 10, initialBackoff: Duration = .seconds(1), maxBackoff: Duration = .seconds(120)) {
        self.maxAttempts = maxAttempts
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
    }

    public static let `default` = RetryPolicy()

    public enum Decision: Sendable, Equatable {
        case retry(at: Date)
        /// `maxAttempts` reached.
        case giveUp
        /// The next attempt would start at or after the expiry.
        case expire
    }

    /// The upper bound of the wait after attempt `attempt` (1-based) failed.
    public func backoffCeiling(afterAttempt attempt: Int) -> Duration {
        let exponent = min(max(attempt - 1, 0), 40)
        let ceiling = initialBackoff.seconds * pow(2, Double(exponent))
        return .milliseconds(Int64(min(max(ceiling, initialBackoff.seconds), max(maxBackoff.seconds, initialBackoff.seconds)) * 1000))
    }

    /// `random` takes a closed range and returns a value in it, so tests can pin the jitter.
    public func decide(
        afterAttempt attempt: Int, retryAfter: Duration?, now: Date, expiresAt: Date,
        random: (ClosedRange<Double>) -> Double = { Double.random(in: $0) }
    ) -> Decision {
        guard attempt < maxAttempts else { return .giveUp }
        let wait: Double
        if let retryAfter {
            wait = max(0, retryAfter.seconds)
        } else {
            wait = random(initialBackoff.seconds...backoffCeiling(afterAttempt: attempt).seconds)
        }
        let next = now.addingTimeInterval(wait)
        return next >= expiresAt ? .expire : .retry(at: next)
    }
}
