import Foundation
import HeraldCore
import Logging
import NIOSSL
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The outbox several Herald processes share, on PostgreSQL (DESIGN → "Scaling out").
///
/// - Every statement is one short autocommit statement: no transaction is open while a sink is
///   called. A webhook is one statement (event, deliveries, and a NOTIFY for what stayed pending).
/// - Claims take due rows with `FOR UPDATE SKIP LOCKED`; results are fenced by the attempt number.
/// - Deliveries the receiving process can start at once are stored already leased to it
///   (`lease_owner` = this node), so they need no claim and no NOTIFY.
/// - Work left pending is announced on channel `herald_ready` (payload: the sink); a dedicated
///   connection LISTENs, reconnecting with backoff, and the maintenance sweep polls as a fallback.
/// - One clock: lease, due and expiry times are compared with the database's `now()`.
/// - At start a serving process takes an advisory lock on its node id (a second live process
///   with the same id is refused) and releases only what its own previous run left in flight;
///   every process reaps expired leases, so a dead process's work is finished by the others.
public final class PostgresOutboxStore: OutboxStore, Service {
    public struct OpenError: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// The channel work is announced on.
    static let channel = "herald_ready"

    public let storage: PostgresStorage
    public let nodeID: String
    /// How long one statement may take, waiting for a connection included.
    let statementDeadline: Duration = .seconds(5)
    private let client: PostgresClient
    private let time: StoreTime
    private let logger: Logger
    private let wakeupHub = StoreWakeups()
    private let tasks = Mutex<[Task<Void, Never>]>([])
    /// The listener's connection, for `close()` (and tests that cut it).
    private let listenerConnection = Mutex<PostgresConnection?>(nil)
    private let completionBatcher = Mutex<Batcher<CompletionRow, Bool>?>(nil)
    private let insertBatcher = Mutex<Batcher<EventRow, Bool>?>(nil)
    private var inserts: Batcher<EventRow, Bool> {
        insertBatcher.withLock { current in
            if let current { return current }
            let batcher = Batcher<EventRow, Bool> { [unowned self] rows in try await self.writeEvents(rows) }
            current = batcher
            return batcher
        }
    }
    private var completions: Batcher<CompletionRow, Bool> {
        completionBatcher.withLock { current in
            if let current { return current }
            let batcher = Batcher<CompletionRow, Bool> { [unowned self] rows in try await self.writeCompletions(rows) }
            current = batcher
            return batcher
        }
    }

    private init(storage: PostgresStorage, nodeID: String, client: PostgresClient, time: StoreTime, logger: Logger) {
        self.storage = storage
        self.nodeID = nodeID
        self.client = client
        self.time = time
        self.logger = logger
    }

    /// Connects, creates or migrates the schema, and — for a serving process — takes the node
    /// lock and starts listening for announced work.
    /// - Parameters:
    ///   - serving: `herald serve`: the node lock, LISTEN. Commands that only read or retry pass false.
    ///   - fixedClock: tests of the store contract only: "now" is this clock, not the database's.
    public static func open(
        _ storage: PostgresStorage, nodeID: String, serving: Bool, clock: any HeraldClock = SystemClock(),
        fixedClock: (any HeraldClock)? = nil, maxConnections: Int = 10, logger: Logger
    ) async throws -> PostgresOutboxStore {
        // The pool's own chatter (a connection closed as the store closes) stays below info.
        var poolLogger = logger
        poolLogger.logLevel = max(logger.logLevel, .warning)
        let client = PostgresClient(configuration: try clientConfiguration(storage, maxConnections: maxConnections), backgroundLogger: poolLogger)
        let store = PostgresOutboxStore(storage: storage, nodeID: nodeID, client: client, time: StoreTime(local: fixedClock ?? clock, fixed: fixedClock), logger: logger)
        store.tasks.withLock { $0.append(Task { await client.run() }) }
        do {
            try await store.migrate()
            if serving {
                let connection = try await store.connectListener()
                guard try await store.takeNodeLock(connection) else {
                    try? await connection.close()
                    throw OpenError(description: "another herald serve is running with server.node_id '\(nodeID)' on \(storage); give each process its own node_id")
                }
                store.tasks.withLock { $0.append(Task { await store.listen(first: connection) }) }
            }
        } catch {
            await store.close()
            if let error = error as? OpenError { throw error }
            throw OpenError(description: "cannot open the outbox \(storage): \(PostgresStoreError.describe(error))")
        }
        return store
    }

    /// Stops listening and closes every connection.
    public func close() async {
        let running = tasks.withLock { tasks -> [Task<Void, Never>] in
            defer { tasks.removeAll() }
            return tasks
        }
        for task in running.reversed() { task.cancel() }
        if let connection = listenerConnection.withLock({ $0 }) { try? await connection.close() }
        for task in running { await task.value }
    }

