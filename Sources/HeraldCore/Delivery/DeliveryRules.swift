import Foundation

/// What one attempt's outcome makes of a delivery. Pure: the dispatch machine calls it, tests
/// call it with tables.
public enum DeliveryRules {
    public struct Decision: Sendable, Equatable {
        public var result: DeliveryResult
        /// When the next attempt is due (only for a retry).
        public var retryAt: Date?
        /// The receiver asked the whole sink to wait until then (`Retry-After`).
        public var pauseUntil: Date?
    }

    /// | outcome | becomes |
    /// | --- | --- |
    /// | delivered | `delivered`, with the receiver's receipt (a spent rate budget pauses the sink) |
    /// | skipped | `skipped` (the loop guard) |
    /// | permanent | `failed` with the reason |
    /// | retry | `pending` at the policy's next time (`Retry-After` wins, and pauses the sink); `failed` at `max_attempts`; `expired` when the next time would be past the expiry |
    public static func decide(
        _ outcome: DeliveryOutcome, delivery: Delivery, policy: RetryPolicy, now: Date,
        random: (ClosedRange<Double>) -> Double
    ) -> Decision {
        switch outcome {
        case .delivered(_, let receipt, let rest):
            // A receiver whose budget is spent pauses the sink, as a `Retry-After` would.
            return Decision(result: DeliveryResult(next: .delivered, receipt: receipt), pauseUntil: rest.map { now.adding($0) })
        case .skipped(let reason):
            return Decision(result: DeliveryResult(next: .skipped, error: reason))
        case .permanent(let reason):
            return Decision(result: DeliveryResult(next: .failed, error: reason))
        case .retry(let after, let reason):
            // A receiver's pause never outlasts the code it holds back (a `Retry-After: 3600`
            // for a code with minutes left pauses the sink for those minutes).
            let pause = after.map { min(now.adding($0), delivery.expiresAt) }
            switch policy.decide(afterAttempt: delivery.attempts, retryAfter: after, now: now, expiresAt: delivery.expiresAt, random: random) {
            case .retry(let at):
                let wait = Duration.milliseconds(saturating: at.timeIntervalSince(now) * 1000)
                return Decision(result: DeliveryResult(next: .pending, retryIn: wait, error: reason), retryAt: at, pauseUntil: pause)
            case .giveUp:
                return Decision(result: DeliveryResult(next: .failed, error: "gave up after \(delivery.attempts) attempts: \(reason)"), pauseUntil: pause)
            case .expire:
                return Decision(result: DeliveryResult(next: .expired, error: "expired while retrying: \(reason)"), pauseUntil: pause)
            }
        }
    }

    /// The error of a delivery whose sink was removed from the configuration.
    public static func sinkRemoved(_ sink: String) -> String {
        "sink removed: '\(sink)' is no longer configured"
    }

    public static let expiredUnsent = "expired before it could be sent"
    /// The attempt row of a delivery that had been tried and expired before its next attempt
    /// (its `last_error` stays the last attempt's, which says why it was not delivered).
    public static let expiredBeforeRetry = "expired before its next attempt"
}
