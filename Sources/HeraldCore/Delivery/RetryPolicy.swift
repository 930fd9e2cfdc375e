import Foundation

/// Exponential backoff with full jitter, bounded by `maxAttempts` and by the delivery's expiry.
///
/// The wait before attempt n+1 is drawn uniformly from `floor ... min(max, initial × 2^(n-1))`,
/// where the floor is `initial`'s fifth (so a healthy receiver that failed once is asked again
/// within a few hundred milliseconds, and a crowd of failures spreads out):
///
/// | attempt that failed | initial 250ms, max 2m (the defaults): wait drawn from |
/// | --- | --- |
/// | 1 | 50ms … 250ms |
/// | 2 | 50ms … 500ms |
/// | 3 | 50ms … 1s |
/// | 10 | 50ms … 2m |
///
/// A `Retry-After` from the receiver replaces the drawn wait (it is not capped by `max`), and a
/// sink's rate limit still paces the retry.
public struct RetryPolicy: Sendable, Equatable {
    public var maxAttempts: Int
    public var initialBackoff: Duration
    public var maxBackoff: Duration

    public init(maxAttempts: Int = 10, initialBackoff: Duration = .milliseconds(250), maxBackoff: Duration = .seconds(120)) {
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

    /// The shortest wait drawn: a fifth of `initialBackoff`.
    public var backoffFloor: Duration { initialBackoff / 5 }

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
            wait = random(backoffFloor.seconds...backoffCeiling(afterAttempt: attempt).seconds)
        }
        let next = now.addingTimeInterval(wait)
        return next >= expiresAt ? .expire : .retry(at: next)
    }
}
