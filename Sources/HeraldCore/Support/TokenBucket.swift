import Foundation

/// A token bucket: `rate` tokens a second up to `burst`. `take` says whether a request may pass
/// now, and if not, how long until it could.
public struct TokenBucket: Sendable {
    public let rate: Double
    public let burst: Double
    private(set) var tokens: Double
    private(set) var updated: Date

    public init(rate: Double, burst: Int, now: Date) {
        self.rate = rate
        self.burst = Double(max(1, burst))
        self.tokens = Double(max(1, burst))
        self.updated = now
    }

    /// Nil when a token was taken; otherwise the wait until one is available.
    public mutating func take(now: Date) -> Duration? {
        refill(now: now)
        if tokens >= 1 {
            tokens -= 1
            return nil
        }
        return waitForToken(now: now)
    }

    /// Whole tokens available at `now`.
    public mutating func available(now: Date) -> Int {
        refill(now: now)
        return Int(tokens.rounded(.down))
    }

    /// Takes `count` tokens (at most what is available).
    public mutating func consume(_ count: Int, now: Date) {
        refill(now: now)
        tokens = max(0, tokens - Double(count))
    }

    /// Gives back tokens taken for work that did not happen.
    public mutating func refund(_ count: Int) {
        tokens = min(burst, tokens + Double(count))
    }

    /// How long until one whole token is available.
    public mutating func waitForToken(now: Date) -> Duration {
        refill(now: now)
        return tokens >= 1 ? .zero : .milliseconds(saturating: ((1 - tokens) / rate * 1000).rounded(.up))
    }

    private mutating func refill(now: Date) {
        tokens = min(burst, tokens + max(0, now.timeIntervalSince(updated)) * rate)
        updated = max(updated, now)
    }

    /// True when the bucket is full again (nothing to remember about this client).
    public func isFull(now: Date) -> Bool {
        tokens + max(0, now.timeIntervalSince(updated)) * rate >= burst
    }
}
