import Foundation
import HeraldCore
import HeraldSQLite
import Testing

/// The behaviour every `OutboxStore` must have, run against each implementation.
@Suite("OutboxStore contract")
struct OutboxStoreContractTests {
    enum Kind: String, CaseIterable, CustomTestStringConvertible {
        case memory, sqlite
        var testDescription: String { rawValue }
    }

    static func makeStore(_ kind: Kind) throws -> any OutboxStore {
        switch kind {
        case .memory: InMemoryOutboxStore()
        case .sqlite: try SQLiteOutboxStore(path: TempDirectory.make().appendingPathComponent("herald.db").path)
        }
    }

    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func event(_ id: String, sourceID: String? = nil, source: String = "twilio", at time: Date = t0, route: String? = "all") -> Event {
        Event(id: id, source: source, sourceID: sourceID, from: "+15550001111", to: "+15550002222", body: "code 123456 for \(id)",
              otp: "123456", app: "AWS", route: route, receivedAt: time, media: ["https://example.com/m.jpg"])
    }

    static func delivery(_ id: String, event: String, sink: String = "slack", at time: Date = t0, expiresIn: TimeInterval = 600, route: String = "all") -> Delivery {
        Delivery(id: id, eventID: event, sink: sink, recipient: nil, route: route, app: "AWS", nextAttemptAt: time,
                 expiresAt: time.addingTimeInterval(expiresIn), createdAt: time)
    }

    static func claimed(_ result: ClaimResult) -> ClaimedDelivery? {
        if case .claimed(let value) = result { return value }
        return nil
    }

    static func attempt(_ d: Delivery, number: Int, outcome: String = "retry", detail: String? = "HTTP 500") -> DeliveryAttempt {
        DeliveryAttempt(deliveryID: d.id, number: number, startedAt: t0, duration: .milliseconds(12), outcome: outcome, detail: detail)
    }

    @Test(arguments: Kind.allCases)
    func insertRoundTripsAndDedupes(_ kind: Kind) async throws {
        let store = try Self.makeStore(kind)
        let e = Self.event("evt_1", sourceID: "SM1")
        #expect(try await store.insert(e, deliveries: [Self.delivery("dlv_1", event: "evt_1")]) == .inserted)
        #expect(try await store.insert(Self.event("evt_2", sourceID: "SM1"), deliveries: [Self.delivery("dlv_2", event: "evt_2")]) == .duplicate(eventID: "evt_1"))
        #expect(try await store.insert(Self.event("evt_3", sourceID: "SM1", source: "http"), deliveries: []) == .inserted, "dedupe is per source")
        #expect(try await store.insert(Self.event("evt_4"), deliveries: []) == .inserted)
        #expect(try await store.insert(Self.event("evt_5"), deliveries: []) == .inserted, "no source id: never a duplicate")
        let stored = try #require(try await store.event(id: "evt_1"))
        #expect(stored.event == e)
        #expect(stored.deliveries.map(\.id) == ["dlv_1"])
        #expect(try await store.event(id: "evt_2") == nil)
        #expect(try await store.delivery(id: "dlv_1")?.eventID == "evt_1")
        #expect(try await store.delivery(id: "dlv_2") == nil)
        #expect(try await store.deliveries(DeliveryFilter()).map(\.id) == ["dlv_1"])
    }

    @Test(arguments: Kind.allCases)
    func concurrentDuplicatesStoreOneEvent(_ kind: Kind) async throws {
        let store = try Self.makeStore(kind)
        let results = await withTaskGroup(of: InsertResult?.self) { group in
            for i in 0..<25 {
                group.addTask {
                    try? await store.insert(Self.event("evt_\(i)", sourceID: "SMsame"), deliveries: [Self.delivery("dlv_\(i)", event: "evt_\(i)")])
                }
            }
            var all: [InsertResult?] = []
            for await result in group { all.append(result) }
            return all
        }
        #expect(results.filter { $0 == .inserted }.count == 1)
        #expect(results.compactMap { $0 }.count == 25)
        #expect(try await store.deliveries(DeliveryFilter()).count == 1)
    }

