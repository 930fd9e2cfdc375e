import Foundation
import HeraldCore
import HeraldSQLite
import HeraldTesting
import Testing

/// The shared store contract (`OutboxStoreContract`), run against each implementation.
@Suite("OutboxStore contract")
struct OutboxStoreContractTests {
    @Test(arguments: OutboxStoreContract.Case.allCases)
    func memory(_ check: OutboxStoreContract.Case) async throws {
        try await OutboxStoreContract.run(check) { clock in InMemoryOutboxStore(clock: clock) }
    }

    @Test(arguments: OutboxStoreContract.Case.allCases)
    func sqlite(_ check: OutboxStoreContract.Case) async throws {
        try await OutboxStoreContract.run(check) { clock in
            try SQLiteOutboxStore(path: TempDirectory.make().appendingPathComponent("herald.db").path, clock: clock)
        }
    }
}

enum TempDirectory {
    static func make() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("herald-test-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