    /// As a service: the store stays open until the graceful shutdown reaches it (it is started
    /// before the engine and so stopped after it: the engine's last writes still land).
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }

    static func clientConfiguration(_ storage: PostgresStorage, maxConnections: Int) throws -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        switch storage.endpoint {
        case .tcp(let host, let port):
            let tls: PostgresClient.Configuration.TLS = switch storage.tls {
            case .disable: .disable
            case .prefer: .prefer(unverifiedTLS)
            case .require: .require(unverifiedTLS)
            case .verifyFull: .require(.makeClientConfiguration())
            }
            configuration = .init(host: host, port: port, username: storage.username, password: storage.password?.value, database: storage.database, tls: tls)
            if storage.tls == .verifyFull { configuration.options.tlsServerName = host }
        case .socket(let path):
            configuration = .init(unixSocketPath: path, username: storage.username, password: storage.password?.value, database: storage.database)
        }
        configuration.options.maximumConnections = maxConnections
        // A webhook waits for its write: a database that does not answer must fail it well
        // before the sender gives up (Twilio waits 15 s).
        configuration.options.connectTimeout = .seconds(3)
        configuration.options.additionalStartupParameters = [("application_name", "herald")]
        return configuration
    }

    private static var unverifiedTLS: TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none
        return tls
    }

    // MARK: Schema

    /// On a connection of its own (the pool's `run()` may not have started yet), released at the end.
    private func migrate() async throws {
        let connection = try await connect(application: "herald-migrate")
        do {
            let logger = self.logger
            _ = try await connection.query("SELECT pg_advisory_lock(\(PostgresSchema.lockSpace), \(PostgresSchema.migrationLock))", logger: logger)
            do {
                _ = try await connection.query("CREATE SCHEMA IF NOT EXISTS herald", logger: logger)
                _ = try await connection.query("CREATE TABLE IF NOT EXISTS herald.schema_version (version int NOT NULL)", logger: logger)
                var found = 0
                for try await version in try await connection.query("SELECT coalesce(max(version), 0) FROM herald.schema_version", logger: logger).decode(Int32.self) {
                    found = Int(version)
                }
                if found > PostgresSchema.version {
                    throw OpenError(description: "the outbox \(self.storage) was written by a newer Herald (schema version \(found); this Herald knows up to \(PostgresSchema.version)); nothing was changed")
                }
                for (index, statements) in PostgresSchema.migrations.enumerated() where index + 1 > found {
                    try await connection.withTransaction(logger: logger) { connection in
                        for sql in statements { _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger) }
                        _ = try await connection.query("INSERT INTO herald.schema_version (version) VALUES (\(Int32(index + 1)))", logger: logger)
                    }
                    logger.info("outbox schema migrated", metadata: ["schema.version": "\(index + 1)"])
                }
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(PostgresSchema.lockSpace), \(PostgresSchema.migrationLock))", logger: logger)
                throw error
            }
            _ = try await connection.query("SELECT pg_advisory_unlock(\(PostgresSchema.lockSpace), \(PostgresSchema.migrationLock))", logger: logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
    }

    private func connect(application: String) async throws -> PostgresConnection {
        var configuration: PostgresConnection.Configuration
        switch storage.endpoint {
        case .tcp(let host, let port):
            let tls: PostgresConnection.Configuration.TLS = switch storage.tls {
            case .disable: .disable
            case .prefer: .prefer(try NIOSSLContext(configuration: Self.unverifiedTLS))
            case .require: .require(try NIOSSLContext(configuration: Self.unverifiedTLS))
            case .verifyFull: .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
            configuration = .init(host: host, port: port, username: storage.username, password: storage.password?.value, database: storage.database, tls: tls)
            if storage.tls == .verifyFull { configuration.options.tlsServerName = host }
        case .socket(let path):
            configuration = .init(unixSocketPath: path, username: storage.username, password: storage.password?.value, database: storage.database)
        }
        configuration.options.connectTimeout = .seconds(3)
        configuration.options.additionalStartupParameters = [("application_name", application)]
        return try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
    }

    // MARK: Listening

    private func connectListener() async throws -> PostgresConnection {
        let connection = try await connect(application: "herald-listener")
        listenerConnection.withLock { $0 = connection }
        return connection
    }

    /// The node lock lives with the listener's session: it goes when the process dies.
    private func takeNodeLock(_ connection: PostgresConnection) async throws -> Bool {
        var taken = false
        let rows = try await connection.query("SELECT pg_try_advisory_lock(\(PostgresSchema.lockSpace), hashtext(\(nodeID)))", logger: logger)
        for try await value in rows.decode(Bool.self) { taken = value }
        return taken
    }

    /// LISTENs on `herald_ready` and wakes the engine per announced sink; after every (re)connect
    /// every lane looks in the store (work announced while nobody listened).
    private func listen(first: PostgresConnection) async {
        var connection: PostgresConnection? = first
        var backoff = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                let current: PostgresConnection
                if let connection { current = connection } else {
                    current = try await connectListener()
                    if try await !takeNodeLock(current) {
                        logger.error("the node lock is held by another process with the same server.node_id; give each process its own", metadata: ["node.id": "\(nodeID)"])
                    }
                    logger.notice("outbox listener reconnected")
                }
                connection = nil
                try await current.listen(on: Self.channel) { notifications in
                    backoff = .milliseconds(100)
                    self.wakeupHub.notify(StoreWakeups.everySink)
                    for try await notification in notifications {
                        self.wakeupHub.notify(notification.payload)
                    }
                }
                try? await current.close()
            } catch {
                if Task.isCancelled { return }
                logger.warning("outbox listener lost; reconnecting", metadata: ["error": "\(PostgresStoreError.describe(error))", "retry_in_ms": "\(Int(backoff.seconds * 1000))"])
            }
            if let dead = listenerConnection.withLock({ $0 }) { try? await dead.close() }
            connection = nil
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
    }

    // MARK: Writes

    public func now() async throws -> Date {
        let s = time.statement()
        var seconds = 0.0
        for row in try await rows(s.query("SELECT \(s.seconds(s.now))")) { seconds = try row.decode(Double.self) }
        return s.instant(seconds)
    }

    struct EventRow: Encodable, Sendable {
        var id: String
        var source: String
        var source_id: String?
        var from_address: String
        var to_address: String?
        var body: String
        var otp, otp_domain, app, route: String?
        var received_s: Double
        var media: [String]
        var deliveries: [DeliveryRow]
    }

    struct DeliveryRow: Encodable, Sendable {
        var id, sink, state: String
        var recipient, route, app, last_error, receipt, retracts: String?
        var attempts: Int
        var next_s, expires_s, created_s, updated_s: Double
        var lease_s: Double?
    }

    /// Webhooks stored together: those that arrive while a batch is being written go in the next
    /// one (one statement, one commit). Each caller is answered once its batch committed.
    public func insert(_ event: Event, deliveries: [Delivery]) async throws -> InsertResult {
        let localNow = time.local.now()
        let row = EventRow(
            id: event.id, source: event.source, source_id: event.sourceID, from_address: event.from, to_address: event.to, body: event.body,
            otp: event.otp, otp_domain: event.otpDomain, app: event.app, route: event.route,
            received_s: event.receivedAt.timeIntervalSince(localNow), media: event.media,
            deliveries: deliveries.map { d in
                DeliveryRow(id: d.id, sink: d.sink, state: d.state.rawValue, recipient: d.recipient, route: d.route, app: d.app,
                            last_error: d.lastError, receipt: d.receipt, retracts: d.retracts, attempts: d.attempts,
                            next_s: d.nextAttemptAt.timeIntervalSince(localNow), expires_s: d.expiresAt.timeIntervalSince(localNow),
                            created_s: d.createdAt.timeIntervalSince(localNow), updated_s: d.updatedAt.timeIntervalSince(localNow),
                            lease_s: d.state == .inFlight ? (d.leaseUntil ?? localNow).timeIntervalSince(localNow) : nil)
            })
        if try await inserts.submit(row) { return .inserted }
        // Lost to an event with the same source id (another webhook, maybe in another process, or
        // in the same batch): the unique key decided, and that event is the one to answer with.
        var existing: String?
        var q = time.statement()
        let lookup = "SELECT id FROM herald.events WHERE source = \(q.bind(event.source)) AND source_id = \(q.bind(event.sourceID))"
        for row in try await rows(q.query(lookup)) { existing = try row.decode(String.self) }
        guard let existing else { throw OutboxStoreError.corrupt("event \(event.id) was neither stored nor found as a duplicate") }
        return .duplicate(eventID: existing)
    }

    /// Returns, per event, whether it was stored (false: its source id was taken).
    private func writeEvents(_ events: [EventRow]) async throws -> [Bool] {
        var s = time.statement()
        let json = String(decoding: try JSONEncoder().encode(events), as: UTF8.self)
        let sql = Self.insertSQL(&s, json: json, nodeID: nodeID)
        var stored = Set<String>()
        for row in try await self.rows(Prepared<InsertKind>.self, s, sql) { stored.insert(try row.decode(String.self)) }
        return events.map { stored.contains($0.id) }
    }

    public func claimDue(sink: String, limit: Int, leaseFor: Duration) async throws -> ClaimBatch {
        var s = time.statement()
        let sql = Self.claimSQL(&s, sink: sink, limit: limit, leaseFor: leaseFor, nodeID: nodeID)
        var batch = ClaimBatch()
        for row in try await rows(Prepared<ClaimKind>.self, s, sql) {
            let r = row.makeRandomAccess()
            batch.expired = try r["expired_ids"].decode([String]?.self) ?? []
            let next = try r["next_due_s"].decode(Double?.self)
            batch.nextDueIn = next.map { Duration.milliseconds(saturating: max(0, ($0 * 1000).rounded(.up))) }
            guard try r["id"].decode(String?.self) != nil else { continue }
            batch.claimed.append(ClaimedDelivery(delivery: try Self.delivery(r, s), event: try Self.event(r, s)))
        }
        batch.claimed.sort { ($0.delivery.nextAttemptAt, $0.delivery.id) < ($1.delivery.nextAttemptAt, $1.delivery.id) }
        return batch
    }

    /// Results written together: attempts that end while a batch is being written go in the next
    /// one (one statement, one commit), each still fenced by its own attempt number.
    public func complete(_ attempt: DeliveryAttempt, result: DeliveryResult) async throws -> Bool {
        let localNow = time.local.now()
        let row = CompletionRow(id: attempt.deliveryID, number: attempt.number, state: result.next.rawValue, error: result.error,
                                receipt: result.receipt, detail: attempt.detail, retry_s: result.retryIn?.seconds,
                                started_s: attempt.startedAt.timeIntervalSince(localNow), duration_ms: attempt.duration.seconds * 1000,
                                outcome: attempt.outcome)
        return try await completions.submit(row)
    }

    private func writeCompletions(_ rows: [CompletionRow]) async throws -> [Bool] {
        var s = time.statement()
        let json = String(decoding: try JSONEncoder().encode(rows), as: UTF8.self)
        let sql = Self.completeSQL(&s, json: json, nodeID: nodeID)
        var applied = Set<String>()
        for row in try await self.rows(Prepared<CompleteKind>.self, s, sql) { applied.insert(try row.decode(String.self)) }
        return rows.map { applied.contains($0.id) }
    }

    public func release(_ delivery: Delivery) async throws -> Bool {
        var s = time.statement()
        let sql = """
            WITH r AS (
                UPDATE herald.deliveries SET state = 'pending', attempts = attempts - 1, lease_owner = NULL, lease_expires_at = NULL,
                       next_attempt_at = \(s.now), updated_at = \(s.now)
                WHERE id = \(s.bind(delivery.id)) AND state = 'in_flight' AND attempts = \(s.bind(delivery.attempts))
                RETURNING sink
            ), n AS MATERIALIZED (SELECT pg_notify('\(Self.channel)', sink) FROM r)
            SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM n)
            """
        return try await count(s.query(sql)) == 1
    }

    /// Only what this node's previous run left in flight: the other processes' claims are theirs
    /// (their leases say how long), and a dead process's come back through the reaper.
    public func recover() async throws -> Int {
        var s = time.statement()
        let sql = """
            WITH r AS (
                UPDATE herald.deliveries SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL,
                       next_attempt_at = \(s.now), updated_at = \(s.now)
                WHERE state = 'in_flight' AND lease_owner = \(s.bind(nodeID))
                RETURNING sink
            ), n AS MATERIALIZED (SELECT pg_notify('\(Self.channel)', p.sink) FROM (SELECT DISTINCT sink FROM r) p)
            SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM n)
            """
        return try await count(s.query(sql))
    }

    /// The reaper every process runs: leases that ran out (a process died or stalled) go back to
    /// pending, announced so whoever has room takes them. Safe to run in every process at once.
    public func releaseExpiredLeases() async throws -> Set<String> {
        let s = time.statement()
        let sql = """
            WITH stale AS MATERIALIZED (
                SELECT id FROM herald.deliveries WHERE state = 'in_flight' AND lease_expires_at < \(s.now)
                ORDER BY lease_expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED
            ), r AS (
                UPDATE herald.deliveries d SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL,
                       next_attempt_at = \(s.now), updated_at = \(s.now)
                FROM stale WHERE d.id = stale.id
                RETURNING d.sink
            ), n AS MATERIALIZED (
                SELECT p.sink, pg_notify('\(Self.channel)', p.sink) FROM (SELECT DISTINCT sink FROM r) p
            )
            SELECT sink FROM n
            """
        var sinks = Set<String>()
        for row in try await rows(s.query(sql)) { sinks.insert(try row.decode(String.self)) }
        return sinks
    }

    public func failPending(outside sinks: Set<String>) async throws -> [String: Int] {
        var s = time.statement()
        let present = "SELECT DISTINCT sink FROM herald.deliveries WHERE state = 'pending' AND NOT (sink = ANY(\(s.bind(Array(sinks)))))"
        var outside: [String] = []
        for row in try await rows(s.query(present)) { outside.append(try row.decode(String.self)) }
        var failed: [String: Int] = [:]
        for sink in outside {
            var u = time.statement()
            let sql = """
                WITH f AS (
                    UPDATE herald.deliveries SET state = 'failed', last_error = \(u.bind(DeliveryRules.sinkRemoved(sink))), updated_at = \(u.now)
                    WHERE sink = \(u.bind(sink)) AND state = 'pending' RETURNING 1
                )
                SELECT count(*) FROM f
                """
            failed[sink] = try await count(u.query(sql))
        }
        return failed
    }

    public func retry(deliveryID: String, expiresIn: Duration) async throws -> Delivery? {
        var s = time.statement()
        let sql = """
            WITH r AS (
                UPDATE herald.deliveries SET state = 'pending', next_attempt_at = \(s.now),
                       expires_at = greatest(expires_at, \(s.after(expiresIn))), updated_at = \(s.now)
                WHERE id = \(s.bind(deliveryID)) AND state IN ('failed', 'expired')
                RETURNING *
            ), n AS MATERIALIZED (SELECT pg_notify('\(Self.channel)', sink) FROM r)
            SELECT \(Self.deliveryColumns("r", s)), (SELECT count(*) FROM n) AS announced FROM r
            """
        var delivery: Delivery?
        for row in try await rows(s.query(sql)) {
            delivery = try Self.delivery(row.makeRandomAccess(), s)
        }
        if let delivery { wakeupHub.notify(delivery.sink) }
        return delivery
    }

    public func wakeups() -> AsyncStream<String> { wakeupHub.subscribe() }

    /// In batches of 1,000 events, so no statement holds many rows at once.
    public func purge(olderThan age: Duration) async throws -> Int {
        var total = 0
        while true {
            var s = time.statement()
            let sql = """
                WITH gone AS (
                    DELETE FROM herald.events WHERE id IN (
                        SELECT e.id FROM herald.events e
                        WHERE e.received_at < \(s.now) - make_interval(secs => \(s.bind(age.seconds)))
                          AND NOT EXISTS (SELECT 1 FROM herald.deliveries d WHERE d.event_id = e.id AND d.state IN ('pending', 'in_flight'))
                        ORDER BY e.received_at LIMIT 1000
                        FOR UPDATE SKIP LOCKED)
                    RETURNING 1
                )
                SELECT count(*) FROM gone
                """
            let removed = try await count(s.query(sql))
            total += removed
            if removed < 1000 { return total }
        }
    }

    // MARK: Reads

    public func event(id: String) async throws -> StoredEvent? {
        var s = time.statement()
        let idParam = s.bind(id)
        var event: Event?
        for row in try await rows(s.query("SELECT \(Self.eventColumns("e", s)) FROM herald.events e WHERE e.id = \(idParam)")) {
            event = try Self.event(row.makeRandomAccess(), s)
        }
        guard let event else { return nil }
        let deliveries = try await deliveryRows("WHERE d.event_id = \(idParam) ORDER BY d.created_at, d.id", s)
        var attempts: [DeliveryAttempt] = []
        let sql = """
            SELECT a.delivery_id, a.number, \(s.seconds("a.started_at")) AS started_s, a.duration_ms, a.outcome, a.detail
            FROM herald.attempts a JOIN herald.deliveries d ON d.id = a.delivery_id WHERE d.event_id = \(idParam)
            ORDER BY a.started_at, a.number
            """
        for row in try await rows(s.query(sql)) {
            let (deliveryID, number, started, ms, outcome, detail) = try row.decode((String, Int32, Double, Double, String, String?).self)
            attempts.append(DeliveryAttempt(deliveryID: deliveryID, number: Int(number), startedAt: s.instant(started),
                                            duration: .milliseconds(saturating: ms), outcome: outcome, detail: detail))
        }
        return StoredEvent(event: event, deliveries: deliveries, attempts: attempts)
    }

    public func delivery(id: String) async throws -> Delivery? {
        var s = time.statement()
        let clause = "WHERE d.id = \(s.bind(id))"
        return try await deliveryRows(clause, s).first
    }

    public func deliveries(_ filter: DeliveryFilter) async throws -> [Delivery] {
        var s = time.statement()
        var clauses: [String] = []
        if let state = filter.state { clauses.append("d.state = \(s.bind(state.rawValue))") }
        if let sink = filter.sink { clauses.append("d.sink = \(s.bind(sink))") }
        if let eventID = filter.eventID { clauses.append("d.event_id = \(s.bind(eventID))") }
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        return try await deliveryRows("\(whereClause) ORDER BY d.created_at DESC, d.id DESC LIMIT \(s.bind(filter.limit))", s)
    }

    public func events(_ filter: EventFilter) async throws -> [StoredEvent] {
        var s = time.statement()
        var clauses: [String] = []
        if let state = filter.state {
            clauses.append("EXISTS (SELECT 1 FROM herald.deliveries d WHERE d.event_id = e.id AND d.state = \(s.bind(state.rawValue)))")
        }
        if filter.unrouted { clauses.append("NOT EXISTS (SELECT 1 FROM herald.deliveries d WHERE d.event_id = e.id)") }
        if let sink = filter.sink { clauses.append("EXISTS (SELECT 1 FROM herald.deliveries d WHERE d.event_id = e.id AND d.sink = \(s.bind(sink)))") }
        if let route = filter.route {
            let r = s.bind(route)
            clauses.append("(e.route = \(r) OR EXISTS (SELECT 1 FROM herald.deliveries d WHERE d.event_id = e.id AND d.route = \(r)))")
        }
        if let since = filter.since { clauses.append("e.received_at >= \(s.at(since))") }
        if let until = filter.until { clauses.append("e.received_at < \(s.at(until))") }
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        let sql = "SELECT \(Self.eventColumns("e", s)) FROM herald.events e \(whereClause) ORDER BY e.received_at DESC, e.id DESC LIMIT \(s.bind(filter.limit))"
        var events: [Event] = []
        for row in try await rows(s.query(sql)) { events.append(try Self.event(row.makeRandomAccess(), s)) }
        guard !events.isEmpty else { return [] }
        var d = time.statement()
        let all = try await deliveryRows("WHERE d.event_id = ANY(\(d.bind(events.map(\.id)))) ORDER BY d.created_at, d.id", d)
        let byEvent = Dictionary(grouping: all, by: \.eventID)
        return events.map { StoredEvent(event: $0, deliveries: byEvent[$0.id] ?? [], attempts: []) }
    }

    public func count(state: DeliveryState) async throws -> Int {
        var s = time.statement()
        let sql = "SELECT count(*) FROM herald.deliveries WHERE state = \(s.bind(state.rawValue)) AND retracts IS NULL"
        return try await count(s.query(sql))
    }

    public func pendingBySink() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try await rows("SELECT sink, count(*) FROM herald.deliveries WHERE state = 'pending' AND retracts IS NULL GROUP BY sink") {
            let (sink, n) = try row.decode((String, Int64).self)
            counts[sink] = Int(n)
        }
        return counts
    }

    // MARK: Rows

    // The three statements of every message (its webhook and each delivery's claim and result)
    // are prepared once per connection: PostgreSQL plans them once instead of at every call. Their
    // text depends only on the code path (never on a value, and "now" is always `$1`), so it is
    // built once from placeholders.

    /// Events and their deliveries, several webhooks at once (`inserts`); returns the ids of the
    /// events stored (one whose `(source, source_id)` was taken is not, nor are its deliveries).
    /// Only deliveries left pending are announced, once per sink.
    static func insertSQL(_ s: inout SQLStatement, json: String, nodeID: String) -> String {
        let now = s.now
        return """
            WITH ev AS MATERIALIZED (
                SELECT * FROM jsonb_to_recordset(\(s.bind(json))::jsonb) AS t(id text, source text, source_id text, from_address text,
                     to_address text, body text, otp text, otp_domain text, app text, route text, received_s float8, media text[], deliveries jsonb)
            ), e AS (
                INSERT INTO herald.events (id, source, source_id, from_address, to_address, body, otp, otp_domain, app, route, received_at, media)
                SELECT id, source, source_id, from_address, to_address, body, otp, otp_domain, app, route,
                       \(now) + make_interval(secs => received_s), coalesce(media, '{}')
                FROM ev
                ON CONFLICT (source, source_id) DO NOTHING
                RETURNING id
            ), d AS (
                INSERT INTO herald.deliveries (id, event_id, sink, recipient, route, app, state, attempts, next_attempt_at, expires_at,
                                               lease_owner, lease_expires_at, last_error, receipt, retracts, created_at, updated_at)
                SELECT t.id, e.id, t.sink, t.recipient, t.route, t.app, t.state, t.attempts,
                       \(now) + make_interval(secs => t.next_s), \(now) + make_interval(secs => t.expires_s),
                       CASE WHEN t.state = 'in_flight' THEN \(s.bind(nodeID)) END,
                       CASE WHEN t.state = 'in_flight' THEN \(now) + make_interval(secs => coalesce(t.lease_s, 0)) END,
                       t.last_error, t.receipt, t.retracts, \(now) + make_interval(secs => t.created_s), \(now) + make_interval(secs => t.updated_s)
                FROM e JOIN ev ON ev.id = e.id,
                     jsonb_to_recordset(ev.deliveries) AS t(id text, sink text, state text, recipient text, route text, app text,
                     last_error text, receipt text, retracts text, attempts int, next_s float8, expires_s float8, created_s float8, updated_s float8, lease_s float8)
                RETURNING sink, state
            ), announced AS MATERIALIZED (
                SELECT pg_notify('\(channel)', p.sink) FROM (SELECT DISTINCT sink FROM d WHERE state = 'pending') p
            )
            SELECT id FROM e WHERE (SELECT count(*) FROM announced) >= 0
            """
    }

    static func claimSQL(_ s: inout SQLStatement, sink: String, limit: Int, leaseFor: Duration, nodeID: String) -> String {
        let now = s.now
        let sinkParam = s.bind(sink)
        return """
            WITH exp AS (
                UPDATE herald.deliveries SET state = 'expired', updated_at = \(now),
                       last_error = coalesce(last_error, 'expired before it could be sent')
                WHERE id IN (SELECT id FROM herald.deliveries WHERE sink = \(sinkParam) AND state = 'pending'
                             AND next_attempt_at <= \(now) AND expires_at <= \(now) FOR UPDATE SKIP LOCKED)
                RETURNING id
            ), due AS MATERIALIZED (
                SELECT id FROM herald.deliveries
                WHERE sink = \(sinkParam) AND state = 'pending' AND next_attempt_at <= \(now) AND expires_at > \(now)
                ORDER BY next_attempt_at, id LIMIT \(s.bind(max(0, limit)))
                FOR UPDATE SKIP LOCKED
            ), cl AS (
                UPDATE herald.deliveries d SET state = 'in_flight', attempts = d.attempts + 1, lease_owner = \(s.bind(nodeID)),
                       lease_expires_at = \(s.after(leaseFor)), updated_at = \(now)
                FROM due WHERE d.id = due.id
                RETURNING d.*
            )
            SELECT (SELECT array_agg(id) FROM exp) AS expired_ids,
                   (SELECT \(s.seconds("min(p.next_attempt_at)")) FROM herald.deliveries p
                    WHERE p.sink = \(sinkParam) AND p.state = 'pending'
                      AND p.id NOT IN (SELECT id FROM due) AND p.id NOT IN (SELECT id FROM exp)) AS next_due_s,
                   c.*
            FROM (SELECT 1) one LEFT JOIN (
                SELECT \(Self.deliveryColumns("cl", s)), \(Self.eventColumns("e", s))
                FROM cl JOIN herald.events e ON e.id = cl.event_id
            ) c ON true
            """
    }

    struct CompletionRow: Encodable, Sendable {
        var id: String
        var number: Int
        var state: String
        var error, receipt, detail: String?
        var retry_s: Double?
        var started_s, duration_ms: Double
        var outcome: String
    }

    /// Results of attempts, several at once (`completions`); returns the ids whose claim held.
    static func completeSQL(_ s: inout SQLStatement, json: String, nodeID: String) -> String {
        let now = s.now
        return """
            WITH t AS MATERIALIZED (
                SELECT * FROM jsonb_to_recordset(\(s.bind(json))::jsonb) AS t(id text, number int, state text, error text, receipt text,
                     detail text, retry_s float8, started_s float8, duration_ms float8, outcome text)
            ), u AS (
                UPDATE herald.deliveries d SET state = t.state, lease_owner = NULL, lease_expires_at = NULL, updated_at = \(now),
                       last_error = coalesce(t.error, d.last_error),
                       next_attempt_at = CASE WHEN t.retry_s IS NULL THEN d.next_attempt_at ELSE \(now) + make_interval(secs => t.retry_s) END,
                       receipt = coalesce(t.receipt, d.receipt)
                FROM t WHERE d.id = t.id AND d.state = 'in_flight' AND d.attempts = t.number
                RETURNING d.id
            ), a AS (
                INSERT INTO herald.attempts (delivery_id, number, worker, started_at, duration_ms, outcome, detail)
                SELECT t.id, t.number, \(s.bind(nodeID)), \(now) + make_interval(secs => t.started_s), t.duration_ms, t.outcome, t.detail
                FROM t JOIN u ON u.id = t.id
                ON CONFLICT (delivery_id, number) DO UPDATE SET worker = excluded.worker, started_at = excluded.started_at,
                    duration_ms = excluded.duration_ms, outcome = excluded.outcome, detail = excluded.detail
                RETURNING 1
            )
            SELECT id FROM u
            """
    }

    /// Runs one of the prepared statements; `sql` must be its text (it is, by construction).
    private func rows<Kind: PreparedKind>(_ kind: Prepared<Kind>.Type, _ s: SQLStatement, _ sql: String) async throws -> [PostgresRow] {
        assert(sql == Kind.sql, "the text of \(Kind.self) changed with its values")
        let statement = Prepared<Kind>(binds: s.binds)
        return try await withDeadline { client, logger in
            var rows: [PostgresRow] = []
            for try await row in try await client.execute(statement, logger: logger) { rows.append(row) }
            return rows
        }
    }


    /// Runs one statement and reads all its rows (every result here is small). A failure becomes
    /// a `PostgresStoreError`, which says what PostgreSQL said, never the values sent.
    ///
    /// While the database is unreachable the pool keeps every request waiting for a connection
    /// (it has no deadline of its own): each statement gets `statementDeadline`, so a webhook is
    /// answered 500 in time instead of hanging, and `/readyz` says why.
    private func rows(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await withDeadline { client, logger in try await client.query(query, logger: logger).collect() }
    }

    private func withDeadline(_ body: @escaping @Sendable (PostgresClient, Logger) async throws -> [PostgresRow]) async throws -> [PostgresRow] {
        let client = client
        let logger = logger
        let deadline = statementDeadline
        do {
            return try await withThrowingTaskGroup(of: [PostgresRow].self) { group in
                group.addTask { try await body(client, logger) }
                group.addTask {
                    try await Task.sleep(for: deadline)
                    throw PostgresStoreError(description: "the database did not answer within \(deadline.shortDescription)")
                }
                defer { group.cancelAll() }
                guard let first = try await group.next() else { throw CancellationError() }
                return first
            }
        } catch {
            throw PostgresStoreError(error)
        }
    }

    /// The first column of the first row, a count.
    private func count(_ query: PostgresQuery) async throws -> Int {
        var n: Int64 = 0
        for row in try await rows(query) { n = try row.makeRandomAccess()[0].decode(Int64.self) }
        return Int(n)
    }

    private func deliveryRows(_ clause: String, _ s: SQLStatement) async throws -> [Delivery] {
        var list: [Delivery] = []
        let sql = "SELECT \(Self.deliveryColumns("d", s)) FROM herald.deliveries d \(clause)"
        for row in try await rows(s.query(sql)) { list.append(try Self.delivery(row.makeRandomAccess(), s)) }
        return list
    }

    static func deliveryColumns(_ t: String, _ s: SQLStatement) -> String {
        """
        \(t).id, \(t).event_id, \(t).sink, \(t).recipient, \(t).route, \(t).app, \(t).state, \(t).attempts,
        \(s.seconds("\(t).next_attempt_at")) AS next_s, \(s.seconds("\(t).expires_at")) AS expires_s,
        \(s.seconds("\(t).lease_expires_at")) AS lease_s, \(t).last_error, \(t).receipt, \(t).retracts,
        \(s.seconds("\(t).created_at")) AS created_s, \(s.seconds("\(t).updated_at")) AS updated_s
        """
    }

    static func eventColumns(_ t: String, _ s: SQLStatement) -> String {
        """
        \(t).id AS e_id, \(t).source AS e_source, \(t).source_id AS e_source_id, \(t).from_address AS e_from, \(t).to_address AS e_to,
        \(t).body AS e_body, \(t).otp AS e_otp, \(t).otp_domain AS e_otp_domain, \(t).app AS e_app, \(t).route AS e_route,
        \(s.seconds("\(t).received_at")) AS e_received_s, \(t).media AS e_media
        """
    }

    static func delivery(_ r: PostgresRandomAccessRow, _ s: SQLStatement) throws -> Delivery {
        let id = try r["id"].decode(String.self)
        let stateText = try r["state"].decode(String.self)
        guard let state = DeliveryState(rawValue: stateText) else {
            throw OutboxStoreError.corrupt("delivery \(id) has the unknown state '\(stateText.prefix(40))'")
        }
        return Delivery(
            id: id, eventID: try r["event_id"].decode(String.self), sink: try r["sink"].decode(String.self),
            recipient: try r["recipient"].decode(String?.self), route: try r["route"].decode(String?.self), app: try r["app"].decode(String?.self),
            state: state, attempts: Int(try r["attempts"].decode(Int32.self)),
            nextAttemptAt: s.instant(try r["next_s"].decode(Double.self)), expiresAt: s.instant(try r["expires_s"].decode(Double.self)),
            leaseUntil: try r["lease_s"].decode(Double?.self).map(s.instant), lastError: try r["last_error"].decode(String?.self),
            receipt: try r["receipt"].decode(String?.self), retracts: try r["retracts"].decode(String?.self), createdAt: s.instant(try r["created_s"].decode(Double.self)),
            updatedAt: s.instant(try r["updated_s"].decode(Double.self))
        )
    }

    static func event(_ r: PostgresRandomAccessRow, _ s: SQLStatement) throws -> Event {
        Event(
            id: try r["e_id"].decode(String.self), source: try r["e_source"].decode(String.self), sourceID: try r["e_source_id"].decode(String?.self),
            from: try r["e_from"].decode(String.self), to: try r["e_to"].decode(String?.self), body: try r["e_body"].decode(String.self),
            otp: try r["e_otp"].decode(String?.self), otpDomain: try r["e_otp_domain"].decode(String?.self), app: try r["e_app"].decode(String?.self),
            route: try r["e_route"].decode(String?.self), receivedAt: s.instant(try r["e_received_s"].decode(Double.self)),
            media: try r["e_media"].decode([String].self)
        )
    }
}

