import Foundation
import HeraldCore
import Testing

@Suite("Retry policy")
struct RetryPolicyTests {
    let policy = RetryPolicy(maxAttempts: 5, initialBackoff: .seconds(1), maxBackoff: .seconds(10))
    let now = Date(timeIntervalSince1970: 1_000_000)
    var far: Date { now.addingTimeInterval(3600) }

    @Test(arguments: [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (30, 10.0)])
    func ceilingDoublesUpToMax(_ attempt: Int, _ seconds: Double) {
        #expect(policy.backoffCeiling(afterAttempt: attempt) == .milliseconds(Int64(seconds * 1000)))
    }

    @Test func fullJitterDrawsBetweenAFifthOfInitialAndCeiling() {
        var ranges: [ClosedRange<Double>] = []
        _ = policy.decide(afterAttempt: 3, retryAfter: nil, now: now, expiresAt: far) { range in
            ranges.append(range)
            return range.upperBound
        }
        #expect(ranges == [0.2...4.0])
        let decision = policy.decide(afterAttempt: 3, retryAfter: nil, now: now, expiresAt: far) { $0.lowerBound }
        #expect(decision == .retry(at: now.addingTimeInterval(0.2)))
    }

    /// The default asks a receiver that failed once again within a few hundred milliseconds.
    @Test func theDefaultFirstRetryComesWithin50To250Milliseconds() {
        var ranges: [ClosedRange<Double>] = []
        _ = RetryPolicy.default.decide(afterAttempt: 1, retryAfter: nil, now: now, expiresAt: far) { range in
            ranges.append(range)
            return range.upperBound
        }
        #expect(ranges == [0.05...0.25])
        #expect(RetryPolicy.default.backoffCeiling(afterAttempt: 10) == .seconds(120), "the tenth wait may reach the 2 min cap")
    }

    @Test func retryAfterReplacesTheBackoff() {
        let decision = policy.decide(afterAttempt: 1, retryAfter: .seconds(30), now: now, expiresAt: far) { _ in
            Issue.record("no jitter is drawn when the receiver said when")
            return 0
        }
        #expect(decision == .retry(at: now.addingTimeInterval(30)))
    }

    @Test func maxAttemptsStops() {
        #expect(policy.decide(afterAttempt: 5, retryAfter: nil, now: now, expiresAt: far) == .giveUp)
        #expect(policy.decide(afterAttempt: 4, retryAfter: nil, now: now, expiresAt: far) { $0.lowerBound } != .giveUp)
    }

    @Test func neverSchedulesPastExpiry() {
        let expiresAt = now.addingTimeInterval(5)
        #expect(policy.decide(afterAttempt: 1, retryAfter: .seconds(5), now: now, expiresAt: expiresAt) == .expire)
        #expect(policy.decide(afterAttempt: 1, retryAfter: .seconds(4), now: now, expiresAt: expiresAt) == .retry(at: now.addingTimeInterval(4)))
    }
}
