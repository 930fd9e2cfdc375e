import Foundation
import GRDB
@testable import HeraldSQLite
import HeraldTesting
import Synchronization
import Testing

@Suite("Group commit")
struct BatchWriterTests {
    struct Refused: Error {}

    /// What the writes saw: the transaction each ran in (by its date), and whether the leader began.
    final class Seen: Sendable {
        let transactions = Mutex<[String: Date]>([:])
        let leaderStarted = Atomic<Bool>(false)
    }

    /// Writes that queue behind a slow one commit together in the next transaction. One of them
    /// that fails half-way (after its first row) is undone alone, as is one that breaks a
    /// constraint; the others of that batch are kept, and every caller hears its own outcome.
    @Test func aFailingWriteIsUndoneAloneInsideItsBatch() async throws {
        let (pool, writer, seen, leader) = try await Self.writerHeldByALeader()
        let outcomes = await withTaskGroup(of: (String, String).self) { group in
            for name in (1...12).map({ "w\($0)" }) {
                group.addTask {
                    do {
                        try await writer.write { db in
                            try db.execute(sql: "INSERT INTO t VALUES (?)", arguments: [name])
                            let date = try db.transactionDate
                            seen.transactions.withLock { $0[name] = date }
                            if name == "w5" { throw Refused() }
                            if name == "w9" { try db.execute(sql: "INSERT INTO t VALUES ('w1')") }
                        }
                        return (name, "ok")
                    } catch is Refused {
                        return (name, "refused")
                    } catch let error as DatabaseError {
                        return (name, error.resultCode == .SQLITE_CONSTRAINT ? "constraint" : "\(error.resultCode)")
                    } catch {
                        return (name, "\(error)")
                    }
                }
            }
            var outcomes: [String: String] = [:]
            for await (name, outcome) in group { outcomes[name] = outcome }
            return outcomes
        }
        try await leader.value

        #expect(outcomes["w5"] == "refused")
        #expect(outcomes["w9"] == "constraint")
        #expect(outcomes.filter { $0.value == "ok" }.count == 10)
        let stored = try await pool.read { try String.fetchAll($0, sql: "SELECT x FROM t ORDER BY x") }
        #expect(stored == ["leader", "w1", "w10", "w11", "w12", "w2", "w3", "w4", "w6", "w7", "w8"], "w5's and w9's own rows are gone")
        let dates = seen.transactions.withLock { $0 }
        let kept = Set(outcomes.filter { $0.value == "ok" }.compactMap { dates[$0.key] })
        #expect(kept.count == 1, "the ten writes queued behind the leader that succeed commit in one transaction")
        #expect(kept.first != dates["leader"])
    }

    /// Half of a batch failing: each failing write hears its own error, every other is stored
    /// (past three failures the rest of the batch commits one by one).
    @Test func manyFailingWritesInOneBatch() async throws {
        let (pool, writer, _, leader) = try await Self.writerHeldByALeader()
        let failures = await withTaskGroup(of: (Int, Bool).self) { group in
            for n in 1...12 {
                group.addTask {
                    do {
                        try await writer.write { db in
                            try db.execute(sql: "INSERT INTO t VALUES (?)", arguments: ["w\(n)"])
                            if n.isMultiple(of: 2) { throw Refused() }
                        }
                        return (n, false)
                    } catch {
                        return (n, error is Refused)
                    }
                }
            }
            var failed: Set<Int> = []
            for await (n, refused) in group where refused { failed.insert(n) }
            return failed
        }
        try await leader.value
        #expect(failures == [2, 4, 6, 8, 10, 12])
        let stored = try await pool.read { try String.fetchAll($0, sql: "SELECT x FROM t ORDER BY x") }
        #expect(stored == ["leader", "w1", "w11", "w3", "w5", "w7", "w9"])
    }

