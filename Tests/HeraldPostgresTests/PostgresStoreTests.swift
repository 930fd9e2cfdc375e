import Foundation
import HeraldCore
import HeraldPostgres
import HeraldTesting
import Logging
import Synchronization
import Testing

/// A store on a database of its own on the test cluster.
func openTestStore(_ url: String? = nil, nodeID: String = "node-test", serving: Bool = false, clock: any HeraldClock = SystemClock(),
                   fixedClock: (any HeraldClock)? = nil) async throws -> PostgresOutboxStore {
    let url = try url ?? TestPostgres.createDatabase()
    guard case .success(let storage) = PostgresStorage.parse(url) else { throw TestPostgres.Failure(message: "bad URL \(url)") }
    return try await PostgresOutboxStore.open(storage, nodeID: nodeID, serving: serving, clock: clock, fixedClock: fixedClock,
                                              maxConnections: 4, logger: Logger(label: "test.postgres"))
}

@Suite("PostgreSQL store: the contract", .enabled(if: TestPostgres.isAvailable, "needs HERALD_TEST_POSTGRES (make test starts a cluster)"))
struct PostgresContractTests {
    @Test(arguments: OutboxStoreContract.Case.allCases)
    func contract(_ check: OutboxStoreContract.Case) async throws {
        try await OutboxStoreContract.run(check, make: { clock in
            try await openTestStore(fixedClock: clock)
        }, close: { store in
            await (store as? PostgresOutboxStore)?.close()
        })
    }
}

@Suite("PostgreSQL store: several processes, one clock", .enabled(if: TestPostgres.isAvailable, "needs HERALD_TEST_POSTGRES (make test starts a cluster)"))
struct PostgresSharedStoreTests {
    let t = OutboxStoreContract.Fixture(t0: Date())

    func fixture(_ clock: any HeraldClock) -> OutboxStoreContract.Fixture { OutboxStoreContract.Fixture(t0: clock.now()) }

    /// A process whose own clock is 10 minutes fast still sees a 60 s code as good for 60 s and a
    /// 30 s lease as 30 s: every comparison is the database's, only durations cross over.
    @Test func timesAreTheDatabasesAndOnlyDurationsCrossOver() async throws {
        let url = try TestPostgres.createDatabase()
        let fast = ManualClock(now: Date().addingTimeInterval(600))
        let store = try await openTestStore(url, clock: fast)
        defer { Task { await store.close() } }
        let t = fixture(fast)
        _ = try await store.insert(t.event("evt_1"), deliveries: [t.delivery("dlv_1", event: "evt_1", expiresIn: 60),
                                                               t.delivery("dlv_2", event: "evt_1", dueIn: 5)])
        let expiresIn = Double(try TestPostgres.psql(url, "SELECT extract(epoch FROM expires_at - now()) FROM herald.deliveries WHERE id = 'dlv_1'")) ?? 0
        #expect((58...61).contains(expiresIn), "stored as the database's now + 60 s, not the fast clock's instant: \(expiresIn)")
        let batch = try await store.claimDue(sink: "slack", limit: 5, leaseFor: .seconds(30))
        #expect(batch.claimed.map(\.delivery.id) == ["dlv_1"], "due now by the database, not expired")
        let claimed = try #require(batch.claimed.first)
        let leaseLeft = try #require(claimed.delivery.leaseUntil).timeIntervalSince(fast.now())
        #expect((28...31).contains(leaseLeft), "the lease read back on this process's clock: \(leaseLeft)")
        let nextDue = try #require(batch.nextDueIn)
        #expect(nextDue > .seconds(3) && nextDue <= .seconds(5), "dlv_2 is due in about 5 s: \(nextDue)")
        let leaseInDB = Double(try TestPostgres.psql(url, "SELECT extract(epoch FROM lease_expires_at - now()) FROM herald.deliveries WHERE id = 'dlv_1'")) ?? 0
        #expect((28...31).contains(leaseInDB))
        #expect(try TestPostgres.psql(url, "SELECT lease_owner FROM herald.deliveries WHERE id = 'dlv_1'") == "node-test")
    }

