import Foundation
import DequeModule
import HeapModule

/// Every decision of the delivery engine, as a value: events go in (`handle`), actions come out,
/// and the `Dispatcher` performs them. No I/O, no clock of its own, no tasks, so tables of events
/// with a manual clock test it completely.
///
/// The store is the timetable. Each sink has a lane that knows only when the store may next have
/// due work for it (`dueAt`): the lane claims as many due deliveries as it has room for (twice its
/// concurrency, tokens of its rate limit, no `Retry-After` pause), and each claim answers when the
/// next one is due. Only that bounded room is held in memory, so a backlog of any size costs one
/// query per batch, and a shared store behaves the same as a private one.
///
/// The rules, in the order they apply:
/// 1. Nothing is claimed before start-up recovery is done (`started`) or after `shutdown`.
/// 2. A fresh delivery may be stored already claimed only if its lane has room for it (`reserve`):
///    a token, and fewer than twice its concurrency held (running or ready to run). It starts
///    without another write, at once or as soon as a slot frees; claims from the store fill the
///    same bounded room, so a busy lane never idles waiting for a claim to come back.
/// 3. An attempt starts only if its lease outlasts the sink's timeout plus a margin, and only
///    before the delivery's expiry; otherwise the claim is given back, or the delivery expires.
///    A lane paused by `Retry-After` holds what it has ready until the pause ends.
/// 4. An outcome decides the next state (`DeliveryRules`); a retry is due at the policy's time,
///    and the lane looks for it once the result is written.
/// 5. `Retry-After` pauses the whole lane until then.
/// 6. A reload changes a lane's settings from its next attempt; a removed lane finishes what it
///    runs, claims nothing more, and its pending deliveries fail with "sink removed".
/// 7. Shutdown claims nothing more, gives back claims not yet started, lets attempts under way
///    finish, and says `stopped` when nothing is left.
public struct DispatchMachine: Sendable {
    public enum Input: Sendable {
        /// Start-up recovery is done: lanes may claim.
        case started
        /// Pending work was stored for these sinks (a fresh delivery that could not start at once,
        /// an admin retry, a notification from another process).
        case workStored(sinks: Set<String>)
        /// Work stored for `sink` that is due only at `at` (a retraction, due when its code
        /// expires): the lane looks then.
        case workDue(sink: String, at: Date)
        /// The periodic sweep: every lane looks in the store.
        case wakeAll
        case claimed(sink: String, batch: ClaimBatch)
        case claimFailed(sink: String)
        /// Fresh deliveries reserved with `reserve` and stored claimed.
        case freshClaimed([ClaimedDelivery])
        /// Reservations whose deliveries were not stored (a duplicate, or the write failed); one
        /// sink name per reservation.
        case reservationsCancelled([String])
        case attemptFinished(ClaimedDelivery, outcome: DeliveryOutcome, startedAt: Date, duration: Duration)
        /// A `complete` or `release` was written (or failed); `retryAt` echoes the action's.
        case written(sink: String, retryAt: Date?)
        case timerFired
        case reconfigured([LaneSettings])
        /// The sweep counted what the store holds pending per sink (the backlog estimate's truth).
        case backlogCounted([String: Int])
        case shutdown
    }

    /// What `reserve` says of a fresh delivery.
    public enum Reservation: Sendable, Equatable {
        /// Store it claimed with this lease; it starts as soon as it is stored.
        case start(lease: Duration)
        /// Its lane is healthy but full: a slot frees soon, so the intake may wait for one.
        case full
        /// Store it pending (the lane is paused, out of tokens, failing, or not running).
        case pending

        public var lease: Duration? {
            if case .start(let lease) = self { return lease }
            return nil
        }
    }

    public enum Action: Sendable, Equatable {
        case claim(sink: String, limit: Int, leaseFor: Duration)
        case send(ClaimedDelivery, timeout: Duration)
        /// Write the attempt and its result (fenced); feed back `written` with `retryAt`.
        case complete(ClaimedDelivery, attempt: DeliveryAttempt, result: DeliveryResult, retryAt: Date?)
        /// Give a claim back without an attempt; feed back `written`.
        case release(ClaimedDelivery, reason: String)
        /// Deliveries the store expired while claiming (for metrics and the log).
        case expired(sink: String, ids: [String])
        /// Fail pending deliveries of sinks outside this set.
        case failOrphans(keeping: Set<String>)
        /// Feed back `timerFired` at this time.
        case armTimer(at: Date)
        /// Shutdown is complete: nothing runs, nothing is written any more.
        case stopped
    }