    /// Writes that need no sync of their own (a delivery's result) skip it only in a batch of
    /// their own kind: queued with a durable write, they commit with it at FULL; alone, at
    /// NORMAL; and the connection is FULL again after them, for the next durable write and for
    /// whatever else commits on it.
    @Test func onlyABatchOfRelaxedWritesSkipsTheSync() async throws {
        let (pool, writer, _, leader) = try await Self.writerHeldByALeader()
        let level = { @Sendable (db: Database) in try String.fetchOne(db, sql: "PRAGMA synchronous") ?? "?" }
        let mixed = await withTaskGroup(of: String.self) { group in
            group.addTask { (try? await writer.write(durable: false) { db in try level(db) }) ?? "failed" }
            group.addTask { (try? await writer.write { db in try level(db) }) ?? "failed" }
            group.addTask { (try? await writer.write(durable: false) { db in try level(db) }) ?? "failed" }
            return await group.reduce(into: []) { $0.append($1) }
        }
        try await leader.value
        #expect(mixed == ["2", "2", "2"], "queued behind the leader, the three commit in one batch, which holds a durable write")

        let (_, relaxedWriter, _, secondLeader) = try await Self.writerHeldByALeader()
        let relaxed = await withTaskGroup(of: String.self) { group in
            for _ in 0..<3 { group.addTask { (try? await relaxedWriter.write(durable: false) { db in try level(db) }) ?? "failed" } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        try await secondLeader.value
        #expect(relaxed == ["1", "1", "1"], "a batch of relaxed writes only commits at NORMAL")

        #expect(try await writer.write(durable: false) { db in try level(db) } == "1")
        #expect(try await pool.writeWithoutTransaction { db in try level(db) } == "2", "FULL again after a relaxed batch")
        #expect(try await writer.write { db in try level(db) } == "2")
    }

    /// A write hears that its statements ran before its transaction commits: once, with what its
    /// body returned, only when every write of the batch ran (a failing one is taken out and the
    /// rest run again first), and while another connection cannot see the batch yet.
    @Test func beforeCommitRunsOnceWhenTheBatchRanAndBeforeItCommits() async throws {
        let (pool, writer, _, leader) = try await Self.writerHeldByALeader()
        let other = try DatabaseQueue(path: pool.path)
        let heard = Locked<[String: [Int]]>([:])
        let outcomes = await withTaskGroup(of: (String, Bool).self) { group in
            for name in (1...6).map({ "w\($0)" }) {
                group.addTask {
                    do {
                        let value = try await writer.write(beforeCommit: { (value: String) in
                            let visible = (try? other.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM t WHERE x = ?", arguments: [value]) }) ?? nil
                            heard.update { $0[value, default: []].append(visible ?? -1) }
                        }) { db in
                            try db.execute(sql: "INSERT INTO t VALUES (?)", arguments: [name])
                            if name == "w4" { throw Refused() }
                            return name
                        }
                        return (name, value == name)
                    } catch {
                        return (name, false)
                    }
                }
            }
            return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        try await leader.value
        #expect(outcomes == ["w1": true, "w2": true, "w3": true, "w4": false, "w5": true, "w6": true])
        #expect(heard.current == ["w1": [0], "w2": [0], "w3": [0], "w5": [0], "w6": [0]],
                "each write that stands hears it once, before its row can be read elsewhere; the refused one never")
        let stored = try await other.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM t") }
        #expect(stored == 6, "the leader and the five")
    }

    /// A batch writer over a new table `t` whose first write (the row `leader`) holds it for
    /// 0.3 s, so that the writes started meanwhile queue into one batch.
    static func writerHeldByALeader() async throws -> (DatabasePool, BatchWriter, Seen, Task<Void, any Error>) {
        let path = TempDirectory.make().appendingPathComponent("batch.db").path
        let pool = try DatabasePool(path: path)
        try await pool.write { try $0.execute(sql: "CREATE TABLE t (x TEXT PRIMARY KEY)") }
        // As the store opens it: the committing connection at FULL.
        try await pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }
        let writer = BatchWriter(pool)
        let seen = Seen()
        let leader = Task {
            try await writer.write { db in
                seen.leaderStarted.store(true, ordering: .sequentiallyConsistent)
                try db.execute(sql: "INSERT INTO t VALUES ('leader')")
                let date = try db.transactionDate
                seen.transactions.withLock { $0["leader"] = date }
                Thread.sleep(forTimeInterval: 0.3)
            }
        }
        while !seen.leaderStarted.load(ordering: .sequentiallyConsistent) { try await Task.sleep(for: .milliseconds(5)) }
        return (pool, writer, seen, leader)
    }
}