    @Test func twoProcessesMigratingAtOnceMakeOneSchemaAndANewerSchemaIsRefused() async throws {
        let url = try TestPostgres.createDatabase()
        async let a = openTestStore(url, nodeID: "a")
        async let b = openTestStore(url, nodeID: "b")
        let (storeA, storeB) = try await (a, b)
        await storeA.close()
        await storeB.close()
        #expect(try TestPostgres.psql(url, "SELECT string_agg(version::text, ',' ORDER BY version) FROM herald.schema_version") == "1,2")
        try TestPostgres.psql(url, "INSERT INTO herald.schema_version VALUES (99)")
        await #expect {
            try await openTestStore(url)
        } throws: { error in
            "\(error)".contains("written by a newer Herald (schema version 99") && "\(error)".contains("nothing was changed")
        }
    }

    @Test func aSecondLiveProcessWithTheSameNodeIDIsRefused() async throws {
        let url = try TestPostgres.createDatabase()
        let first = try await openTestStore(url, nodeID: "herald-a", serving: true)
        await #expect {
            try await openTestStore(url, nodeID: "herald-a", serving: true)
        } throws: { error in
            "\(error)".contains("another herald serve is running with server.node_id 'herald-a'")
        }
        let other = try await openTestStore(url, nodeID: "herald-b", serving: true)
        await other.close()
        await first.close()
        let again = try await openTestStore(url, nodeID: "herald-a", serving: true)
        await again.close()
    }

    /// At start a process releases only what its own previous run left in flight.
    @Test func recoverReleasesOnlyThisNodesClaims() async throws {
        let url = try TestPostgres.createDatabase()
        let a = try await openTestStore(url, nodeID: "a")
        let b = try await openTestStore(url, nodeID: "b")
        let t = fixture(SystemClock())
        _ = try await a.insert(t.event("evt_1"), deliveries: (0..<4).map { t.delivery("dlv_\($0)", event: "evt_1") })
        #expect(try await a.claimDue(sink: "slack", limit: 1, leaseFor: .seconds(30)).claimed.count == 1)
        #expect(try await b.claimDue(sink: "slack", limit: 2, leaseFor: .seconds(30)).claimed.count == 2)
        #expect(try await a.recover() == 1)
        #expect(try TestPostgres.psql(url, "SELECT count(*) FROM herald.deliveries WHERE state = 'in_flight' AND lease_owner = 'b'") == "2")
        #expect(try await a.count(state: .pending) == 2)
        await a.close()
        await b.close()
    }

    /// Three stores (three processes' pools) claiming the same 300 deliveries hand each to one.
    @Test func claimsAcrossStoresAreExactlyOnce() async throws {
        let url = try TestPostgres.createDatabase()
        var stores: [PostgresOutboxStore] = []
        for i in 0..<3 { stores.append(try await openTestStore(url, nodeID: "n\(i)")) }
        let t = fixture(SystemClock())
        for e in 0..<30 {
            _ = try await stores[e % 3].insert(t.event("evt_\(e)"), deliveries: (0..<10).map { t.delivery("dlv_\(e)_\($0)", event: "evt_\(e)") })
        }
        let wins = await withTaskGroup(of: [String].self) { group in
            for store in stores {
                for _ in 0..<3 {
                    group.addTask {
                        var mine: [String] = []
                        while let batch = try? await store.claimDue(sink: "slack", limit: 4, leaseFor: .seconds(30)), !batch.claimed.isEmpty {
                            mine += batch.claimed.map(\.delivery.id)
                        }
                        return mine
                    }
                }
            }
            var all: [String] = []
            for await mine in group { all += mine }
            return all
        }
        #expect(wins.count == 300)
        #expect(Set(wins).count == 300)
        #expect(try TestPostgres.psql(url, "SELECT count(DISTINCT lease_owner) FROM herald.deliveries") == "3", "all three took part")
        for store in stores { await store.close() }
    }

    @Test func theSameMessageAtTwoProcessesAtOnceIsOneEvent() async throws {
        let url = try TestPostgres.createDatabase()
        let a = try await openTestStore(url, nodeID: "a")
        let b = try await openTestStore(url, nodeID: "b")
        let t = fixture(SystemClock())
        for round in 0..<20 {
            async let x = a.insert(t.event("evt_a\(round)", sourceID: "SM\(round)"), deliveries: [t.delivery("dlv_a\(round)", event: "evt_a\(round)")])
            async let y = b.insert(t.event("evt_b\(round)", sourceID: "SM\(round)"), deliveries: [t.delivery("dlv_b\(round)", event: "evt_b\(round)")])
            let results = try await [x, y]
            #expect(results.filter { $0 == .inserted }.count == 1, "round \(round): \(results)")
            let winner = results[0] == .inserted ? "evt_a\(round)" : "evt_b\(round)"
            #expect(results.contains(.duplicate(eventID: winner)))
        }
        #expect(try TestPostgres.psql(url, "SELECT count(*) FROM herald.events") == "20")
        #expect(try TestPostgres.psql(url, "SELECT count(*) FROM herald.deliveries") == "20")
        await a.close()
        await b.close()
    }

    /// Work another process leaves pending is announced; the listener wakes this one for it, also
    /// after its connection was cut (and then every lane looks, for what it may have missed).
    @Test func pendingWorkIsAnnouncedAndTheListenerComesBack() async throws {
        let url = try TestPostgres.createDatabase()
        let listening = try await openTestStore(url, nodeID: "listener", serving: true)
        let writer = try await openTestStore(url, nodeID: "writer")
        let heard = Heard()
        let task = Task { for await sink in listening.wakeups() { heard.add(sink) } }
        let t = fixture(SystemClock())
        var born = t.delivery("dlv_born", event: "evt_1", sink: "claimed-sink", state: .inFlight)
        born.attempts = 1
        born.leaseUntil = Date().addingTimeInterval(30)
        _ = try await writer.insert(t.event("evt_1"), deliveries: [t.delivery("dlv_1", event: "evt_1", sink: "audit"), born])
        #expect(await eventually(timeout: .seconds(5)) { heard.sinks.contains("audit") })
        #expect(!heard.sinks.contains("claimed-sink"), "a delivery stored claimed is not announced")

        _ = try TestPostgres.psql(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'herald-listener' AND datname = current_database()")
        #expect(await eventually(timeout: .seconds(10)) { heard.sinks.contains(StoreWakeups.everySink) }, "after reconnecting, every lane looks")
        _ = try await writer.insert(t.event("evt_2"), deliveries: [t.delivery("dlv_2", event: "evt_2", sink: "after-reconnect")])
        #expect(await eventually(timeout: .seconds(5)) { heard.sinks.contains("after-reconnect") })
        task.cancel()
        await writer.close()
        await listening.close()
    }

    final class Heard: Sendable {
        private let state = Mutex<[String]>([])
        func add(_ sink: String) { state.withLock { $0.append(sink) } }
        var sinks: [String] { state.withLock { $0 } }
    }

    @Test func retentionPurgesInBatchesAndKeepsUnfinishedWork() async throws {
        let url = try TestPostgres.createDatabase()
        let clock = ManualClock()
        let store = try await openTestStore(url, fixedClock: clock)
        let t = fixture(clock)
        for i in 0..<2_500 { _ = try await store.insert(t.event("evt_\(i)"), deliveries: []) }
        _ = try await store.insert(t.event("evt_open"), deliveries: [t.delivery("dlv_open", event: "evt_open", expiresIn: 9_999_999)])
        clock.advance(by: .seconds(86_400 * 8))
        #expect(try await store.purge(olderThan: .seconds(86_400 * 7)) == 2_500)
        #expect(try TestPostgres.psql(url, "SELECT string_agg(id, ',') FROM herald.events") == "evt_open")
        await store.close()
    }
}