    @Test(arguments: Kind.allCases)
    func claimLeasesADueDeliveryOnce(_ kind: Kind) async throws {
        let store = try Self.makeStore(kind)
        _ = try await store.insert(Self.event("evt_1"), deliveries: [Self.delivery("dlv_1", event: "evt_1", at: Self.t0.addingTimeInterval(10))])
        #expect(try await store.claim(deliveryID: "dlv_1", now: Self.t0, leaseUntil: Self.t0.addingTimeInterval(30)) == .unavailable, "not due yet")
        let now = Self.t0.addingTimeInterval(10)
        let claim = try #require(Self.claimed(try await store.claim(deliveryID: "dlv_1", now: now, leaseUntil: now.addingTimeInterval(30))))
        #expect(claim.delivery.state == .inFlight)
        #expect(claim.delivery.attempts == 1)
        #expect(claim.delivery.leaseUntil == now.addingTimeInterval(30))
        #expect(claim.event.id == "evt_1")
        #expect(try await store.claim(deliveryID: "dlv_1", now: now, leaseUntil: now.addingTimeInterval(30)) == .unavailable)
        #expect(try await store.claim(deliveryID: "dlv_missing", now: now, leaseUntil: now) == .unavailable)
    }

    @Test(arguments: Kind.allCases)
    func claimAfterExpiryExpires(_ kind: Kind) async throws {
        let store = try Self.makeStore(kind)
        _ = try await store.insert(Self.event("evt_1"), deliveries: [Self.delivery("dlv_1", event: "evt_1", expiresIn: 60)])
        let late = Self.t0.addingTimeInterval(60)
        #expect(try await store.claim(deliveryID: "dlv_1", now: late, leaseUntil: late.addingTimeInterval(30)) == .expired)
        let d = try #require(try await store.deliveries(DeliveryFilter()).first)
        #expect(d.state == .expired)
        #expect(d.attempts == 0)
        #expect(d.lastError == "expired before it could be sent")
    }

    @Test(arguments: Kind.allCases)
    func completeIsFencedByTheAttemptNumber(_ kind: Kind) async throws {
        let store = try Self.makeStore(kind)
        _ = try await store.insert(Self.event("evt_1"), deliveries: [Self.delivery("dlv_1", event: "evt_1")])
        let first = try #require(Self.claimed(try await store.claim(deliveryID: "dlv_1", now: Self.t0, leaseUntil: Self.t0.addingTimeInterval(30))))
        // Rescheduled with the error kept.
        let retryAt = Self.t0.addingTimeInterval(5)
        #expect(try await store.complete(Self.attempt(first.delivery, number: 2), next: .pending, nextAttemptAt: retryAt, error: "HTTP 500", now: Self.t0) == false, "wrong attempt number")
        #expect(try await store.complete(Self.attempt(first.delivery, number: 1), next: .pending, nextAttemptAt: retryAt, error: "HTTP 500", now: Self.t0))
        var d = try #require(try await store.deliveries(DeliveryFilter()).first)
        #expect(d.state == .pending)
        #expect(d.nextAttemptAt == retryAt)
        #expect(d.lastError == "HTTP 500")
        #expect(d.leaseUntil == nil)
        #expect(try await store.complete(Self.attempt(first.delivery, number: 1), next: .delivered, nextAttemptAt: nil, error: nil, now: Self.t0) == false, "not in flight any more")

        let second = try #require(Self.claimed(try await store.claim(deliveryID: "dlv_1", now: retryAt, leaseUntil: retryAt.addingTimeInterval(30))))
        #expect(second.delivery.attempts == 2)
        #expect(try await store.complete(Self.attempt(second.delivery, number: 2, outcome: "delivered", detail: nil), next: .delivered, nextAttemptAt: nil, error: nil, now: retryAt))
        d = try #require(try await store.deliveries(DeliveryFilter()).first)
        #expect(d.state == .delivered)
        #expect(d.lastError == "HTTP 500", "the last error stays for the audit trail")
        let stored = try #require(try await store.event(id: "evt_1"))
        #expect(stored.attempts.map(\.number) == [1, 2])
        #expect(stored.attempts.map(\.outcome) == ["retry", "delivered"])
        #expect(stored.attempts.first?.duration == .milliseconds(12))
    }

