/// The outbox's tables in the `herald` schema, as numbered migrations. Herald applies the missing
/// ones itself at start, under an advisory lock (two processes starting at once do not race), and
/// refuses a database whose schema is newer than it knows.
enum PostgresSchema {
    /// `pg_advisory_lock` keys (two int4 halves): migrations, and one per node id.
    static let lockSpace: Int32 = 0x4852_4C44  // 'HRLD'
    static let migrationLock: Int32 = 1

    /// Each migration's statements, run in one transaction; index + 1 is its version.
    static let migrations: [[String]] = [
        [
            "CREATE TABLE herald.events (id text PRIMARY KEY, source text NOT NULL, source_id text, from_address text NOT NULL, to_address text, body text NOT NULL, otp text, otp_domain text, app text, route text, received_at timestamptz NOT NULL, media text[] NOT NULL DEFAULT '{}', CONSTRAINT events_dedupe UNIQUE (source, source_id))",
            "CREATE INDEX events_received_at ON herald.events (received_at)",
            """
            CREATE TABLE herald.deliveries (
                id text PRIMARY KEY,
                event_id text NOT NULL REFERENCES herald.events (id) ON DELETE CASCADE,
                sink text NOT NULL, recipient text, route text, app text,
                state text NOT NULL CHECK (state IN ('pending', 'in_flight', 'delivered', 'failed', 'expired', 'skipped')),
                attempts int NOT NULL DEFAULT 0,
                next_attempt_at timestamptz NOT NULL,
                expires_at timestamptz NOT NULL,
                lease_owner text,
                lease_expires_at timestamptz,
                last_error text, receipt text,
                created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
                CONSTRAINT lease_iff_in_flight CHECK ((state = 'in_flight') = (lease_expires_at IS NOT NULL AND lease_owner IS NOT NULL))
            ) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.02)
            """,
            // The claim reads only pending rows, the reaper only leased ones.
            "CREATE INDEX deliveries_ready ON herald.deliveries (sink, next_attempt_at, id) WHERE state = 'pending'",
            "CREATE INDEX deliveries_leased ON herald.deliveries (lease_expires_at) WHERE state = 'in_flight'",
            "CREATE INDEX deliveries_event ON herald.deliveries (event_id)",
            "CREATE INDEX deliveries_listing ON herald.deliveries (state, created_at)",
            """
            CREATE TABLE herald.attempts (
                delivery_id text NOT NULL REFERENCES herald.deliveries (id) ON DELETE CASCADE,
                number int NOT NULL, worker text,
                started_at timestamptz NOT NULL, duration_ms float8 NOT NULL,
                outcome text NOT NULL, detail text,
                PRIMARY KEY (delivery_id, number)
            )
            """,
        ],
        // 2: retractions (a row that deletes the message another delivery sent).
        ["ALTER TABLE herald.deliveries ADD COLUMN retracts text"],
    ]

    static var version: Int { migrations.count }
}
