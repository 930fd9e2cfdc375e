import Foundation
import HeraldCore
import Testing

/// The behaviour every `OutboxStore` must have. A store's test suite runs every case against its
/// own implementation, unchanged:
///
/// ```swift
/// @Test(arguments: OutboxStoreContract.Case.allCases)
/// func contract(_ check: OutboxStoreContract.Case) async throws {
///     try await OutboxStoreContract.run(check) { clock in try MyStore(clock: clock) }
/// }
/// ```
///
/// The factory gets the manual clock the store must use as its own.
public enum OutboxStoreContract {
    public enum Case: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case insertRoundTripsAndDedupes
        case concurrentDuplicatesStoreOneEvent
        case claimDueTakesDueWorkOfOneSinkInBatches
        case claimDueExpiresInsteadOfClaiming
        case completeIsFencedAndTimedByTheStore
        case releaseGivesAClaimBack
        case anExpiredLeaseReturnsTheDeliveryAndFencesTheOldWorker
        case recoverReturnsInFlightWork
        case concurrentClaimsNeverHandOneDeliveryToTwoWorkers
        case failPendingOutsideTheConfiguredSinks
        case retryReopensFailedAndExpiredOnlyAndWakes
        case purgeDeletesOnlyOldFinishedEvents
        case eventListingFiltersNewestFirst
        case retractionsWaitForTheirTimeAndAreNotCounted