    public enum Phase: Sendable, Equatable {
        case starting, running, stopping, stopped
    }

    struct Lane: Sendable {
        var settings: LaneSettings
        var bucket: TokenBucket?
        var pausedUntil: Date?
        /// Attempts under way.
        var running = 0
        /// Claimed and waiting for a slot (bounded: see `room`).
        var ready: Deque<ClaimedDelivery> = []
        /// Fresh deliveries reserved and not yet stored.
        var reserved = 0
        /// Deliveries asked of the store by a claim on its way (0: none).
        var claiming = 0
        /// When the store may next have due work for this sink; nil: none known.
        var dueAt: Date?
        /// Work announced while a claim was on its way, which its answer may not include.
        var hintWhileClaiming: Date?
        /// Removed by a reload: finishes what it runs, then goes.
        var retiring = false
        /// The lane's own wake-up in `timers` (one at a time, so events do not pile up entries).
        var wakeAt: Date?
        /// Pending deliveries the store holds for this sink, as far as this process knows: counted
        /// by the sweep, moved by what is stored and claimed in between.
        var backlog = 0
        /// How long an attempt takes, smoothed (seconds); nil until one has finished.
        var meanAttempt: Double?
        /// Whether the last attempt delivered: a full lane that fails or hangs, or one that has
        /// not delivered anything yet, is not worth a webhook's wait.
        var healthy = false

        init(settings: LaneSettings, now: Date) {
            self.settings = settings
            self.bucket = settings.rateLimit.map { TokenBucket(rate: $0, burst: settings.burst, now: now) }
        }

        /// Deliveries a lane holds at most: twice its concurrency, so a slot that frees always
        /// finds the next delivery claimed already.
        var capacity: Int { settings.concurrency * 2 }
        /// Room for more held deliveries.
        var room: Int { capacity - running - ready.count - reserved - claiming }
        var held: Int { running + ready.count + reserved + claiming }
    }

    struct Timer: Comparable, Sendable {
        var at: Date
        var sink: String
        static func < (a: Timer, b: Timer) -> Bool { (a.at, a.sink) < (b.at, b.sink) }
    }

    public private(set) var phase: Phase = .starting
    var lanes: [String: Lane] = [:]
    /// When lanes want to look again (a retry due, a pause or a token wait over). Entries are not
    /// removed when a lane's plans change: a stale one only makes the lane look once more.
    var timers = Heap<Timer>()
    /// The earliest time the driver has been asked to wake us.
    var armedAt: Date?
    /// `complete` and `release` writes under way.
    var writes = 0
    let random: @Sendable (ClosedRange<Double>) -> Double

    public init(lanes: [LaneSettings], now: Date, random: @escaping @Sendable (ClosedRange<Double>) -> Double = { Double.random(in: $0) }) {
        self.random = random
        for settings in lanes { self.lanes[settings.sink] = Lane(settings: settings, now: now) }
    }

    public var laneNames: Set<String> { Set(lanes.filter { !$0.value.retiring }.keys) }

    /// Claims, attempts and writes still under way.
    public var outstanding: Int { lanes.values.reduce(writes) { $0 + $1.held } }

    public func settings(forSink sink: String) -> LaneSettings? { lanes[sink]?.settings }

    /// Wake-up entries held (stale ones included): stays small whatever the backlog.
    var timerCount: Int { timers.count }

    // MARK: The fast path

    /// Rule 2: a slot (and a token) for a fresh delivery that will be stored claimed and started as
    /// soon as it is stored.
    public mutating func reserve(sink: String, now: Date) -> Reservation {
        let verdict = admission(sink: sink, now: now)
        guard case .start = verdict, var lane = lanes[sink] else { return verdict }
        if var bucket = lane.bucket {
            bucket.consume(1, now: now)
            lane.bucket = bucket
        }
        lane.reserved += 1
        lanes[sink] = lane
        return verdict
    }

    /// What `reserve` would say now, without reserving.
    public func admission(sink: String, now: Date) -> Reservation {
        guard phase == .running, let lane = lanes[sink], !lane.retiring else { return .pending }
        if let paused = lane.pausedUntil, paused > now { return .pending }
        if var bucket = lane.bucket, bucket.available(now: now) < 1 { return .pending }
        if lane.room > 0 { return .start(lease: lane.settings.lease) }
        return lane.healthy ? .full : .pending
    }