    @Test(arguments: Kind.allCases)
    func anExpiredLeaseReturnsTheDeliveryAndFencesTheOldWorker(_ kind: Kind) async throws {
        let store = try Self.makeStore(kind)
        _ = try await store.insert(Self.event("evt_1"), deliveries: [Self.delivery("dlv_1", event: "evt_1"), Self.delivery("dlv_2", event: "evt_1", sink: "audit")])
        let old = try #require(Self.claimed(try await store.claim(deliveryID: "dlv_1", now: Self.t0, leaseUntil: Self.t0.addingTimeInterval(30))))
        _ = try await store.claim(deliveryID: "dlv_2", now: Self.t0, leaseUntil: Self.t0.addingTimeInterval(300))
        #expect(try await store.releaseExpiredLeases(now: Self.t0.addingTimeInterval(29)).isEmpty)
        let later = Self.t0.addingTimeInterval(31)
        #expect(try await store.releaseExpiredLeases(now: later) == [ScheduledDelivery(id: "dlv_1", sink: "slack", dueAt: later)])
        let new = try #require(Self.claimed(try await store.claim(deliveryID: "dlv_1", now: later, leaseUntil: later.addingTimeInterval(30))))
        #expect(new.delivery.attempts == 2)
        // The worker whose lease ran out finishes late: its result must not land.
        #expect(try await store.complete(Self.attempt(old.delivery, number: 1, outcome: "delivered"), next: .delivered, nextAttemptAt: nil, error: nil, now: later) == false)
        #expect(try await store.complete(Self.attempt(new.delivery, number: 2, outcome: "permanent"), next: .failed, nextAttemptAt: nil, error: "HTTP 400", now: later))
        #expect(try await store.deliveries(DeliveryFilter(state: .failed)).map(\.id) == ["dlv_1"])
    }

    @Test(arguments: Kind.allCases)
    func recoverReturnsInFlightAndPendingWork(_ kind: Kind) async throws {
        let store = try Self.makeStore(kind)
        _ = try await store.insert(Self.event("evt_1"), deliveries: [
            Self.delivery("dlv_1", event: "evt_1"), Self.delivery("dlv_2", event: "evt_1", sink: "audit", at: Self.t0.addingTimeInterval(50)),
            Self.delivery("dlv_3", event: "evt_1", sink: "inbox"),
        ])
        _ = try await store.claim(deliveryID: "dlv_1", now: Self.t0, leaseUntil: Self.t0.addingTimeInterval(30))
        let c3 = try #require(Self.claimed(try await store.claim(deliveryID: "dlv_3", now: Self.t0, leaseUntil: Self.t0.addingTimeInterval(30))))
        _ = try await store.complete(Self.attempt(c3.delivery, number: 1, outcome: "delivered"), next: .delivered, nextAttemptAt: nil, error: nil, now: Self.t0)
        let restart = Self.t0.addingTimeInterval(5)
        let scheduled = try await store.recover(now: restart)
        #expect(Set(scheduled.map(\.id)) == ["dlv_1", "dlv_2"])
        #expect(scheduled.first { $0.id == "dlv_1" }?.dueAt == restart)
        #expect(scheduled.first { $0.id == "dlv_2" }?.dueAt == Self.t0.addingTimeInterval(50))
        #expect(try await store.deliveries(DeliveryFilter(state: .inFlight)).isEmpty)
    }

