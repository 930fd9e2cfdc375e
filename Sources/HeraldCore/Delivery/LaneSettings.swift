import Foundation

/// How the engine treats one sink: its retry policy, how many attempts run at once, how long one
/// may take, and its pace.
public struct LaneSettings: Sendable, Equatable {
    public var sink: String
    public var retry: RetryPolicy
    public var concurrency: Int
    public var timeout: Duration
    /// Attempts per second (nil: as fast as the concurrency allows) and the burst above it.
    public var rateLimit: Double?
    public var burst: Int
    /// The shortest claim (`defaults.lease`); a longer sink timeout lengthens it.
    public var minimumLease: Duration

    public init(sink: String, retry: RetryPolicy = .default, concurrency: Int = 4, timeout: Duration = .seconds(10),
                rateLimit: Double? = nil, burst: Int = 1, minimumLease: Duration = LaneSettings.defaultLease) {
        self.minimumLease = minimumLease
        self.sink = sink
        self.retry = retry
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.rateLimit = rateLimit
        self.burst = max(1, burst)
    }

    /// What an attempt must have left of its lease when it starts, beyond `timeout`: the time to
    /// write the result back before anyone else may take the delivery.
    public static let leaseMargin: Duration = .seconds(5)

    public static let defaultLease: Duration = .seconds(30)

    /// How long a claim lasts: an attempt's timeout plus twice the margin, and at least
    /// `minimumLease` (30 s unless `defaults.lease` says otherwise). After a crash, this is how long
    /// the deliveries the process had in flight wait for another process to take them over.
    public var lease: Duration { max(minimumLease, timeout + Self.leaseMargin + Self.leaseMargin) }

    /// How much room a busy lane waits for before it claims from the store (its room is twice
    /// its concurrency).
    public var claimBatch: Int { max(1, concurrency / 2) }

    /// Whether an attempt holding a lease until `leaseUntil` may start at `now`.
    public func mayStart(leaseUntil: Date?, now: Date) -> Bool {
        guard let leaseUntil else { return false }
        return Duration.seconds(leaseUntil.timeIntervalSince(now)) >= timeout + Self.leaseMargin
    }
}