    /// How many webhooks waiting for `sink` may try again: its free room, or all of them
    /// (`Int.max`) when the lane is no longer worth waiting for.
    public func waiterRoom(sink: String, now: Date) -> Int {
        switch admission(sink: sink, now: now) {
        case .full: 0
        case .pending: .max
        case .start: lanes[sink].map { max(1, $0.room) } ?? .max
        }
    }

    /// How long a delivery stored pending for `sink` now would wait before its attempt could
    /// start: what is queued ahead of it over the lane's pace, plus any `Retry-After` pause. Nil
    /// while there is no evidence (no attempt has finished yet): no refusal without a measurement.
    public func queueWait(sink: String, now: Date) -> Duration? {
        guard let lane = lanes[sink], !lane.retiring, let mean = lane.meanAttempt else { return nil }
        var perSecond = Double(lane.settings.concurrency) / max(mean, 0.000_1)
        if let rate = lane.settings.rateLimit { perSecond = min(perSecond, rate) }
        let ahead = Double(lane.backlog + lane.ready.count + lane.reserved)
        var wait = ahead / perSecond
        if let paused = lane.pausedUntil, paused > now { wait += paused.timeIntervalSince(now) }
        return .milliseconds(Int64(min(wait, 1e9) * 1000))
    }

    // MARK: Events

    public mutating func handle(_ input: Input, now: Date) -> [Action] {
        var actions: [Action] = []
        switch input {
        case .started:
            guard phase == .starting else { break }
            phase = .running
            actions.append(.failOrphans(keeping: laneNames))
            for sink in lanes.keys.sorted() { look(sink, at: now, now: now, &actions) }

        case .workStored(let sinks):
            for sink in sinks { lanes[sink]?.backlog += 1 }
            for sink in sinks.sorted() { look(sink, at: now, now: now, &actions) }

        case .workDue(let sink, let at):
            look(sink, at: at, now: now, &actions)

        case .wakeAll:
            if phase == .running { actions.append(.failOrphans(keeping: laneNames)) }
            for sink in lanes.keys.sorted() { look(sink, at: now, now: now, &actions) }

        case .claimed(let sink, let batch):
            guard var lane = lanes[sink] else { break }
            let requested = lane.claiming
            lane.claiming = 0
            if requested > batch.claimed.count { lane.bucket?.refund(requested - batch.claimed.count) }
            // A full batch means more may be due now; otherwise the store said when to look again.
            let fromStore = batch.claimed.count >= requested ? now : batch.nextDueIn.map { now.adding($0) }
            lane.dueAt = earliest(fromStore, lane.hintWhileClaiming)
            lane.hintWhileClaiming = nil
            lane.backlog = max(0, lane.backlog - batch.claimed.count - batch.expired.count)
            if !batch.expired.isEmpty { actions.append(.expired(sink: sink, ids: batch.expired)) }
            lane.ready.append(contentsOf: batch.claimed)
            lanes[sink] = lane
            settle(sink, now: now, &actions)

        case .claimFailed(let sink):
            guard var lane = lanes[sink] else { break }
            lane.bucket?.refund(lane.claiming)
            lane.claiming = 0
            // The store did not answer: look again in a second.
            lane.dueAt = earliest(now.adding(.seconds(1)), lane.hintWhileClaiming)
            lane.hintWhileClaiming = nil
            lanes[sink] = lane
            settle(sink, now: now, &actions)

        case .freshClaimed(let list):
            for claimed in list {
                guard var lane = lanes[claimed.delivery.sink] else {
                    writes += 1
                    actions.append(.release(claimed, reason: "sink removed"))
                    continue
                }
                lane.reserved -= 1
                lane.ready.append(claimed)
                lanes[claimed.delivery.sink] = lane
            }
            for sink in Set(list.map(\.delivery.sink)).sorted() { settle(sink, now: now, &actions) }

        case .reservationsCancelled(let sinks):
            for sink in sinks {
                lanes[sink]?.reserved -= 1
                lanes[sink]?.bucket?.refund(1)
                settle(sink, now: now, &actions)
            }

        case .attemptFinished(let claimed, let outcome, let startedAt, let duration):
            let delivery = claimed.delivery
            guard var lane = lanes[delivery.sink] else { break }
            lane.running -= 1
            if outcome.attempted {
                let seconds = duration.seconds
                lane.meanAttempt = lane.meanAttempt.map { $0 * 0.9 + seconds * 0.1 } ?? seconds
                lane.healthy = outcome.isDelivered
            }
            let decision = DeliveryRules.decide(outcome, delivery: delivery, policy: lane.settings.retry, now: now, random: random)
            if let pause = decision.pauseUntil {
                // Rule 5: the receiver asked the whole sink to wait.
                lane.pausedUntil = max(lane.pausedUntil ?? pause, pause)
            }
            lanes[delivery.sink] = lane
            let attempt = DeliveryAttempt(
                deliveryID: delivery.id, number: delivery.attempts, startedAt: startedAt, duration: duration,
                outcome: outcome.label, detail: outcome.detail
            )
            writes += 1
            actions.append(.complete(claimed, attempt: attempt, result: decision.result, retryAt: decision.retryAt))
            settle(delivery.sink, now: now, &actions)

        case .written(let sink, let retryAt):
            writes -= 1
            if let retryAt {
                lanes[sink]?.backlog += 1
                look(sink, at: retryAt, now: now, &actions)
            }

        case .backlogCounted(let counts):
            for sink in lanes.keys { lanes[sink]?.backlog = counts[sink] ?? 0 }

        case .timerFired:
            if let armed = armedAt, armed <= now { armedAt = nil }
            var due: Set<String> = []
            while let top = timers.min, top.at <= now {
                timers.removeMin()
                due.insert(top.sink)
            }
            for sink in due.sorted() { settle(sink, now: now, &actions) }

        case .reconfigured(let settings):
            reconfigure(settings, now: now, &actions)

        case .shutdown:
            if phase == .starting || phase == .running {
                phase = .stopping
                // What is ready but not started goes back to the store.
                for sink in lanes.keys.sorted() { startReady(sink, now: now, &actions) }
            }
        }
        finish(now: now, &actions)
        return actions
    }

