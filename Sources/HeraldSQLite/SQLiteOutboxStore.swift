import Foundation
import GRDB
import HeraldCore

/// The durable outbox on SQLite: WAL mode, `synchronous = FULL` (a committed event survives a
/// power cut), writes grouped into shared transactions by `BatchWriter`.
public final class SQLiteOutboxStore: OutboxStore {
    public struct OpenError: Error, CustomStringConvertible {
        public var description: String
    }

    public let path: String
    private let pool: DatabasePool
    private let writer: BatchWriter
    private let clock: any HeraldClock
    private let wakeupHub = StoreWakeups()
    /// The lock file's descriptor while this store serves exclusively (-1: not exclusive).
    private let lockDescriptor: Int32

    /// Opens (creating folders and file when needed) and migrates the database. A file that is not
    /// a Herald database, or one written by a newer Herald, is refused and left untouched.
    /// `exclusive`: the store of a serving process, which recovers what "its" previous run left in
    /// flight — so no other process may serve from the same file at the same time. It holds an
    /// advisory lock on `<path>.lock` for its lifetime (released by the kernel if it dies), and
    /// opening fails while another process holds it. Readers (`herald deliveries`) need no lock.
    public init(path: String, clock: any HeraldClock = SystemClock(), exclusive: Bool = false) throws {
        self.path = path
        self.clock = clock
        // The database and its WAL hold every body and code: the folder Herald creates is the
        // owner's alone, and the file is created 0600 before SQLite opens it, so it is private
        // from its first byte whatever the caller's umask (a umask only takes bits away), and
        // SQLite gives the -wal and -shm files the database file's mode.
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty, !FileManager.default.fileExists(atPath: directory) {
            let parent = (directory as NSString).deletingLastPathComponent
            if !parent.isEmpty { try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) }
            guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
                throw OpenError(description: "cannot create the folder \(directory): \(String(cString: strerror(errno)))")
            }
        }
        lockDescriptor = exclusive ? try Self.lock(path + ".lock") : -1
        if FileManager.default.fileExists(atPath: path) {
            try Self.inspect(path)
        } else {
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd >= 0 { close(fd) } else if errno != EEXIST {
                throw OpenError(description: "cannot create the database \(path): \(String(cString: strerror(errno)))")
            }
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        // Reads are the admin API and the sweep: two readers are plenty, and each costs cache memory.
        configuration.maximumReaderCount = 2
        configuration.prepareDatabase { db in
            try db.run("PRAGMA foreign_keys = ON")
            // Checkpoints (which fsync the database file) run from the maintenance sweep rather
            // than inside whichever webhook's commit crosses the threshold; this high limit is
            // only the safety net.
            try db.run("PRAGMA wal_autocheckpoint = 20000")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            // After the pool is open, not in `prepareDatabase`: when GRDB turns WAL on it sets
            // `synchronous = NORMAL` on the writer, after `prepareDatabase` ran, and NORMAL in WAL
            // mode commits without an fsync — an answered webhook could be lost in a power cut.
            // FULL syncs the WAL at every commit. Only the writer's setting matters (readers do not
            // commit); it is read back so that a change in GRDB cannot drop it unnoticed.
            try pool.writeWithoutTransaction { try $0.run("PRAGMA synchronous = FULL") }
            let level = try Self.pragma("synchronous", on: pool)
            guard level == "2" else {
                throw OpenError(description: "cannot open the database \(path): SQLite refused synchronous = FULL (it reports \(level ?? "nothing"))")
            }
            try SQLiteSchema.migrator.migrate(pool)
        } catch let error as DatabaseError {
            throw OpenError(description: "cannot open the database \(path): \(error.message ?? "SQLite error \(error.resultCode)")")
        }
        // A file an older Herald created with a wider mode is narrowed (its -wal and -shm follow
        // when SQLite next creates them).
        for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
            try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file)
        }
        writer = BatchWriter(pool)
    }

    deinit {
        if lockDescriptor >= 0 { close(lockDescriptor) }
    }

    /// A pragma's value on the connection that commits (pragmas such as `synchronous` are per
    /// connection).
    private static func pragma(_ name: String, on pool: DatabasePool) throws -> String? {
        try pool.writeWithoutTransaction { try $0.stringValue("PRAGMA \(name)") }
    }

    /// For tests: the durability settings as the committing connection has them.
    func writerPragma(_ name: String) throws -> String? {
        try Self.pragma(name, on: pool)
    }

    private static func lock(_ lockPath: String) throws -> Int32 {
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw OpenError(description: "cannot open the lock file \(lockPath): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno == EWOULDBLOCK
                ? "another herald serve is using this outbox (it holds \(lockPath)); stop it first, or give this one its own storage"
                : "cannot lock \(lockPath): \(String(cString: strerror(errno)))"
            close(fd)
            throw OpenError(description: reason)
        }
        return fd
    }

    /// Read-only look at an existing file before anything writes to it.
    private static func inspect(_ path: String) throws {
        var configuration = Configuration()
        configuration.readonly = true
        let queue: DatabaseQueue
        let facts: (applicationID: Int32, tables: Int, superseded: Bool)
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
            facts = try queue.read { db in
                let id = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
                let tables = try db.intValue("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'") ?? 0
                let superseded = id == SQLiteSchema.applicationID ? try SQLiteSchema.migrator.hasBeenSuperseded(db) : false
                return (id, tables, superseded)
            }
        } catch let error as DatabaseError {
            throw OpenError(description: "\(path) is not a Herald database (\(error.message ?? "not SQLite")); nothing was changed")
        }
        if facts.applicationID != SQLiteSchema.applicationID && facts.tables > 0 {
            throw OpenError(description: "\(path) is not a Herald database (it holds other tables); nothing was changed")
        }
        if facts.superseded {
            throw OpenError(description: "\(path) was written by a newer Herald (unknown schema version); nothing was changed")
        }
    }

    // MARK: Writes

    public func insert(_ event: Event, deliveries: [Delivery]) async throws -> InsertResult {
        try await insert(event, deliveries: deliveries, beforeCommit: { _ in })
    }

    /// `beforeCommit` runs on the writer's thread once the batch's statements all ran, before its commit.
    public func insert(_ event: Event, deliveries: [Delivery], beforeCommit: @escaping @Sendable (InsertResult) -> Void) async throws -> InsertResult {
        try await writer.write(beforeCommit: beforeCommit) { db in
            if let sourceID = event.sourceID,
               let existing = try db.stringValue("SELECT id FROM events WHERE source = ? AND source_id = ?", arguments: [event.source, sourceID]) {
                return .duplicate(eventID: existing)
            }
            try Self.insert(event, db)
            for delivery in deliveries { try Self.insert(delivery, db) }
            return .inserted
        }
    }

    public func now() -> Date { clock.now() }

    public func claimDue(sink: String, limit: Int, leaseFor: Duration) async throws -> ClaimBatch {
        let now = clock.now().timeIntervalSince1970
        let lease = now + leaseFor.seconds
        return try await writer.write { db in
            var batch = ClaimBatch()
            batch.expired = try String.fetchAll(db.cachedStatement(sql: """
                UPDATE deliveries SET state = 'expired', updated_at = ?1, last_error = COALESCE(last_error, 'expired before it could be sent')
                WHERE sink = ?2 AND state = 'pending' AND next_attempt_at <= ?1 AND expires_at <= ?1 RETURNING id
                """), arguments: [now, sink])
            if limit > 0 {
                let rows = try db.rows("""
                    UPDATE deliveries SET state = 'in_flight', attempts = attempts + 1, lease_until = ?1, updated_at = ?2
                    WHERE id IN (SELECT id FROM deliveries WHERE sink = ?3 AND state = 'pending' AND next_attempt_at <= ?2
                                 ORDER BY next_attempt_at LIMIT ?4)
                    RETURNING *
                    """, arguments: [lease, now, sink, limit])
                for row in rows {
                    let delivery = try Self.delivery(row)
                    guard let event = try Self.fetchEvent(db, id: delivery.eventID) else { continue }
                    batch.claimed.append(ClaimedDelivery(delivery: delivery, event: event))
                }
                batch.claimed.sort { $0.delivery.nextAttemptAt < $1.delivery.nextAttemptAt }
            }
            let next = try Double.fetchOne(db.cachedStatement(sql: """
                SELECT MIN(next_attempt_at) FROM deliveries WHERE sink = ? AND state = 'pending'
                """), arguments: [sink])
            batch.nextDueIn = next.map { Duration.milliseconds(saturating: (($0 - now) * 1000).rounded(.up)) }
            return batch
        }
    }

    /// Not durable on its own (`BatchWriter`): a result lost in a power cut means the delivery is
    /// sent again, never that a message is lost; it saves an `fsync` per result.
    public func complete(_ attempt: DeliveryAttempt, result: DeliveryResult) async throws -> Bool {
        let now = clock.now().timeIntervalSince1970
        return try await writer.write(durable: false) { db in
            try db.run("""
                UPDATE deliveries SET state = ?, lease_until = NULL, updated_at = ?,
                    last_error = COALESCE(?, last_error), next_attempt_at = COALESCE(?, next_attempt_at), receipt = COALESCE(?, receipt)
                WHERE id = ? AND state = 'in_flight' AND attempts = ?
                """, arguments: [result.next.rawValue, now, result.error, result.retryIn.map { now + $0.seconds }, result.receipt,
                                 attempt.deliveryID, attempt.number])
            guard db.changesCount == 1 else { return false }
            try db.run("""
                INSERT OR REPLACE INTO attempts (delivery_id, number, started_at, duration_ms, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [attempt.deliveryID, attempt.number, attempt.startedAt.timeIntervalSince1970, attempt.duration.seconds * 1000, attempt.outcome, attempt.detail])
            return true
        }
    }

    public func release(_ delivery: Delivery) async throws -> Bool {
        let now = clock.now().timeIntervalSince1970
        return try await writer.write { db in
            try db.run("""
                UPDATE deliveries SET state = 'pending', attempts = attempts - 1, lease_until = NULL, next_attempt_at = ?1, updated_at = ?1
                WHERE id = ?2 AND state = 'in_flight' AND attempts = ?3
                """, arguments: [now, delivery.id, delivery.attempts])
            return db.changesCount == 1
        }
    }

    public func recover() async throws -> Int {
        let now = clock.now().timeIntervalSince1970
        return try await writer.write { db in
            try db.run("UPDATE deliveries SET state = 'pending', lease_until = NULL, next_attempt_at = ?1, updated_at = ?1 WHERE state = 'in_flight'",
                       arguments: [now])
            return db.changesCount
        }
    }

    public func releaseExpiredLeases() async throws -> Set<String> {
        let now = clock.now().timeIntervalSince1970
        return try await writer.write { db in
            Set(try String.fetchAll(db.cachedStatement(sql: """
                UPDATE deliveries SET state = 'pending', lease_until = NULL, next_attempt_at = ?1, updated_at = ?1
                WHERE state = 'in_flight' AND lease_until < ?1 RETURNING sink
                """), arguments: [now]))
        }
    }

    public func failPending(outside sinks: Set<String>) async throws -> [String: Int] {
        let now = clock.now().timeIntervalSince1970
        return try await writer.write { db in
            let present = try String.fetchAll(db.cachedStatement(sql: "SELECT DISTINCT sink FROM deliveries WHERE state = 'pending'"))
            var failed: [String: Int] = [:]
            for sink in present where !sinks.contains(sink) {
                try db.run("UPDATE deliveries SET state = 'failed', last_error = ?, updated_at = ? WHERE sink = ? AND state = 'pending'",
                           arguments: [DeliveryRules.sinkRemoved(sink), now, sink])
                failed[sink] = db.changesCount
            }
            return failed
        }
    }

    public func retry(deliveryID: String, expiresIn: Duration) async throws -> Delivery? {
        let now = clock.now().timeIntervalSince1970
        let delivery = try await writer.write { db -> Delivery? in
            try db.run("""
                UPDATE deliveries SET state = 'pending', next_attempt_at = ?1, expires_at = MAX(expires_at, ?2), updated_at = ?1
                WHERE id = ?3 AND state IN ('failed', 'expired')
                """, arguments: [now, now + expiresIn.seconds, deliveryID])
            return db.changesCount == 1 ? try Self.fetchDelivery(db, id: deliveryID) : nil
        }
        if let delivery { wakeupHub.notify(delivery.sink) }
        return delivery
    }

    public func wakeups() -> AsyncStream<String> { wakeupHub.subscribe() }

    public func purge(olderThan age: Duration) async throws -> Int {
        let cutoff = clock.now().timeIntervalSince1970 - age.seconds
        return try await writer.write { db in
            try db.run("""
                DELETE FROM events WHERE received_at < ? AND NOT EXISTS (
                    SELECT 1 FROM deliveries d WHERE d.event_id = events.id AND d.state IN ('pending', 'in_flight'))
                """, arguments: [cutoff])
            return db.changesCount
        }
    }

    public func maintain() async throws {
        try await pool.writeWithoutTransaction { db in
            _ = try db.checkpoint(.passive)
        }
    }

    // MARK: Reads

    public func event(id: String) async throws -> StoredEvent? {
        try await pool.read { db in
            guard let event = try Self.fetchEvent(db, id: id) else { return nil }
            let deliveries = try db.rows("SELECT * FROM deliveries WHERE event_id = ? ORDER BY created_at, id", arguments: [id]).map { try Self.delivery($0) }
            let attempts = try db.rows("""
                SELECT a.* FROM attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.event_id = ? ORDER BY a.started_at, a.number
                """, arguments: [id]).map(Self.attempt)
            return StoredEvent(event: event, deliveries: deliveries, attempts: attempts)
        }
    }

    public func delivery(id: String) async throws -> Delivery? {
        try await pool.read { db in try Self.fetchDelivery(db, id: id) }
    }

    public func deliveries(_ filter: DeliveryFilter) async throws -> [Delivery] {
        try await pool.read { db in
            var clauses: [String] = []
            var arguments: StatementArguments = []
            if let state = filter.state { clauses.append("state = ?"); arguments += [state.rawValue] }
            if let sink = filter.sink { clauses.append("sink = ?"); arguments += [sink] }
            if let eventID = filter.eventID { clauses.append("event_id = ?"); arguments += [eventID] }
            let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            arguments += [filter.limit]
            return try db.rows("SELECT * FROM deliveries \(whereClause) ORDER BY created_at DESC, id DESC LIMIT ?", arguments: arguments).map { try Self.delivery($0) }
        }
    }

    public func events(_ filter: EventFilter) async throws -> [StoredEvent] {
        try await pool.read { db in
            var clauses: [String] = []
            var arguments: StatementArguments = []
            if let state = filter.state {
                clauses.append("EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.state = ?)")
                arguments += [state.rawValue]
            }
            if filter.unrouted { clauses.append("NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id)") }
            if let sink = filter.sink {
                clauses.append("EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.sink = ?)")
                arguments += [sink]
            }
            if let route = filter.route {
                clauses.append("(e.route = ? OR EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.route = ?))")
                arguments += [route, route]
            }
            if let since = filter.since { clauses.append("e.received_at >= ?"); arguments += [since.timeIntervalSince1970] }
            if let until = filter.until { clauses.append("e.received_at < ?"); arguments += [until.timeIntervalSince1970] }
            let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            arguments += [filter.limit]
            let events = try db.rows("SELECT e.* FROM events e \(whereClause) ORDER BY e.received_at DESC, e.id DESC LIMIT ?", arguments: arguments).map(Self.event)
            return try events.map { event in
                let deliveries = try db.rows("SELECT * FROM deliveries WHERE event_id = ? ORDER BY created_at, id", arguments: [event.id]).map { try Self.delivery($0) }
                return StoredEvent(event: event, deliveries: deliveries, attempts: [])
            }
        }
    }

    /// Pending deliveries per sink; retractions (due only when their code expires) left out.
    public func pendingBySink() async throws -> [String: Int] {
        try await pool.read { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT sink, COUNT(*) AS n FROM deliveries WHERE state = 'pending' AND retracts IS NULL GROUP BY sink") {
                counts[row["sink"]] = row["n"]
            }
            return counts
        }
    }

    public func count(state: DeliveryState) async throws -> Int {
        try await pool.read { db in try db.intValue("SELECT COUNT(*) FROM deliveries WHERE state = ? AND retracts IS NULL", arguments: [state.rawValue]) ?? 0 }
    }

    // MARK: Rows

    private static func insert(_ event: Event, _ db: Database) throws {
        // Most messages have no media: their "[]" needs no JSONSerialization (every webhook's insert).
        let media = event.media.isEmpty ? "[]" : String(decoding: (try? JSONSerialization.data(withJSONObject: event.media)) ?? Data("[]".utf8), as: UTF8.self)
        try db.run("""
            INSERT INTO events (id, source, source_id, from_address, to_address, body, otp, otp_domain, app, route, received_at, media)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [event.id, event.source, event.sourceID, event.from, event.to, event.body, event.otp, event.otpDomain, event.app, event.route,
                             event.receivedAt.timeIntervalSince1970, media])
    }

    private static func insert(_ d: Delivery, _ db: Database) throws {
        try db.run("""
            INSERT INTO deliveries (id, event_id, sink, recipient, route, app, state, attempts, next_attempt_at, expires_at,
                                    lease_until, last_error, receipt, retracts, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [d.id, d.eventID, d.sink, d.recipient, d.route, d.app, d.state.rawValue, d.attempts,
                             d.nextAttemptAt.timeIntervalSince1970, d.expiresAt.timeIntervalSince1970, d.leaseUntil?.timeIntervalSince1970,
                             d.lastError, d.receipt, d.retracts, d.createdAt.timeIntervalSince1970, d.updatedAt.timeIntervalSince1970])
    }

    private static func fetchEvent(_ db: Database, id: String) throws -> Event? {
        try db.row("SELECT * FROM events WHERE id = ?", arguments: [id]).map(event)
    }

    private static func fetchDelivery(_ db: Database, id: String) throws -> Delivery? {
        try db.row("SELECT * FROM deliveries WHERE id = ?", arguments: [id]).map { try delivery($0) }
    }

    private static func date(_ row: Row, _ column: String) -> Date {
        Date(timeIntervalSince1970: row[column])
    }

    private static func event(_ row: Row) -> Event {
        let mediaText: String = row["media"]
        let media = mediaText == "[]" ? [] : (try? JSONSerialization.jsonObject(with: Data(mediaText.utf8))) as? [String] ?? []
        return Event(id: row["id"], source: row["source"], sourceID: row["source_id"], from: row["from_address"], to: row["to_address"],
                     body: row["body"], otp: row["otp"], otpDomain: row["otp_domain"], app: row["app"], route: row["route"], receivedAt: date(row, "received_at"), media: media)
    }

    private static func delivery(_ row: Row) throws -> Delivery {
        let lease: Double? = row["lease_until"]
        let stateText: String = row["state"]
        guard let state = DeliveryState(rawValue: stateText) else {
            throw OutboxStoreError.corrupt("delivery \(row["id"] as String? ?? "?") has the unknown state '\(stateText.prefix(40))'")
        }
        return Delivery(
            id: row["id"], eventID: row["event_id"], sink: row["sink"], recipient: row["recipient"], route: row["route"], app: row["app"],
            state: state, attempts: row["attempts"], nextAttemptAt: date(row, "next_attempt_at"),
            expiresAt: date(row, "expires_at"), leaseUntil: lease.map(Date.init(timeIntervalSince1970:)), lastError: row["last_error"],
            receipt: row["receipt"], retracts: row["retracts"], createdAt: date(row, "created_at"), updatedAt: date(row, "updated_at")
        )
    }

    private static func attempt(_ row: Row) -> DeliveryAttempt {
        let ms: Double = row["duration_ms"]
        return DeliveryAttempt(deliveryID: row["delivery_id"], number: row["number"], startedAt: date(row, "started_at"),
                               duration: .milliseconds(saturating: ms), outcome: row["outcome"], detail: row["detail"])
    }
}

/// Statements compiled once and reused: parsing (and GRDB's authorizer) was a large share of the
/// write path's time when every call compiled its SQL anew.
extension Database {
    func run(_ sql: String, arguments: StatementArguments = []) throws {
        try cachedStatement(sql: sql).execute(arguments: arguments)
    }

    func rows(_ sql: String, arguments: StatementArguments = []) throws -> [Row] {
        try Row.fetchAll(cachedStatement(sql: sql), arguments: arguments)
    }

    func row(_ sql: String, arguments: StatementArguments = []) throws -> Row? {
        try Row.fetchOne(cachedStatement(sql: sql), arguments: arguments)
    }

    func stringValue(_ sql: String, arguments: StatementArguments = []) throws -> String? {
        try String.fetchOne(cachedStatement(sql: sql), arguments: arguments)
    }

    func intValue(_ sql: String, arguments: StatementArguments = []) throws -> Int? {
        try Int.fetchOne(cachedStatement(sql: sql), arguments: arguments)
    }
}
