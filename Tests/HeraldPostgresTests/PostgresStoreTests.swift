import Foundation
import HeraldCore
import HeraldPostgres
import HeraldTesting
import Logging
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