    // MARK: Attempts

    /// Starts what is ready while slots are free (rule 3 for each); a lane that is stopping,
    /// removed or paused does not start.
    private mutating func startReady(_ sink: String, now: Date, _ actions: inout [Action]) {
        guard var lane = lanes[sink] else { return }
        defer { lanes[sink] = lane }
        if phase != .running || lane.retiring {
            while let claimed = lane.ready.popFirst() {
                writes += 1
                actions.append(.release(claimed, reason: phase != .running ? "shutting down" : "sink removed"))
            }
            return
        }
        if let paused = lane.pausedUntil, paused > now {
            // What is held back expires at its own time, not when the pause ends.
            while let index = lane.ready.firstIndex(where: { now >= $0.delivery.expiresAt }) {
                writes += 1
                actions.append(Self.expireUnsent(lane.ready.remove(at: index), now: now))
            }
            if let first = lane.ready.map(\.delivery.expiresAt).min() { wake(&lane, sink, at: min(paused, first), now: now) }
            return
        }
        while lane.running < lane.settings.concurrency, let claimed = lane.ready.popFirst() {
            let delivery = claimed.delivery
            if now >= delivery.expiresAt {
                writes += 1
                actions.append(Self.expireUnsent(claimed, now: now))
            } else if !lane.settings.mayStart(leaseUntil: delivery.leaseUntil, now: now) {
                // Too little lease left for a whole attempt: the sweep could hand it to someone
                // else mid-attempt. Give it back; the lane claims it again with a fresh lease.
                writes += 1
                actions.append(.release(claimed, reason: "too little of its lease was left to start"))
                lane.dueAt = earliest(lane.dueAt, now)
                if lane.claiming > 0 { lane.hintWhileClaiming = earliest(lane.hintWhileClaiming, now) }
            } else {
                lane.running += 1
                actions.append(.send(claimed, timeout: lane.settings.timeout))
            }
        }
    }

    /// The write for a claimed delivery whose code expired before this attempt started. One that
    /// was tried before keeps its last error (the result carries none): "connection refused" says
    /// why the code never arrived; "expired" alone would not.
    private static func expireUnsent(_ claimed: ClaimedDelivery, now: Date) -> Action {
        let tried = claimed.delivery.lastError != nil
        let attempt = DeliveryAttempt(deliveryID: claimed.delivery.id, number: claimed.delivery.attempts, startedAt: now, duration: .zero,
                                      outcome: "expired", detail: tried ? DeliveryRules.expiredBeforeRetry : DeliveryRules.expiredUnsent)
        return .complete(claimed, attempt: attempt, result: DeliveryResult(next: .expired, error: tried ? nil : DeliveryRules.expiredUnsent), retryAt: nil)
    }

