import Foundation
@testable import HeraldCore
import Testing

/// The engine's decisions as tables: events in, actions out, a clock that moves only when the
/// test says. No tasks, no sockets, no sleeps.
@Suite("Dispatch machine")
struct DispatchMachineTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    /// A machine and its clock, with the bookkeeping a driver would do.
    struct Run {
        var machine: DispatchMachine
        var now = DispatchMachineTests.t0

        init(_ lanes: [LaneSettings] = [LaneSettings(sink: "slack")]) {
            machine = DispatchMachine(lanes: lanes, now: DispatchMachineTests.t0, random: { $0.upperBound })
        }

        mutating func on(_ input: DispatchMachine.Input) -> [DispatchMachine.Action] {
            machine.handle(input, now: now)
        }

        mutating func advance(_ seconds: Double) { now = now.addingTimeInterval(seconds) }

        /// Started, with the first look answered "nothing pending".
        mutating func started() {
            _ = on(.started)
            for sink in machine.laneNames.sorted() { _ = on(.claimed(sink: sink, batch: ClaimBatch())) }
        }

        struct NoSlot: Error {}

        mutating func mustFresh(_ id: String, sink: String = "slack", expiresIn: Double = 600) throws -> (ClaimedDelivery, [DispatchMachine.Action]) {
            guard let result = fresh(id, sink: sink, expiresIn: expiresIn) else { throw NoSlot() }
            return result
        }

        /// A fresh delivery reserved and stored claimed; returns the actions its arrival causes.
        mutating func fresh(_ id: String, sink: String = "slack", expiresIn: Double = 600) -> (ClaimedDelivery, [DispatchMachine.Action])? {
            guard let lease = machine.reserve(sink: sink, now: now).lease else { return nil }
            let claimed = DispatchMachineTests.claimed(id, sink: sink, at: now, leaseUntil: now.adding(lease), expiresIn: expiresIn)
            return (claimed, on(.freshClaimed([claimed])))
        }
    }

    static func claimed(_ id: String, sink: String = "slack", attempts: Int = 1, at: Date = t0, leaseUntil: Date? = nil, expiresIn: Double = 600) -> ClaimedDelivery {
        let event = Event(id: "evt_" + id, source: "twilio", sourceID: nil, from: "+15550001111", to: nil, body: "code 123456", otp: "123456", receivedAt: at)
        let delivery = Delivery(id: id, eventID: event.id, sink: sink, route: "all", app: nil, state: .inFlight, attempts: attempts,
                                nextAttemptAt: at, expiresAt: at.addingTimeInterval(expiresIn), leaseUntil: leaseUntil ?? at.addingTimeInterval(30), createdAt: at)
        return ClaimedDelivery(delivery: delivery, event: event)
    }

    static func sends(_ actions: [DispatchMachine.Action]) -> [String] {
        actions.compactMap { if case .send(let c, _) = $0 { c.delivery.id } else { nil } }
    }

    static func claims(_ actions: [DispatchMachine.Action]) -> [String: Int] {
        var result: [String: Int] = [:]
        for case .claim(let sink, let limit, _) in actions { result[sink] = limit }
        return result
    }

    static func timers(_ actions: [DispatchMachine.Action]) -> [Date] {
        actions.compactMap { if case .armTimer(let at) = $0 { at } else { nil } }
    }

    // MARK: Start-up

    @Test func nothingIsClaimedOrReservedBeforeStartUpRecovery() {
        var run = Run()
        #expect(run.on(.workStored(sinks: ["slack"])) == [])
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease == nil, "recovery would return a fresh claim to pending under a worker")
        #expect(run.on(.started) == [.failOrphans(keeping: ["slack"]), .claim(sink: "slack", limit: 8, leaseFor: .seconds(30))])
    }

    /// Defect 4: a lane added by a reload during recovery used to be run by two loops.
    @Test func aLaneAddedWhileStartingIsClaimedExactlyOnce() {
        var run = Run()
        #expect(run.on(.reconfigured([LaneSettings(sink: "slack"), LaneSettings(sink: "audit", concurrency: 2)])) == [])
        let actions = run.on(.started)
        #expect(Self.claims(actions) == ["slack": 8, "audit": 4])
        #expect(actions.filter { if case .claim = $0 { true } else { false } }.count == 2)
        #expect(run.on(.workStored(sinks: ["audit"])) == [], "a claim is already on its way")
    }

    /// Defect 6: the backlog lives in the store; the machine holds one plan per lane, so a start
    /// with any number of pending deliveries costs a claim per batch and no memory per delivery.
    @Test func aBacklogIsClaimedInBatchesWithoutBeingHeldInMemory() {
        var run = Run([LaneSettings(sink: "slack", concurrency: 4)])
        var backlog = (0..<1000).map { "dlv_\($0)" }
        var queue: [DispatchMachine.Input] = [.started]
        var sent: [String] = []
        var claims = 0
        // A driver that answers every action at once, in order.
        while !queue.isEmpty {
            for action in run.on(queue.removeFirst()) {
                switch action {
                case .claim(let sink, let limit, _):
                    claims += 1
                    let batch = backlog.prefix(limit).map { Self.claimed($0, at: run.now) }
                    backlog.removeFirst(batch.count)
                    queue.append(.claimed(sink: sink, batch: ClaimBatch(claimed: batch, nextDueIn: backlog.isEmpty ? nil : .zero)))
                case .send(let claimed, _):
                    sent.append(claimed.delivery.id)
                    queue.append(.attemptFinished(claimed, outcome: .delivered(), startedAt: run.now, duration: .zero))
                case .complete(let claimed, _, _, let retryAt):
                    queue.append(.written(sink: claimed.delivery.sink, retryAt: retryAt))
                default:
                    break
                }
            }
            #expect(run.machine.timerCount <= 1, "no timetable entry per delivery")
        }
        #expect(sent.count == 1000)
        #expect(Set(sent).count == 1000, "each sent once")
        #expect(claims <= 600, "claims come in batches: \(claims) for 1000 deliveries")
        #expect(run.machine.outstanding == 0)
    }

    /// A busy lane holds up to twice its concurrency (running or ready), so a slot that frees
    /// finds the next delivery waiting; it claims more only once half its room is free.
    @Test func aBusyLaneKeepsWorkReadyAndClaimsInBatches() {
        var run = Run([LaneSettings(sink: "slack", concurrency: 16)])
        #expect(Self.claims(run.on(.started)) == ["slack": 32])
        let batch = (0..<32).map { Self.claimed("dlv_\($0)", at: run.now) }
        let started = run.on(.claimed(sink: "slack", batch: ClaimBatch(claimed: batch, nextDueIn: .zero)))
        #expect(Self.sends(started).count == 16, "sixteen run, sixteen wait")
        var claims: [[String: Int]] = []
        var sent: [String] = []
        for claimed in batch.prefix(8) {
            let actions = run.on(.attemptFinished(claimed, outcome: .delivered(), startedAt: run.now, duration: .zero))
            sent += Self.sends(actions)
            claims.append(Self.claims(actions))
        }
        #expect(sent == (16..<24).map { "dlv_\($0)" }, "each freed slot starts the next ready delivery at once")
        #expect(claims == Array(repeating: [:], count: 7) + [["slack": 8]], "one claim for eight, not eight claims")
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease == nil, "the claim holds the room")
    }

    // MARK: The fast path

    @Test func aFreshDeliveryStartsAtOnceWithinTheConcurrency() throws {
        var run = Run([LaneSettings(sink: "slack", concurrency: 2)])
        run.started()
        let (a, first) = try run.mustFresh("dlv_a")
        #expect(first == [.send(a, timeout: .seconds(10))])
        #expect(run.fresh("dlv_b").map { Self.sends($0.1) } == ["dlv_b"])
        #expect(run.fresh("dlv_c").map { Self.sends($0.1) } == [], "both slots run: dlv_c waits, claimed")
        #expect(run.fresh("dlv_d") != nil)
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease == nil, "twice the concurrency is held: the next one is stored pending")
        let finished = run.on(.attemptFinished(a, outcome: .delivered(detail: "HTTP 200", receipt: "m-1"), startedAt: run.now, duration: .milliseconds(80)))
        #expect(Self.sends(finished) == ["dlv_c"])
        guard case .complete(_, let attempt, let result, nil) = finished.first else { Issue.record("no write: \(finished)"); return }
        #expect(result == DeliveryResult(next: .delivered, receipt: "m-1"))
        #expect(attempt == DeliveryAttempt(deliveryID: "dlv_a", number: 1, startedAt: run.now, duration: .milliseconds(80), outcome: "delivered", detail: "HTTP 200"))
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease != nil)
    }

    @Test func workStoredBehindABusyLaneIsClaimedAheadAndStartsWhenASlotFrees() throws {
        var run = Run([LaneSettings(sink: "slack", concurrency: 1)])
        run.started()
        let (a, _) = try run.mustFresh("dlv_a")
        #expect(run.on(.workStored(sinks: ["slack"])) == [.claim(sink: "slack", limit: 1, leaseFor: .seconds(30))], "claimed ahead while dlv_a runs")
        let b = Self.claimed("dlv_b", at: run.now)
        #expect(Self.sends(run.on(.claimed(sink: "slack", batch: ClaimBatch(claimed: [b])))).isEmpty, "no free slot yet")
        let actions = run.on(.attemptFinished(a, outcome: .delivered(), startedAt: run.now, duration: .zero))
        #expect(Self.sends(actions) == ["dlv_b"], "the next one starts without a round trip to the store")
    }

    /// Defect 2: a delivery whose lease is nearly over when its attempt would start could be
    /// handed to someone else by the sweep mid-attempt, and sent twice.
    @Test(arguments: [(4.999, false), (5.0, true), (20.0, true)])
    func anAttemptStartsOnlyWithLeaseForTheTimeoutPlusAMargin(_ spare: Double, _ starts: Bool) throws {
        var run = Run([LaneSettings(sink: "slack", timeout: .seconds(10))])
        run.started()
        let lease = run.machine.reserve(sink: "slack", now: run.now).lease
        try #require(lease != nil)
        let claimed = Self.claimed("dlv_a", at: run.now, leaseUntil: run.now.addingTimeInterval(10 + spare))
        let actions = run.on(.freshClaimed([claimed]))
        if starts {
            #expect(Self.sends(actions) == ["dlv_a"])
        } else {
            #expect(actions.first == .release(claimed, reason: "too little of its lease was left to start"))
            #expect(Self.claims(actions) == ["slack": 8], "the lane claims it again with a fresh lease")
        }
    }

    @Test(arguments: [(Duration.seconds(10), Duration.seconds(30)), (.seconds(25), .seconds(35)), (.seconds(120), .seconds(130))])
    func claimsLeaseLongerThanAnAttemptCanTake(_ timeout: Duration, _ lease: Duration) {
        var run = Run([LaneSettings(sink: "slack", timeout: timeout)])
        #expect(run.on(.started).contains(.claim(sink: "slack", limit: 8, leaseFor: lease)))
        #expect(run.machine.settings(forSink: "slack")?.mayStart(leaseUntil: run.now.adding(lease), now: run.now) == true)
    }

    @Test func aFreshDeliveryPastItsExpiryExpiresUnsent() throws {
        var run = Run()
        run.started()
        let (claimed, actions) = try run.mustFresh("dlv_a", expiresIn: 0)
        #expect(actions == [.complete(
            claimed, attempt: DeliveryAttempt(deliveryID: "dlv_a", number: 1, startedAt: run.now, duration: .zero, outcome: "expired", detail: "expired before it could be sent"),
            result: DeliveryResult(next: .expired, error: "expired before it could be sent"), retryAt: nil
        )])
    }

    /// A delivery tried before (its sink refused the connection) and claimed again too late keeps
    /// the error that says why it never arrived: the result carries none, the attempt row says
    /// it expired before its next attempt.
    @Test func aRetriedDeliveryPastItsExpiryKeepsItsLastError() {
        var run = Run()
        run.started()
        var claimed = Self.claimed("dlv_a", attempts: 3, at: run.now, expiresIn: 0)
        claimed.delivery.lastError = "connection refused"
        let actions = run.on(.claimed(sink: "slack", batch: ClaimBatch(claimed: [claimed])))
        #expect(actions.contains(.complete(
            claimed, attempt: DeliveryAttempt(deliveryID: "dlv_a", number: 3, startedAt: run.now, duration: .zero, outcome: "expired", detail: "expired before its next attempt"),
            result: DeliveryResult(next: .expired, error: nil), retryAt: nil
        )), "\(actions)")
        #expect(Self.sends(actions).isEmpty)
    }

    @Test func reservationsOfUnstoredDeliveriesAreGivenBack() throws {
        var run = Run([LaneSettings(sink: "slack", concurrency: 1)])
        run.started()
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease != nil)
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease != nil, "room for twice the concurrency")
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease == nil)
        _ = run.on(.reservationsCancelled(["slack"]))
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease != nil)
    }

    // MARK: Outcomes

    struct OutcomeRow: Sendable, CustomTestStringConvertible {
        var name: String
        var outcome: DeliveryOutcome
        var attempts = 1
        var maxAttempts = 3
        var expiresIn: Double = 600
        var result: DeliveryResult
        var retryAt: Double?
        var testDescription: String { name }
    }

    static let outcomeRows: [OutcomeRow] = [
        OutcomeRow(name: "delivered keeps the receipt", outcome: .delivered(detail: "Slack: ok", receipt: "1712.0001"), result: DeliveryResult(next: .delivered, receipt: "1712.0001")),
        OutcomeRow(name: "skipped", outcome: .skipped(reason: "loop guard"), result: DeliveryResult(next: .skipped, error: "loop guard")),
        OutcomeRow(name: "permanent", outcome: .permanent(reason: "HTTP 400: invalid_payload"), result: DeliveryResult(next: .failed, error: "HTTP 400: invalid_payload")),
        OutcomeRow(name: "retry after attempt 1 waits the initial backoff", outcome: .retry(reason: "HTTP 500"),
                   result: DeliveryResult(next: .pending, retryIn: .seconds(1), error: "HTTP 500"), retryAt: 1),
        OutcomeRow(name: "retry after attempt 2 waits up to twice that", outcome: .retry(reason: "HTTP 502"), attempts: 2,
                   result: DeliveryResult(next: .pending, retryIn: .seconds(2), error: "HTTP 502"), retryAt: 2),
        OutcomeRow(name: "Retry-After wins over the backoff", outcome: .retry(after: .seconds(30), reason: "HTTP 429"),
                   result: DeliveryResult(next: .pending, retryIn: .seconds(30), error: "HTTP 429"), retryAt: 30),
        OutcomeRow(name: "max_attempts gives up", outcome: .retry(reason: "HTTP 500"), attempts: 3,
                   result: DeliveryResult(next: .failed, error: "gave up after 3 attempts: HTTP 500")),
        OutcomeRow(name: "a retry past the expiry expires", outcome: .retry(after: .seconds(45), reason: "HTTP 503"), expiresIn: 40,
                   result: DeliveryResult(next: .expired, error: "expired while retrying: HTTP 503")),
        OutcomeRow(name: "a retry due exactly at the expiry expires", outcome: .retry(reason: "HTTP 500"), expiresIn: 1,
                   result: DeliveryResult(next: .expired, error: "expired while retrying: HTTP 500")),
    ]

    @Test(arguments: outcomeRows)
    func anOutcomeDecidesTheNextState(_ row: OutcomeRow) {
        var run = Run([LaneSettings(sink: "slack", retry: RetryPolicy(maxAttempts: row.maxAttempts, initialBackoff: .seconds(1), maxBackoff: .seconds(60)))])
        _ = run.on(.started)
        let claimed = Self.claimed("dlv_a", attempts: row.attempts, at: run.now, expiresIn: row.expiresIn)
        _ = run.on(.claimed(sink: "slack", batch: ClaimBatch(claimed: [claimed])))
        let actions = run.on(.attemptFinished(claimed, outcome: row.outcome, startedAt: run.now, duration: .milliseconds(3)))
        let write = actions.first { if case .complete = $0 { true } else { false } }
        guard case .complete(_, let attempt, let result, let retryAt) = write else { Issue.record("no write in \(actions)"); return }
        #expect(result == row.result)
        #expect(retryAt == row.retryAt.map { run.now.addingTimeInterval($0) })
        #expect(attempt.number == row.attempts)
        #expect(attempt.outcome == row.outcome.label)
    }

    @Test func aRetryIsLookedForOnlyOnceItsResultIsWritten() {
        var run = Run()
        _ = run.on(.started)
        let claimed = Self.claimed("dlv_a", at: run.now)
        _ = run.on(.claimed(sink: "slack", batch: ClaimBatch(claimed: [claimed])))
        let finished = run.on(.attemptFinished(claimed, outcome: .retry(reason: "HTTP 500"), startedAt: run.now, duration: .zero))
        #expect(Self.timers(finished).isEmpty, "the store does not know yet that it is pending")
        let retryAt = run.now.addingTimeInterval(1)
        #expect(run.on(.written(sink: "slack", retryAt: retryAt)) == [.armTimer(at: retryAt)])
        run.advance(0.999)
        #expect(run.on(.timerFired) == [], "not before it is due")
        run.advance(0.001)
        #expect(run.on(.timerFired) == [.claim(sink: "slack", limit: 8, leaseFor: .seconds(30))])
    }

    @Test func aWriteThatFailedOrWasFencedSchedulesNothing() {
        var run = Run()
        _ = run.on(.started)
        let claimed = Self.claimed("dlv_a", at: run.now)
        _ = run.on(.claimed(sink: "slack", batch: ClaimBatch(claimed: [claimed])))
        _ = run.on(.attemptFinished(claimed, outcome: .retry(reason: "HTTP 500"), startedAt: run.now, duration: .zero))
        #expect(run.on(.written(sink: "slack", retryAt: nil)) == [])
        #expect(run.machine.outstanding == 0)
    }

    /// Rule 5: a 429 with `Retry-After` holds back every later delivery to the sink.
    @Test func retryAfterPausesTheWholeLane() {
        var run = Run()
        run.started()
        let claimed = Self.claimed("dlv_a", at: run.now)
        _ = run.machine.reserve(sink: "slack", now: run.now).lease
        _ = run.on(.freshClaimed([claimed]))
        _ = run.on(.attemptFinished(claimed, outcome: .retry(after: .seconds(20), reason: "HTTP 429"), startedAt: run.now, duration: .zero))
        let pauseEnds = run.now.addingTimeInterval(20)
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease == nil, "fresh deliveries wait too")
        #expect(run.on(.workStored(sinks: ["slack"])) == [.armTimer(at: pauseEnds)])
        run.advance(19)
        #expect(run.on(.timerFired) == [])
        run.advance(1)
        #expect(Self.claims(run.on(.timerFired)) == ["slack": 8])
    }

    @Test func aPausedLaneHoldsWhatIsReadyUntilThePauseEnds() throws {
        var run = Run([LaneSettings(sink: "slack", concurrency: 1)])
        run.started()
        let (a, _) = try run.mustFresh("dlv_a")
        let (b, waiting) = try run.mustFresh("dlv_b")
        #expect(Self.sends(waiting).isEmpty)
        let finished = run.on(.attemptFinished(a, outcome: .retry(after: .seconds(5), reason: "HTTP 429"), startedAt: run.now, duration: .zero))
        #expect(Self.sends(finished).isEmpty, "dlv_b waits out the pause")
        #expect(Self.timers(finished) == [run.now.addingTimeInterval(5)])
        run.advance(5)
        #expect(Self.sends(run.on(.timerFired)) == [b.delivery.id])
    }

    /// `Retry-After: 3600` for a code with a minute left pauses the sink for that minute, and what
    /// waits behind the pause expires at its own time, not when the pause ends.
    @Test func aPauseNeverOutlastsTheCodesItHoldsBack() throws {
        var run = Run([LaneSettings(sink: "slack", concurrency: 1)])
        run.started()
        let (a, _) = try run.mustFresh("dlv_a", expiresIn: 60)
        let (b, _) = try run.mustFresh("dlv_b", expiresIn: 20)
        let finished = run.on(.attemptFinished(a, outcome: .retry(after: .seconds(3600), reason: "HTTP 503"), startedAt: run.now, duration: .zero))
        #expect(Self.sends(finished).isEmpty)
        #expect(Self.timers(finished) == [run.now.addingTimeInterval(20)], "woken when dlv_b expires, not in an hour")
        run.advance(20)
        let expired = run.on(.timerFired)
        #expect(expired.contains { if case .complete(let c, _, let result, _) = $0 { c.delivery.id == b.delivery.id && result.next == .expired } else { false } },
                "\(expired)")
        #expect(run.machine.lanes["slack"]?.pausedUntil == a.delivery.expiresAt, "the pause ends with the code that asked for it")
    }

    /// A lane waiting for a retry due later keeps one wake-up, however many events pass meanwhile.
    @Test func aBusyLaneWithALaterRetryKeepsOneWakeUp() throws {
        var run = Run([LaneSettings(sink: "slack", concurrency: 4)])
        _ = run.on(.started)
        _ = run.on(.claimed(sink: "slack", batch: ClaimBatch(nextDueIn: .seconds(120))))
        for i in 0..<1000 {
            let (claimed, _) = try run.mustFresh("dlv_\(i)")
            _ = run.on(.attemptFinished(claimed, outcome: .delivered(), startedAt: run.now, duration: .zero))
            _ = run.on(.written(sink: "slack", retryAt: nil))
        }
        #expect(run.machine.timerCount == 1)
        run.advance(120)
        #expect(Self.claims(run.on(.timerFired)) == ["slack": 8])
    }

    @Test func aRateLimitPacesClaimsAndReservations() {
        var run = Run([LaneSettings(sink: "slack", concurrency: 10, rateLimit: 1, burst: 2)])
        #expect(Self.claims(run.on(.started)) == ["slack": 2], "no more than the burst at once")
        let batch = [Self.claimed("dlv_a", at: run.now)]
        // One was due; the unused token comes back.
        _ = run.on(.claimed(sink: "slack", batch: ClaimBatch(claimed: batch, nextDueIn: nil)))
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease != nil, "the refunded token")
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease == nil, "the bucket is empty")
        #expect(run.on(.workStored(sinks: ["slack"])) == [.armTimer(at: run.now.addingTimeInterval(1))])
        run.advance(1)
        #expect(Self.claims(run.on(.timerFired)) == ["slack": 1])
    }

    @Test func theStoreSaysWhenToLookNext() {
        var run = Run()
        _ = run.on(.started)
        let actions = run.on(.claimed(sink: "slack", batch: ClaimBatch(expired: ["dlv_old"], nextDueIn: .seconds(90))))
        #expect(actions == [.expired(sink: "slack", ids: ["dlv_old"]), .armTimer(at: run.now.addingTimeInterval(90))])
        run.advance(90)
        #expect(Self.claims(run.on(.timerFired)) == ["slack": 8])
    }

    /// Work announced while a claim is on its way may have been stored after the claim read.
    @Test func workAnnouncedDuringAClaimIsLookedForAfterIt() {
        var run = Run()
        _ = run.on(.started)
        #expect(run.on(.workStored(sinks: ["slack"])) == [])
        #expect(Self.claims(run.on(.claimed(sink: "slack", batch: ClaimBatch()))) == ["slack": 8])
    }

    @Test func aClaimThatFailedIsTriedAgainInASecond() {
        var run = Run()
        _ = run.on(.started)
        #expect(run.on(.claimFailed(sink: "slack")) == [.armTimer(at: run.now.addingTimeInterval(1))])
        run.advance(1)
        #expect(Self.claims(run.on(.timerFired)) == ["slack": 8])
    }

    @Test func aStaleTimerOnlyMakesTheLaneLookOnceMore() {
        var run = Run()
        _ = run.on(.started)
        _ = run.on(.claimed(sink: "slack", batch: ClaimBatch(nextDueIn: .seconds(60))))
        // Work due sooner arrives; the machine asks for an earlier wake-up.
        _ = run.on(.workStored(sinks: ["slack"]))
        _ = run.on(.claimed(sink: "slack", batch: ClaimBatch(nextDueIn: .seconds(60))))
        run.advance(60)
        let actions = run.on(.timerFired)
        #expect(Self.claims(actions) == ["slack": 8])
        _ = run.on(.claimed(sink: "slack", batch: ClaimBatch()))
        #expect(run.on(.timerFired) == [], "the older timer for the same time finds nothing to do")
    }

    // MARK: Reload

    /// Defect 3: right after a reload finished a lane, work for it used to be dropped and never
    /// queued again until a restart.
    @Test func aLaneRemovedAndAddedAgainLosesNothing() throws {
        var run = Run([LaneSettings(sink: "slack", concurrency: 1)])
        run.started()
        let (a, _) = try run.mustFresh("dlv_a")
        let removed = run.on(.reconfigured([]))
        #expect(removed == [.failOrphans(keeping: [])])
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease == nil)
        #expect(run.on(.reconfigured([LaneSettings(sink: "slack", concurrency: 1)])) == [.failOrphans(keeping: ["slack"])])
        #expect(Self.claims(run.on(.workStored(sinks: ["slack"]))) == ["slack": 1], "the work stored meanwhile is claimed")
        let finished = run.on(.attemptFinished(a, outcome: .delivered(), startedAt: run.now, duration: .zero))
        #expect(finished.count == 1, "the attempt's result is written")
    }

    @Test func aRemovedLaneFinishesItsAttemptThenGoes() throws {
        var run = Run([LaneSettings(sink: "slack"), LaneSettings(sink: "audit")])
        run.started()
        let (a, _) = try run.mustFresh("dlv_a")
        #expect(run.on(.reconfigured([LaneSettings(sink: "audit")])) == [.failOrphans(keeping: ["audit"])])
        #expect(run.machine.laneNames == ["audit"])
        let finished = run.on(.attemptFinished(a, outcome: .delivered(), startedAt: run.now, duration: .zero))
        #expect(finished.count == 1, "its result is written")
        #expect(run.machine.lanes["slack"] == nil)
        #expect(run.on(.workStored(sinks: ["slack"])) == [])
    }

    @Test func aClaimAnsweredAfterItsLaneWasRemovedIsGivenBack() {
        var run = Run()
        _ = run.on(.started)
        _ = run.on(.reconfigured([]))
        let claimed = Self.claimed("dlv_a", at: run.now)
        #expect(run.on(.claimed(sink: "slack", batch: ClaimBatch(claimed: [claimed]))) == [.release(claimed, reason: "sink removed")])
        _ = run.on(.written(sink: "slack", retryAt: nil))
        #expect(run.machine.outstanding == 0)
    }

    @Test func aReloadChangesSettingsFromTheNextAttempt() throws {
        var run = Run([LaneSettings(sink: "slack", retry: RetryPolicy(maxAttempts: 5))])
        run.started()
        let (a, _) = try run.mustFresh("dlv_a")
        _ = run.on(.reconfigured([LaneSettings(sink: "slack", retry: RetryPolicy(maxAttempts: 1), timeout: .seconds(40))]))
        let actions = run.on(.attemptFinished(a, outcome: .retry(reason: "HTTP 500"), startedAt: run.now, duration: .zero))
        guard case .complete(_, _, let result, _) = actions.first else { Issue.record("\(actions)"); return }
        #expect(result.next == .failed, "the new max_attempts applies")
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease == .seconds(50), "the new timeout's lease")
    }

    @Test func aNewRateLimitStartsAFreshBucket() {
        var run = Run([LaneSettings(sink: "slack", rateLimit: 1, burst: 1)])
        run.started()
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease != nil)
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease == nil)
        _ = run.on(.reconfigured([LaneSettings(sink: "slack", rateLimit: 10, burst: 3)]))
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease != nil)
    }

    // MARK: Shutdown

    @Test func shutdownLetsAttemptsFinishAndGivesBackWhatDidNotStart() throws {
        var run = Run([LaneSettings(sink: "slack", concurrency: 2)])
        _ = run.on(.started)  // a claim is on its way
        let running = Self.claimed("dlv_run", at: run.now)
        #expect(run.on(.claimed(sink: "slack", batch: ClaimBatch(claimed: [running], nextDueIn: .zero))).count >= 1)
        #expect(run.on(.shutdown) == [])
        #expect(run.machine.reserve(sink: "slack", now: run.now).lease == nil)
        #expect(run.on(.workStored(sinks: ["slack"])) == [], "nothing new is claimed")
        let late = Self.claimed("dlv_late", at: run.now)
        #expect(run.on(.claimed(sink: "slack", batch: ClaimBatch(claimed: [late]))) == [.release(late, reason: "shutting down")])
        let finished = run.on(.attemptFinished(running, outcome: .delivered(), startedAt: run.now, duration: .zero))
        #expect(finished.count == 1, "the result is still written")
        #expect(run.on(.written(sink: "slack", retryAt: nil)) == [])
        #expect(run.on(.written(sink: "slack", retryAt: nil)) == [.stopped], "stopped once nothing is left")
        #expect(run.machine.phase == .stopped)
    }

    @Test func shutdownGivesBackWhatWasReady() throws {
        var run = Run([LaneSettings(sink: "slack", concurrency: 1)])
        run.started()
        let (a, _) = try run.mustFresh("dlv_a")
        let (b, _) = try run.mustFresh("dlv_b")
        #expect(run.on(.shutdown) == [.release(b, reason: "shutting down")])
        _ = run.on(.written(sink: "slack", retryAt: nil))
        _ = run.on(.attemptFinished(a, outcome: .delivered(), startedAt: run.now, duration: .zero))
        #expect(run.on(.written(sink: "slack", retryAt: nil)) == [.stopped])
    }

    @Test func shutdownWithNothingUnderWayStopsAtOnce() {
        var run = Run()
        run.started()
        #expect(run.on(.shutdown) == [.stopped])
    }

    @Test func shutdownBeforeStartUpStopsWithoutClaiming() {
        var run = Run()
        #expect(run.on(.shutdown) == [.stopped])
        #expect(run.on(.started) == [])
    }

    @Test func aFreshDeliveryArrivingDuringShutdownIsGivenBack() throws {
        var run = Run()
        run.started()
        let lease = run.machine.reserve(sink: "slack", now: run.now).lease
        try #require(lease != nil)
        #expect(run.on(.shutdown) == [], "the reservation is outstanding")
        let claimed = Self.claimed("dlv_a", at: run.now)
        #expect(run.on(.freshClaimed([claimed])) == [.release(claimed, reason: "shutting down")])
        #expect(run.on(.written(sink: "slack", retryAt: nil)) == [.stopped])
    }

    // MARK: Intake pace (server.limits)

    /// A full lane is worth waiting for only while its receiver delivers; a failing, paused or
    /// rate-limited one sends its deliveries to the store at once.
    @Test func aFullLaneSaysFullOnlyWhileItsReceiverDelivers() throws {
        var run = Run([LaneSettings(sink: "slack", concurrency: 1)])
        run.started()
        #expect(run.machine.reserve(sink: "slack", now: run.now) == .start(lease: .seconds(30)))
        let (a, _) = try run.mustFresh("dlv_a")
        _ = run.machine.reserve(sink: "slack", now: run.now)
        #expect(run.machine.admission(sink: "slack", now: run.now) == .pending, "nothing delivered yet: no evidence the wait would end soon")
        _ = run.on(.attemptFinished(a, outcome: .delivered(), startedAt: run.now, duration: .milliseconds(5)))
        let (b, _) = try run.mustFresh("dlv_b")
        _ = run.machine.reserve(sink: "slack", now: run.now)
        #expect(run.machine.reserve(sink: "slack", now: run.now) == .full, "its last attempt delivered: a slot frees soon")
        _ = run.on(.attemptFinished(b, outcome: .retry(reason: "HTTP 500"), startedAt: run.now, duration: .milliseconds(5)))
        _ = run.machine.reserve(sink: "slack", now: run.now)
        #expect(run.machine.admission(sink: "slack", now: run.now) == .pending, "the last attempt failed: not worth a webhook's wait")
    }

    @Test func aPausedOrTokenlessLaneSendsFreshWorkToTheStore() throws {
        var paused = Run([LaneSettings(sink: "slack", concurrency: 1)])
        paused.started()
        let (a, _) = try paused.mustFresh("dlv_a")
        _ = paused.on(.attemptFinished(a, outcome: .retry(after: .seconds(30), reason: "HTTP 429"), startedAt: paused.now, duration: .milliseconds(5)))
        #expect(paused.machine.reserve(sink: "slack", now: paused.now) == .pending)

        var limited = Run([LaneSettings(sink: "slack", concurrency: 8, rateLimit: 1, burst: 1)])
        limited.started()
        #expect(limited.machine.reserve(sink: "slack", now: limited.now).lease != nil)
        #expect(limited.machine.reserve(sink: "slack", now: limited.now) == .pending, "no token: waiting is the store's job")
    }

    /// What is queued ahead over the measured pace: concurrency / mean attempt time, capped by
    /// the rate limit, plus a `Retry-After` pause. No measurement, no estimate.
    @Test func theQueueWaitIsTheBacklogOverTheMeasuredPace() throws {
        var run = Run([LaneSettings(sink: "slack", concurrency: 2)])
        run.started()
        #expect(run.machine.queueWait(sink: "slack", now: run.now) == nil, "nothing measured yet")
        let (a, _) = try run.mustFresh("dlv_a")
        _ = run.on(.attemptFinished(a, outcome: .delivered(), startedAt: run.now, duration: .milliseconds(500)))
        _ = run.on(.written(sink: "slack", retryAt: nil))
        #expect(run.machine.queueWait(sink: "slack", now: run.now) == .zero)
        _ = run.on(.backlogCounted(["slack": 10]))
        // 10 ahead at 2 / 0.5 s = 4 per second.
        #expect(run.machine.queueWait(sink: "slack", now: run.now) == .milliseconds(2500))
        _ = run.on(.workStored(sinks: ["slack"]))
        #expect(run.machine.queueWait(sink: "slack", now: run.now)?.seconds ?? 0 >= 2.5, "what was stored since the count is ahead too")
        _ = run.on(.claimed(sink: "slack", batch: ClaimBatch(claimed: (0..<3).map { Self.claimed("dlv_c\($0)", at: run.now) })))
        _ = run.on(.backlogCounted(["slack": 4]))
        // 4 in the store + what is ready and not started (3 claimed, 2 start at once: 1 ready).
        #expect(run.machine.queueWait(sink: "slack", now: run.now) == .milliseconds(1250))

        var limited = Run([LaneSettings(sink: "slack", concurrency: 32, rateLimit: 1, burst: 1)])
        limited.started()
        let (b, _) = try limited.mustFresh("dlv_b")
        _ = limited.on(.attemptFinished(b, outcome: .delivered(), startedAt: limited.now, duration: .milliseconds(10)))
        _ = limited.on(.backlogCounted(["slack": 30]))
        #expect(limited.machine.queueWait(sink: "slack", now: limited.now) == .seconds(30), "one a second, whatever the concurrency")
    }
}