/// What a PostgreSQL failure says, without the query's values: the server's message and SQLSTATE,
/// or what went wrong with the connection.
public struct PostgresStoreError: Error, CustomStringConvertible {
    public let description: String

    init(_ error: any Error) {
        description = Self.describe(error)
    }

    init(description: String) {
        self.description = description
    }

    public static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                let code = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
                return "PostgreSQL: \(message)\(code)"
            }
            switch error.code {
            case .connectionError, .serverClosedConnection, .uncleanShutdown:
                return "the connection failed\(error.underlying.map { ": \($0)" } ?? "")"
            case .poolClosed: return "the store is closed"
            case .sslUnsupported: return "the server does not offer TLS (sslmode=require or verify-full)"
            default: return "PostgreSQL client error: \(error.code)"
            }
        }
        if let error = error as? PostgresOutboxStore.OpenError { return error.description }
        if let error = error as? PostgresStoreError { return error.description }
        return "\(error)"
    }
}

/// A statement of the hot path, prepared once per connection (see `PreparedKind`).
protocol PreparedKind: SendableMetatype {
    static var sql: String { get }
}

struct Prepared<Kind: PreparedKind>: PostgresPreparedStatement {
    typealias Row = PostgresRow
    static var sql: String { Kind.sql }
    let binds: PostgresBindings
    func makeBindings() throws -> PostgresBindings { binds }
    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

/// Each text built once from placeholder values: the same code path gives the same text.
enum InsertKind: PreparedKind {
    static let sql: String = {
        var s = SQLStatement(fixed: nil, localNow: Date())
        return PostgresOutboxStore.insertSQL(&s, json: "[]", nodeID: "")
    }()
}

enum ClaimKind: PreparedKind {
    static let sql: String = {
        var s = SQLStatement(fixed: nil, localNow: Date())
        return PostgresOutboxStore.claimSQL(&s, sink: "", limit: 0, leaseFor: .zero, nodeID: "")
    }()
}

enum CompleteKind: PreparedKind {
    static let sql: String = {
        var s = SQLStatement(fixed: nil, localNow: Date())
        return PostgresOutboxStore.completeSQL(&s, json: "[]", nodeID: "")
    }()
}