    // MARK: Lanes

    /// The store may have work for `sink` from `at` on.
    private mutating func look(_ sink: String, at: Date, now: Date, _ actions: inout [Action]) {
        guard var lane = lanes[sink] else { return }
        lane.dueAt = earliest(lane.dueAt, at)
        if lane.claiming > 0 { lane.hintWhileClaiming = earliest(lane.hintWhileClaiming, at) }
        lanes[sink] = lane
        settle(sink, now: now, &actions)
    }

    /// Claims what the lane can start now, or sets a timer for when it can.
    private mutating func pump(_ sink: String, now: Date, _ actions: inout [Action]) {
        guard phase == .running, var lane = lanes[sink], !lane.retiring, lane.claiming == 0, let dueAt = lane.dueAt else { return }
        if dueAt > now {
            wake(&lane, sink, at: dueAt, now: now)
            lanes[sink] = lane
            return
        }
        var limit = lane.room
        // A busy lane claims in batches: one store write for half of its room rather than one
        // per finished attempt.
        guard limit > 0, lane.held == 0 || limit >= lane.settings.claimBatch else { return }  // a finishing attempt pumps again
        if let paused = lane.pausedUntil {
            if paused > now {
                wake(&lane, sink, at: paused, now: now)
                lanes[sink] = lane
                return
            }
            lane.pausedUntil = nil
        }
        if var bucket = lane.bucket {
            let available = bucket.available(now: now)
            guard available > 0 else {
                lane.bucket = bucket
                wake(&lane, sink, at: now.adding(bucket.waitForToken(now: now)), now: now)
                lanes[sink] = lane
                return
            }
            limit = min(limit, available)
            bucket.consume(limit, now: now)
            lane.bucket = bucket
        }
        lane.claiming = limit
        lane.hintWhileClaiming = nil
        lanes[sink] = lane
        actions.append(.claim(sink: sink, limit: limit, leaseFor: lane.settings.lease))
    }

    /// Sets the lane's wake-up at `at`, unless one at or before it is pending already.
    private mutating func wake(_ lane: inout Lane, _ sink: String, at: Date, now: Date) {
        if let pending = lane.wakeAt, pending > now, pending <= at { return }
        lane.wakeAt = at
        timers.insert(Timer(at: at, sink: sink))
    }

    /// After a lane's counts went down: a retired lane with nothing left goes; others may claim.
    private mutating func settle(_ sink: String, now: Date, _ actions: inout [Action]) {
        startReady(sink, now: now, &actions)
        guard let lane = lanes[sink] else { return }
        if lane.retiring {
            if lane.held == 0 { lanes[sink] = nil }
            return
        }
        pump(sink, now: now, &actions)
    }

    /// Rule 6.
    private mutating func reconfigure(_ settings: [LaneSettings], now: Date, _ actions: inout [Action]) {
        let names = Set(settings.map(\.sink))
        for (sink, var lane) in lanes where !names.contains(sink) {
            lane.retiring = true
            lanes[sink] = lane
            settle(sink, now: now, &actions)
        }
        for new in settings {
            if var lane = lanes[new.sink] {
                if lane.settings.rateLimit != new.rateLimit || lane.settings.burst != new.burst {
                    lane.bucket = new.rateLimit.map { TokenBucket(rate: $0, burst: new.burst, now: now) }
                }
                lane.settings = new
                lane.retiring = false
                lanes[new.sink] = lane
            } else {
                var lane = Lane(settings: new, now: now)
                lane.dueAt = now
                lanes[new.sink] = lane
            }
        }
        guard phase == .running else { return }
        actions.append(.failOrphans(keeping: names))
        for sink in names.sorted() { settle(sink, now: now, &actions) }
    }

    // MARK: After every event

    /// Rule 7's last step, and the one timer the driver keeps.
    private mutating func finish(now: Date, _ actions: inout [Action]) {
        if phase == .stopping {
            if outstanding == 0 {
                phase = .stopped
                actions.append(.stopped)
            }
            return
        }
        guard phase == .running, let next = timers.min?.at else { return }
        if armedAt == nil || next < armedAt! {
            armedAt = next
            actions.append(.armTimer(at: next))
        }
    }

    private func earliest(_ a: Date?, _ b: Date?) -> Date? {
        switch (a, b) {
        case (nil, nil): nil
        case (let a?, nil): a
        case (nil, let b?): b
        case (let a?, let b?): min(a, b)
        }
    }
}
