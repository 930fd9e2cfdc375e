import Foundation
import GRDB
import HeraldCore
@testable import HeraldSQLite
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

    /// The ingest path starts deliveries when the insert says so: before its commit, so that
    /// another connection cannot read the event yet; a repeat hears "duplicate".
    @Test func theInsertSaysItStandsBeforeItCommits() async throws {
        let path = TempDirectory.make().appendingPathComponent("herald.db").path
        let store = try SQLiteOutboxStore(path: path)
        let other = try DatabaseQueue(path: path)
        let heard = Locked<[(InsertResult, Int?)]>([])
        for id in ["evt_1", "evt_2"] {
            _ = try await store.insert(t.event(id, sourceID: "SM1"), deliveries: [t.delivery("dlv_\(id)", event: id)]) { result in
                let readable = try? other.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM events WHERE id = 'evt_1'") }
                heard.update { $0.append((result, readable ?? nil)) }
            }
        }
        let seen = heard.current
        #expect(seen.map(\.0) == [.inserted, .duplicate(eventID: "evt_1")])
        #expect(seen.map(\.1) == [0, 1], "not readable elsewhere until the commit")
    }

    /// The WAL holds every body and code: the folder is 0700 and the database, -wal and -shm are
    /// 0600 from the start, with the usual umask of 022.
    @Test func theOutboxIsTheOwnersAloneFromTheFirstByte() async throws {
        let folder = TempDirectory.make().appendingPathComponent("data")
        let path = folder.appendingPathComponent("herald.db").path
        let store = try SQLiteOutboxStore(path: path)
        _ = try await store.insert(t.event("evt_1"), deliveries: [t.delivery("dlv_1", event: "evt_1")])
        func mode(_ path: String) throws -> Int? { try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int }
        #expect(try mode(folder.path) == 0o700)
        for file in [path, path + "-wal", path + "-shm"] {
            #expect(FileManager.default.fileExists(atPath: file), "\(file)")
            let actual = try mode(file) ?? 0
            #expect(actual == 0o600, "\(file): \(String(actual, radix: 8))")
        }
    }

    @Test func usesWALAndFullSync() throws {
        let path = TempDirectory.make().appendingPathComponent("herald.db").path
        let store = try SQLiteOutboxStore(path: path)
        #expect(try sqlite(path, "PRAGMA journal_mode") == "wal")
        #expect(try sqlite(path, "PRAGMA application_id") == "\(0x4852_4C44)")
        // Per connection, so asked of the one that commits: 2 is FULL (GRDB leaves 1, NORMAL,
        // which in WAL mode commits without an fsync). Reopening keeps it.
        #expect(try store.writerPragma("synchronous") == "2")
        #expect(try SQLiteOutboxStore(path: path, exclusive: false).writerPragma("synchronous") == "2")
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

    /// A database written by Herald 1 (schema v1) opens, migrates, and keeps its rows.
    @Test func aHerald1DatabaseIsMigrated() async throws {
        let path = TempDirectory.make().appendingPathComponent("herald.db").path
        // The v1 schema exactly as Herald 1 created it, with one event and one pending delivery.
        try sqlite(path, """
            PRAGMA application_id = \(0x4852_4C44);
            PRAGMA journal_mode = WAL;
            CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
            INSERT INTO grdb_migrations VALUES ('v1: events, deliveries, attempts');
            CREATE TABLE events (id TEXT PRIMARY KEY NOT NULL, source TEXT NOT NULL, source_id TEXT, from_address TEXT NOT NULL,
                to_address TEXT, body TEXT NOT NULL, otp TEXT, app TEXT, route TEXT, received_at REAL NOT NULL, media TEXT NOT NULL DEFAULT '[]');
            CREATE UNIQUE INDEX events_source_id ON events(source, source_id) WHERE source_id IS NOT NULL;
            CREATE INDEX events_received_at ON events(received_at);
            CREATE TABLE deliveries (id TEXT PRIMARY KEY NOT NULL, event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
                sink TEXT NOT NULL, recipient TEXT, route TEXT, app TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at REAL NOT NULL, expires_at REAL NOT NULL, lease_until REAL, last_error TEXT, created_at REAL NOT NULL,
                updated_at REAL NOT NULL);
            CREATE INDEX deliveries_event ON deliveries(event_id);
            CREATE INDEX deliveries_due ON deliveries(state, next_attempt_at);
            CREATE INDEX deliveries_sink ON deliveries(sink, state);
            CREATE TABLE attempts (delivery_id TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE, number INTEGER NOT NULL,
                started_at REAL NOT NULL, duration_ms REAL NOT NULL, outcome TEXT NOT NULL, detail TEXT, PRIMARY KEY (delivery_id, number));
            INSERT INTO events VALUES ('evt_old', 'twilio', 'SMold', '+15550001111', NULL, 'code 123456', '123456', NULL, 'all', 1800000000, '[]');
            INSERT INTO deliveries VALUES ('dlv_old', 'evt_old', 'slack', NULL, 'all', NULL, 'pending', 0, 1800000000, 1800000600, NULL, NULL,
                1800000000, 1800000000);
            """)
        let clock = ManualClock()
        let store = try SQLiteOutboxStore(path: path, clock: clock)
        let stored = try #require(try await store.event(id: "evt_old"))
        #expect(stored.event.otp == "123456")
        #expect(stored.event.otpDomain == nil)
        #expect(stored.deliveries.map(\.receipt) == [nil])
        #expect(stored.deliveries.map(\.retracts) == [nil], "an old row is a delivery, not a retraction")
        let batch = try await store.claimDue(sink: "slack", limit: 10, leaseFor: .seconds(30))
        #expect(batch.claimed.map(\.delivery.id) == ["dlv_old"], "the old pending work is claimed like new work")
        #expect(try sqlite(path, "SELECT COUNT(*) FROM grdb_migrations") == "4")
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