    @Test(arguments: Kind.allCases)
    func concurrentClaimsNeverHandOneDeliveryToTwoWorkers(_ kind: Kind) async throws {
        let store = try Self.makeStore(kind)
        let ids = (0..<60).map { "dlv_\($0)" }
        _ = try await store.insert(Self.event("evt_1"), deliveries: ids.map { Self.delivery($0, event: "evt_1") })
        let wins = await withTaskGroup(of: [String].self) { group in
            for _ in 0..<6 {
                group.addTask {
                    var mine: [String] = []
                    for id in ids.shuffled() {
                        if case .claimed = try? await store.claim(deliveryID: id, now: Self.t0, leaseUntil: Self.t0.addingTimeInterval(30)) {
                            mine.append(id)
                        }
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

    @Test(arguments: Kind.allCases)
    func retryReopensFailedAndExpiredOnly(_ kind: Kind) async throws {
        let store = try Self.makeStore(kind)
        _ = try await store.insert(Self.event("evt_1"), deliveries: [Self.delivery("dlv_1", event: "evt_1", expiresIn: 60), Self.delivery("dlv_2", event: "evt_1", sink: "audit")])
        let late = Self.t0.addingTimeInterval(120)
        #expect(try await store.claim(deliveryID: "dlv_1", now: late, leaseUntil: late) == .expired)
        #expect(try await store.retry(deliveryID: "dlv_2", now: late, expiresAt: late.addingTimeInterval(600)) == nil, "pending: nothing to retry")
        let reopened = try #require(try await store.retry(deliveryID: "dlv_1", now: late, expiresAt: late.addingTimeInterval(600)))
        #expect(reopened.state == .pending)
        #expect(reopened.nextAttemptAt == late)
        #expect(reopened.expiresAt == late.addingTimeInterval(600))
        #expect(Self.claimed(try await store.claim(deliveryID: "dlv_1", now: late, leaseUntil: late.addingTimeInterval(30))) != nil)
        #expect(try await store.retry(deliveryID: "dlv_nope", now: late, expiresAt: late) == nil)
    }

    @Test(arguments: Kind.allCases)
    func purgeDeletesOnlyOldFinishedEvents(_ kind: Kind) async throws {
        let store = try Self.makeStore(kind)
        let old = Self.t0, recent = Self.t0.addingTimeInterval(86400 * 8)
        _ = try await store.insert(Self.event("evt_old_done", sourceID: "SM1", at: old), deliveries: [Self.delivery("dlv_1", event: "evt_old_done", at: old)])
        _ = try await store.insert(Self.event("evt_old_pending", at: old), deliveries: [Self.delivery("dlv_2", event: "evt_old_pending", at: old.addingTimeInterval(999_999), expiresIn: 9_999_999)])
        _ = try await store.insert(Self.event("evt_old_unrouted", at: old), deliveries: [])
        _ = try await store.insert(Self.event("evt_recent", at: recent), deliveries: [])
        let c = try #require(Self.claimed(try await store.claim(deliveryID: "dlv_1", now: old, leaseUntil: old.addingTimeInterval(30))))
        _ = try await store.complete(Self.attempt(c.delivery, number: 1, outcome: "delivered"), next: .delivered, nextAttemptAt: nil, error: nil, now: old)
        #expect(try await store.purge(receivedBefore: recent.addingTimeInterval(-86400 * 7)) == 2)
        #expect(try await store.event(id: "evt_old_done") == nil)
        #expect(try await store.event(id: "evt_old_unrouted") == nil)
        #expect(try await store.event(id: "evt_old_pending") != nil, "nothing pending is ever purged")
        #expect(try await store.event(id: "evt_recent") != nil)
        #expect(try await store.deliveries(DeliveryFilter()).map(\.id) == ["dlv_2"])
        // The source id is free again once the event is gone.
        #expect(try await store.insert(Self.event("evt_again", sourceID: "SM1", at: recent), deliveries: []) == .inserted)
    }

    @Test(arguments: Kind.allCases)
    func eventListingFiltersNewestFirst(_ kind: Kind) async throws {
        let store = try Self.makeStore(kind)
        for i in 0..<5 {
            let at = Self.t0.addingTimeInterval(Double(i) * 60)
            let route = i % 2 == 0 ? "aws" : "rest"
            _ = try await store.insert(Self.event("evt_\(i)", at: at, route: route),
                                       deliveries: [Self.delivery("dlv_\(i)", event: "evt_\(i)", sink: i == 4 ? "audit" : "slack", at: at, route: route)])
        }
        _ = try await store.insert(Self.event("evt_u", at: Self.t0.addingTimeInterval(30), route: nil), deliveries: [])
        let c = try #require(Self.claimed(try await store.claim(deliveryID: "dlv_1", now: Self.t0.addingTimeInterval(60), leaseUntil: Self.t0.addingTimeInterval(90))))
        _ = try await store.complete(Self.attempt(c.delivery, number: 1, outcome: "permanent"), next: .failed, nextAttemptAt: nil, error: "HTTP 400", now: Self.t0)

        #expect(try await store.events(EventFilter()).map(\.event.id) == ["evt_4", "evt_3", "evt_2", "evt_1", "evt_u", "evt_0"])
        #expect(try await store.events(EventFilter(limit: 2)).map(\.event.id) == ["evt_4", "evt_3"])
        #expect(try await store.events(EventFilter(state: .failed)).map(\.event.id) == ["evt_1"])
        #expect(try await store.events(EventFilter(route: "aws")).map(\.event.id) == ["evt_4", "evt_2", "evt_0"])
        #expect(try await store.events(EventFilter(sink: "audit")).map(\.event.id) == ["evt_4"])
        #expect(try await store.events(EventFilter(unrouted: true)).map(\.event.id) == ["evt_u"])
        #expect(try await store.events(EventFilter(since: Self.t0.addingTimeInterval(60), until: Self.t0.addingTimeInterval(180))).map(\.event.id) == ["evt_2", "evt_1"])
        #expect(try await store.events(EventFilter(state: .failed)).first?.deliveries.map(\.state) == [.failed])
        #expect(try await store.dueDeliveries(now: Self.t0.addingTimeInterval(120), limit: 10).map(\.id) == ["dlv_0", "dlv_2"])
    }
}

enum TempDirectory {
    static func make() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("herald-test-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
