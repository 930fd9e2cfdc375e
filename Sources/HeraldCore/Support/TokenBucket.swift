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
        tokens = min(burst, tokens + max(0, now.timeIntervalSince(updated)) * rate)
        updated = now
        if tokens >= 1 {
            tokens -= 1
            return nil
        }
        return .milliseconds(Int64(((1 - tokens) / rate * 1000).rounded(.up)))
    }

    /// True when the bucket is full again (nothing to remember about this client).
    public func isFull(now: Date) -> Bool {
        tokens + max(0, now.timeIntervalSince(updated)) * rate >= burst
    }
}
