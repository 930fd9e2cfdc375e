import Foundation
import HeraldCore
import HeraldSQLite
import HeraldTesting
import Testing

@Suite("SQLite store")
struct SQLiteStoreTests {
    let t = OutboxStoreContract.Fixture(t0: Date(timeIntervalSince1970: 1_800_000_000))

    @Test func createsFoldersAndKeepsDataAcrossReopen() async throws {
        let path = TempDirectory.make().appendingPathComponent("a/b/herald.db").path
        do {
            let store = try SQLiteOutboxStore(path: path)
            _ = try await store.insert(t.event("evt_1", sourceID: "SM1"), deliveries: [t.delivery("dlv_1", event: "evt_1")])
        }
        let reopened = try SQLiteOutboxStore(path: path)
        #expect(try await reopened.insert(t.event("evt_2", sourceID: "SM1"), deliveries: []) == .duplicate(eventID: "evt_1"),
                "the MessageSid dedupe holds across restarts")
        #expect(try await reopened.deliveries(DeliveryFilter()).map(\.id) == ["dlv_1"])
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }

    @Test func usesWALAndFullSync() throws {
        let path = TempDirectory.make().appendingPathComponent("herald.db").path
        _ = try SQLiteOutboxStore(path: path)
        #expect(try sqlite(path, "PRAGMA journal_mode") == "wal")
        #expect(try sqlite(path, "PRAGMA application_id") == "\(0x4852_4C44)")
    }

    @Test func refusesAnotherApplicationsDatabaseAndLeavesItAlone() throws {
        let path = TempDirectory.make().appendingPathComponent("other.db").path
        _ = try sqlite(path, "CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('ana');")
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            _ = try SQLiteOutboxStore(path: path)
            Issue.record("a foreign database was opened")
        } catch {
            #expect("\(error)" == "\(path) is not a Herald database (it holds other tables); nothing was changed")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
    }

    @Test func refusesAFileThatIsNotSQLite() throws {
        let path = TempDirectory.make().appendingPathComponent("notes.txt").path
        try Data("these are my notes, not a database\n".utf8).write(to: URL(fileURLWithPath: path))
        do {
            _ = try SQLiteOutboxStore(path: path)
            Issue.record("a text file was opened")
        } catch {
            #expect("\(error)".hasPrefix("\(path) is not a Herald database"))
            #expect("\(error)".hasSuffix("nothing was changed"))
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "these are my notes, not a database\n")
    }

    @Test func refusesANewerSchema() throws {
        let path = TempDirectory.make().appendingPathComponent("herald.db").path
        _ = try SQLiteOutboxStore(path: path)
        _ = try sqlite(path, "INSERT INTO grdb_migrations VALUES ('v9: from the future');")
        do {
            _ = try SQLiteOutboxStore(path: path)
            Issue.record("a newer schema was opened")
        } catch {
            #expect("\(error)" == "\(path) was written by a newer Herald (unknown schema version); nothing was changed")
        }
    }

    /// A state Herald never writes is an error to read, never a guess (it used to read as failed).
    @Test func anUnknownStateIsReportedNotGuessed() async throws {
        let path = TempDirectory.make().appendingPathComponent("herald.db").path
        let store = try SQLiteOutboxStore(path: path)
        _ = try await store.insert(t.event("evt_1"), deliveries: [t.delivery("dlv_1", event: "evt_1")])
        try sqlite(path, "UPDATE deliveries SET state = 'paused' WHERE id = 'dlv_1';")
        await #expect(throws: OutboxStoreError.corrupt("delivery dlv_1 has the unknown state 'paused'")) {
            _ = try await store.delivery(id: "dlv_1")
        }
        await #expect(throws: OutboxStoreError.self) { _ = try await store.deliveries(DeliveryFilter()) }
    }

    /// Runs the sqlite3 command-line tool (Debian's sqlite3), independent of our code.
    @discardableResult
    func sqlite(_ path: String, _ sql: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = [path, sql]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