        public var testDescription: String { rawValue }
    }

    public typealias Factory = @Sendable (ManualClock) async throws -> any OutboxStore

    /// Runs one case against a store `make` opens; `close` is called with it afterwards, however
    /// the case ended (stores with connections to close).
    public static func run(_ check: Case, make: Factory, close: @Sendable (any OutboxStore) async -> Void = { _ in }) async throws {
        let clock = ManualClock()
        let store = try await make(clock)
        do {
            try await run(check, store: store, clock: clock)
        } catch {
            await close(store)
            throw error
        }
        await close(store)
    }

    private static func run(_ check: Case, store: any OutboxStore, clock: ManualClock) async throws {
        let t = Fixture(t0: clock.now())
        switch check {
        case .insertRoundTripsAndDedupes: try await insertRoundTripsAndDedupes(store, t)
        case .concurrentDuplicatesStoreOneEvent: try await concurrentDuplicatesStoreOneEvent(store, t)
        case .claimDueTakesDueWorkOfOneSinkInBatches: try await claimDueTakesDueWork(store, t, clock)
        case .claimDueExpiresInsteadOfClaiming: try await claimDueExpires(store, t, clock)
        case .completeIsFencedAndTimedByTheStore: try await completeIsFenced(store, t, clock)
        case .releaseGivesAClaimBack: try await releaseGivesAClaimBack(store, t)
        case .anExpiredLeaseReturnsTheDeliveryAndFencesTheOldWorker: try await expiredLease(store, t, clock)
        case .recoverReturnsInFlightWork: try await recover(store, t, clock)
        case .concurrentClaimsNeverHandOneDeliveryToTwoWorkers: try await concurrentClaims(store, t)
        case .failPendingOutsideTheConfiguredSinks: try await failPending(store, t)
        case .retryReopensFailedAndExpiredOnlyAndWakes: try await retry(store, t, clock)
        case .purgeDeletesOnlyOldFinishedEvents: try await purge(store, t, clock)
        case .eventListingFiltersNewestFirst: try await eventListing(store, t, clock)
        case .retractionsWaitForTheirTimeAndAreNotCounted: try await retractions(store, t, clock)
        }
    }

    /// Rows written by hand for the cases.
    public struct Fixture: Sendable {
        public let t0: Date

        public init(t0: Date) {
            self.t0 = t0
        }

        public func event(_ id: String, sourceID: String? = nil, source: String = "twilio", at offset: TimeInterval = 0, route: String? = "all") -> Event {
            Event(id: id, source: source, sourceID: sourceID, from: "+15550001111", to: "+15550002222", body: "code 123456 for \(id)\n\n@example.com #123456",
                  otp: "123456", otpDomain: "example.com", app: "AWS", route: route, receivedAt: t0.addingTimeInterval(offset), media: ["https://example.com/m.jpg"])
        }

        public func delivery(_ id: String, event: String, sink: String = "slack", dueIn: TimeInterval = 0, expiresIn: TimeInterval = 600,
                             route: String = "all", state: DeliveryState = .pending) -> Delivery {
            Delivery(id: id, eventID: event, sink: sink, recipient: nil, route: route, app: "AWS", state: state, nextAttemptAt: t0.addingTimeInterval(dueIn),
                     expiresAt: t0.addingTimeInterval(expiresIn), createdAt: t0.addingTimeInterval(dueIn))
        }

        public func attempt(_ d: Delivery, number: Int? = nil, outcome: String = "retry", detail: String? = "HTTP 500") -> DeliveryAttempt {
            DeliveryAttempt(deliveryID: d.id, number: number ?? d.attempts, startedAt: t0, duration: .milliseconds(12), outcome: outcome, detail: detail)
        }
    }

    static let lease = Duration.seconds(30)

    /// Claims one delivery of `sink` (the store's only due one in the case at hand).
    static func claimOne(_ store: any OutboxStore, sink: String = "slack") async throws -> ClaimedDelivery {
        let batch = try await store.claimDue(sink: sink, limit: 1, leaseFor: lease)
        return try #require(batch.claimed.first)
    }

    // MARK: Cases

    static func retractions(_ store: any OutboxStore, _ t: Fixture, _ clock: ManualClock) async throws {
        var retraction = t.delivery("rtr_1", event: "evt_1", dueIn: 60, expiresIn: 3600)
        retraction.retracts = "dlv_1"
        retraction.createdAt = t.t0
        retraction.updatedAt = t.t0
        _ = try await store.insert(t.event("evt_1"), deliveries: [t.delivery("dlv_1", event: "evt_1", expiresIn: 60), retraction])
        #expect(try await store.delivery(id: "rtr_1") == retraction, "every field round-trips, retracts included")
        #expect(try await store.pendingBySink() == ["slack": 1], "a retraction is not backlog")
        #expect(try await store.count(state: .pending) == 1, "nor in the pending gauge")
        let first = try await store.claimDue(sink: "slack", limit: 10, leaseFor: lease)
        #expect(first.claimed.map(\.delivery.id) == ["dlv_1"], "the retraction waits for the code's expiry")
        let wait = try #require(first.nextDueIn)
        #expect(abs(wait.seconds - 60) < 1, "and the claim says when it is due")
        clock.advance(by: .seconds(61))
        let second = try await store.claimDue(sink: "slack", limit: 10, leaseFor: lease)
        #expect(second.claimed.map(\.delivery.id) == ["rtr_1"])
        #expect(second.claimed.first?.delivery.retracts == "dlv_1")
        #expect(try await store.deliveries(DeliveryFilter()).map(\.id).sorted() == ["dlv_1", "rtr_1"], "listed like any delivery")
    }

    static func insertRoundTripsAndDedupes(_ store: any OutboxStore, _ t: Fixture) async throws {
        let e = t.event("evt_1", sourceID: "SM1")
        #expect(try await store.insert(e, deliveries: [t.delivery("dlv_1", event: "evt_1")]) == .inserted)
        #expect(try await store.insert(t.event("evt_2", sourceID: "SM1"), deliveries: [t.delivery("dlv_2", event: "evt_2")]) == .duplicate(eventID: "evt_1"))
        #expect(try await store.insert(t.event("evt_3", sourceID: "SM1", source: "http"), deliveries: []) == .inserted, "dedupe is per source")
        #expect(try await store.insert(t.event("evt_4"), deliveries: []) == .inserted)
        #expect(try await store.insert(t.event("evt_5"), deliveries: []) == .inserted, "no source id: never a duplicate")
        let stored = try #require(try await store.event(id: "evt_1"))
        #expect(stored.event == e)
        var plain = t.event("evt_6")
        plain.media = []
        #expect(try await store.insert(plain, deliveries: []) == .inserted)
        #expect(try await store.event(id: "evt_6")?.event == plain, "an event without media round-trips too")
        #expect(stored.deliveries.map(\.id) == ["dlv_1"])
        #expect(stored.deliveries.first == t.delivery("dlv_1", event: "evt_1"), "every field round-trips")
        #expect(try await store.event(id: "evt_2") == nil)
        #expect(try await store.delivery(id: "dlv_1")?.eventID == "evt_1")
        #expect(try await store.delivery(id: "dlv_2") == nil)
        #expect(try await store.deliveries(DeliveryFilter()).map(\.id) == ["dlv_1"])
    }

    /// Also what the ingest path starts deliveries on: each write hears its own result before
    /// (or, for a store that cannot tell, at) its commit, and only one of them hears "inserted".
    static func concurrentDuplicatesStoreOneEvent(_ store: any OutboxStore, _ t: Fixture) async throws {
        let heard = Locked<[Int: [InsertResult]]>([:])
        let results = await withTaskGroup(of: (Int, InsertResult?).self) { group in
            for i in 0..<25 {
                group.addTask {
                    let result = try? await store.insert(t.event("evt_\(i)", sourceID: "SMsame"), deliveries: [t.delivery("dlv_\(i)", event: "evt_\(i)")]) { result in
                        heard.update { $0[i, default: []].append(result) }
                    }
                    return (i, result)
                }
            }
            var all: [Int: InsertResult?] = [:]
            for await (i, result) in group { all[i] = result }
            return all
        }
        #expect(results.values.filter { $0 == .inserted }.count == 1)
        #expect(results.values.compactMap { $0 }.count == 25)
        #expect(heard.current == results.compactMapValues { $0.map { [$0] } }, "every write heard its own result, once")
        #expect(try await store.deliveries(DeliveryFilter()).count == 1)
    }

    static func claimDueTakesDueWork(_ store: any OutboxStore, _ t: Fixture, _ clock: ManualClock) async throws {
        _ = try await store.insert(t.event("evt_1"), deliveries: [
            t.delivery("dlv_a", event: "evt_1", dueIn: 3), t.delivery("dlv_b", event: "evt_1", dueIn: 1),
            t.delivery("dlv_c", event: "evt_1", dueIn: 2), t.delivery("dlv_later", event: "evt_1", dueIn: 40),
            t.delivery("dlv_audit", event: "evt_1", sink: "audit"),
        ])
        let early = try await store.claimDue(sink: "slack", limit: 10, leaseFor: lease)
        #expect(early.claimed.isEmpty, "nothing is due yet")
        #expect(early.nextDueIn == .seconds(1))
        clock.advance(by: .seconds(5))
        let now = clock.now()
        let first = try await store.claimDue(sink: "slack", limit: 2, leaseFor: lease)
        #expect(first.claimed.map(\.delivery.id) == ["dlv_b", "dlv_c"], "the longest-waiting first, up to the limit")
        #expect(first.claimed.allSatisfy { $0.delivery.state == .inFlight && $0.delivery.attempts == 1 && $0.delivery.leaseUntil == now.adding(lease) })
        #expect(first.claimed.first?.event.id == "evt_1")
        #expect(first.nextDueIn == .zero, "dlv_a is due already")
        let second = try await store.claimDue(sink: "slack", limit: 2, leaseFor: lease)
        #expect(second.claimed.map(\.delivery.id) == ["dlv_a"])
        #expect(second.nextDueIn == .seconds(35))
        #expect(try await store.claimDue(sink: "slack", limit: 2, leaseFor: lease).claimed.isEmpty, "a claimed delivery is not claimed again")
        #expect(try await store.claimDue(sink: "audit", limit: 5, leaseFor: lease).claimed.map(\.delivery.id) == ["dlv_audit"], "per sink")
        #expect(try await store.claimDue(sink: "nobody", limit: 5, leaseFor: lease) == ClaimBatch())
    }

    static func claimDueExpires(_ store: any OutboxStore, _ t: Fixture, _ clock: ManualClock) async throws {
        _ = try await store.insert(t.event("evt_1"), deliveries: [
            t.delivery("dlv_old", event: "evt_1", expiresIn: 60), t.delivery("dlv_ok", event: "evt_1", expiresIn: 600),
        ])
        clock.advance(by: .seconds(60))
        let batch = try await store.claimDue(sink: "slack", limit: 10, leaseFor: lease)
        #expect(batch.expired == ["dlv_old"])
        #expect(batch.claimed.map(\.delivery.id) == ["dlv_ok"])
        #expect(batch.nextDueIn == nil)
        let d = try #require(try await store.delivery(id: "dlv_old"))
        #expect(d.state == .expired)
        #expect(d.attempts == 0)
        #expect(d.lastError == "expired before it could be sent")
    }

    static func completeIsFenced(_ store: any OutboxStore, _ t: Fixture, _ clock: ManualClock) async throws {
        _ = try await store.insert(t.event("evt_1"), deliveries: [t.delivery("dlv_1", event: "evt_1")])
        let first = try await claimOne(store)
        let retry = DeliveryResult(next: .pending, retryIn: .seconds(5), error: "HTTP 500")
        #expect(try await store.complete(t.attempt(first.delivery, number: 2), result: retry) == false, "wrong attempt number")
        #expect(try await store.complete(t.attempt(first.delivery), result: retry))
        var d = try #require(try await store.delivery(id: "dlv_1"))
        #expect(d.state == .pending)
        #expect(d.nextAttemptAt == t.t0.addingTimeInterval(5), "the retry is due 5 s after the store's now")
        #expect(d.lastError == "HTTP 500")
        #expect(d.leaseUntil == nil)
        #expect(try await store.complete(t.attempt(first.delivery), result: DeliveryResult(next: .delivered)) == false, "not in flight any more")

        clock.advance(by: .seconds(5))
        let second = try await claimOne(store)
        #expect(second.delivery.attempts == 2)
        #expect(second.delivery.lastError == "HTTP 500", "a claim carries the last error: one that expires before its attempt keeps it")
        #expect(try await store.complete(t.attempt(second.delivery, outcome: "delivered", detail: nil),
                                         result: DeliveryResult(next: .delivered, receipt: "1700000000.000100")))
        d = try #require(try await store.delivery(id: "dlv_1"))
        #expect(d.state == .delivered)
        #expect(d.receipt == "1700000000.000100", "the receiver's id is kept with the delivery")
        #expect(d.lastError == "HTTP 500", "the last error stays for the audit trail")
        let stored = try #require(try await store.event(id: "evt_1"))
        #expect(stored.attempts.map(\.number) == [1, 2])
        #expect(stored.attempts.map(\.outcome) == ["retry", "delivered"])
        #expect(stored.attempts.first?.duration == .milliseconds(12))
    }

    static func releaseGivesAClaimBack(_ store: any OutboxStore, _ t: Fixture) async throws {
        _ = try await store.insert(t.event("evt_1"), deliveries: [t.delivery("dlv_1", event: "evt_1")])
        let claimed = try await claimOne(store)
        var stale = claimed.delivery
        stale.attempts += 1
        #expect(try await store.release(stale) == false, "fenced by the attempt number")
        #expect(try await store.release(claimed.delivery))
        let d = try #require(try await store.delivery(id: "dlv_1"))
        #expect(d.state == .pending)
        #expect(d.attempts == 0, "no attempt was made")
        #expect(d.leaseUntil == nil)
        #expect(try await store.release(claimed.delivery) == false, "not in flight any more")
        #expect(try await claimOne(store).delivery.attempts == 1)
    }

    static func expiredLease(_ store: any OutboxStore, _ t: Fixture, _ clock: ManualClock) async throws {
        _ = try await store.insert(t.event("evt_1"), deliveries: [t.delivery("dlv_1", event: "evt_1"), t.delivery("dlv_2", event: "evt_1", sink: "audit")])
        let old = try await claimOne(store)
        _ = try await store.claimDue(sink: "audit", limit: 1, leaseFor: .seconds(300))
        clock.advance(by: .seconds(29))
        #expect(try await store.releaseExpiredLeases().isEmpty)
        clock.advance(by: .seconds(2))
        #expect(try await store.releaseExpiredLeases() == ["slack"])
        let new = try await claimOne(store)
        #expect(new.delivery.attempts == 2)
        // The worker whose lease ran out finishes late: its result must not land.
        #expect(try await store.complete(t.attempt(old.delivery, outcome: "delivered"), result: DeliveryResult(next: .delivered)) == false)
        #expect(try await store.complete(t.attempt(new.delivery, outcome: "permanent"), result: DeliveryResult(next: .failed, error: "HTTP 400")))
        #expect(try await store.deliveries(DeliveryFilter(state: .failed)).map(\.id) == ["dlv_1"])
        #expect(try await store.deliveries(DeliveryFilter(state: .inFlight)).map(\.id) == ["dlv_2"])
    }

    static func recover(_ store: any OutboxStore, _ t: Fixture, _ clock: ManualClock) async throws {
        _ = try await store.insert(t.event("evt_1"), deliveries: [
            t.delivery("dlv_1", event: "evt_1"), t.delivery("dlv_2", event: "evt_1", sink: "audit", dueIn: 50),
            t.delivery("dlv_3", event: "evt_1", sink: "inbox"),
        ])
        _ = try await claimOne(store)
        let c3 = try await claimOne(store, sink: "inbox")
        _ = try await store.complete(t.attempt(c3.delivery, outcome: "delivered"), result: DeliveryResult(next: .delivered))
        clock.advance(by: .seconds(5))
        #expect(try await store.recover() == 1)
        #expect(try await store.deliveries(DeliveryFilter(state: .inFlight)).isEmpty)
        let resumed = try #require(try await store.delivery(id: "dlv_1"))
        #expect(resumed.state == .pending)
        #expect(resumed.nextAttemptAt == clock.now(), "due at once")
        #expect(try await store.delivery(id: "dlv_2")?.nextAttemptAt == t.t0.addingTimeInterval(50), "pending work keeps its time")
        #expect(try await store.delivery(id: "dlv_3")?.state == .delivered)
    }

    static func concurrentClaims(_ store: any OutboxStore, _ t: Fixture) async throws {
        let ids = (0..<60).map { "dlv_\($0)" }
        _ = try await store.insert(t.event("evt_1"), deliveries: ids.map { t.delivery($0, event: "evt_1") })
        let wins = await withTaskGroup(of: [String].self) { group in
            for _ in 0..<6 {
                group.addTask {
                    var mine: [String] = []
                    while let batch = try? await store.claimDue(sink: "slack", limit: 3, leaseFor: lease), !batch.claimed.isEmpty {
                        mine += batch.claimed.map(\.delivery.id)
                    }
                    return mine
                }
            }
            var all: [String] = []
            for await mine in group { all += mine }
            return all
        }
        #expect(wins.count == ids.count)
        #expect(Set(wins) == Set(ids))
    }

    static func failPending(_ store: any OutboxStore, _ t: Fixture) async throws {
        _ = try await store.insert(t.event("evt_1"), deliveries: [
            t.delivery("dlv_1", event: "evt_1", sink: "gone"), t.delivery("dlv_2", event: "evt_1", sink: "gone", dueIn: 60),
            t.delivery("dlv_3", event: "evt_1", sink: "slack"), t.delivery("dlv_4", event: "evt_1", sink: "gone-too"),
        ])
        let inFlight = try await claimOne(store, sink: "gone-too")
        #expect(try await store.failPending(outside: ["slack"]) == ["gone": 2])
        #expect(try await store.delivery(id: "dlv_1")?.lastError == "sink removed: 'gone' is no longer configured")
        #expect(try await store.delivery(id: "dlv_2")?.state == .failed)
        #expect(try await store.delivery(id: "dlv_3")?.state == .pending)
        #expect(try await store.delivery(id: inFlight.delivery.id)?.state == .inFlight, "an attempt under way finishes on its own")
        #expect(try await store.failPending(outside: ["slack"]).isEmpty)
    }

    static func retry(_ store: any OutboxStore, _ t: Fixture, _ clock: ManualClock) async throws {
        _ = try await store.insert(t.event("evt_1"), deliveries: [t.delivery("dlv_1", event: "evt_1", expiresIn: 60), t.delivery("dlv_2", event: "evt_1", sink: "audit")])
        let wakeups = store.wakeups()
        clock.advance(by: .seconds(120))
        #expect(try await store.claimDue(sink: "slack", limit: 1, leaseFor: lease).expired == ["dlv_1"])
        #expect(try await store.retry(deliveryID: "dlv_2", expiresIn: .seconds(600)) == nil, "pending: nothing to retry")
        let reopened = try #require(try await store.retry(deliveryID: "dlv_1", expiresIn: .seconds(600)))
        #expect(reopened.state == .pending)
        #expect(reopened.nextAttemptAt == clock.now())
        #expect(reopened.expiresAt == clock.now().addingTimeInterval(600))
        var iterator = wakeups.makeAsyncIterator()
        #expect(await iterator.next() == "slack", "the engine is told where the work is")
        #expect(try await claimOne(store).delivery.id == "dlv_1")
        #expect(try await store.retry(deliveryID: "dlv_nope", expiresIn: .seconds(600)) == nil)
    }

    static func purge(_ store: any OutboxStore, _ t: Fixture, _ clock: ManualClock) async throws {
        _ = try await store.insert(t.event("evt_old_done", sourceID: "SM1"), deliveries: [t.delivery("dlv_1", event: "evt_old_done")])
        _ = try await store.insert(t.event("evt_old_pending"), deliveries: [t.delivery("dlv_2", event: "evt_old_pending", dueIn: 999_999, expiresIn: 9_999_999)])
        _ = try await store.insert(t.event("evt_old_unrouted"), deliveries: [])
        _ = try await store.insert(t.event("evt_recent", at: 86400 * 8), deliveries: [])
        let c = try await claimOne(store)
        _ = try await store.complete(t.attempt(c.delivery, outcome: "delivered"), result: DeliveryResult(next: .delivered))
        clock.advance(by: .seconds(86400 * 8))
        #expect(try await store.purge(olderThan: .seconds(86400 * 7)) == 2)
        #expect(try await store.event(id: "evt_old_done") == nil)
        #expect(try await store.event(id: "evt_old_unrouted") == nil)
        #expect(try await store.event(id: "evt_old_pending") != nil, "nothing pending is ever purged")
        #expect(try await store.event(id: "evt_recent") != nil)
        #expect(try await store.deliveries(DeliveryFilter()).map(\.id) == ["dlv_2"])
        // The source id is free again once the event is gone.
        #expect(try await store.insert(t.event("evt_again", sourceID: "SM1", at: 86400 * 8), deliveries: []) == .inserted)
    }

    static func eventListing(_ store: any OutboxStore, _ t: Fixture, _ clock: ManualClock) async throws {
        for i in 0..<5 {
            let route = i % 2 == 0 ? "aws" : "rest"
            _ = try await store.insert(t.event("evt_\(i)", at: Double(i) * 60, route: route),
                                       deliveries: [t.delivery("dlv_\(i)", event: "evt_\(i)", sink: i == 4 ? "audit" : "slack", dueIn: Double(i) * 60, route: route)])
        }
        _ = try await store.insert(t.event("evt_u", at: 30, route: nil), deliveries: [])
        clock.advance(by: .seconds(60))
        let batch = try await store.claimDue(sink: "slack", limit: 2, leaseFor: lease)
        let c = try #require(batch.claimed.first { $0.delivery.id == "dlv_1" })
        _ = try await store.complete(t.attempt(c.delivery, outcome: "permanent"), result: DeliveryResult(next: .failed, error: "HTTP 400"))

        #expect(try await store.events(EventFilter()).map(\.event.id) == ["evt_4", "evt_3", "evt_2", "evt_1", "evt_u", "evt_0"])
        #expect(try await store.events(EventFilter(limit: 2)).map(\.event.id) == ["evt_4", "evt_3"])
        #expect(try await store.events(EventFilter(state: .failed)).map(\.event.id) == ["evt_1"])
        #expect(try await store.events(EventFilter(route: "aws")).map(\.event.id) == ["evt_4", "evt_2", "evt_0"])
        #expect(try await store.events(EventFilter(sink: "audit")).map(\.event.id) == ["evt_4"])
        #expect(try await store.events(EventFilter(unrouted: true)).map(\.event.id) == ["evt_u"])
        #expect(try await store.events(EventFilter(since: t.t0.addingTimeInterval(60), until: t.t0.addingTimeInterval(180))).map(\.event.id) == ["evt_2", "evt_1"])
        #expect(try await store.events(EventFilter(state: .failed)).first?.deliveries.map(\.state) == [.failed])
        #expect(try await store.deliveries(DeliveryFilter(state: .inFlight)).map(\.id) == ["dlv_0"])
        #expect(try await store.count(state: .pending) == 3)
        #expect(try await store.pendingBySink() == ["slack": 2, "audit": 1], "the backlog per sink, in flight and failed left out")
    }
}
