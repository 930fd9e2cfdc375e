import GRDB

/// The database layout, as versioned migrations. A Herald database is marked with
/// `PRAGMA application_id`, so Herald never writes into somebody else's SQLite file.
enum SQLiteSchema {
    /// 'HRLD'
    static let applicationID: Int32 = 0x4852_4C44

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: events, deliveries, attempts") { db in
            try db.execute(sql: "PRAGMA application_id = \(applicationID)")
            try db.execute(sql: """
                CREATE TABLE events (
                    id TEXT PRIMARY KEY NOT NULL,
                    source TEXT NOT NULL,
                    source_id TEXT,
                    from_address TEXT NOT NULL,
                    to_address TEXT,
                    body TEXT NOT NULL,
                    otp TEXT,
                    app TEXT,
                    route TEXT,
                    received_at REAL NOT NULL,
                    media TEXT NOT NULL DEFAULT '[]'
                );
                CREATE UNIQUE INDEX events_source_id ON events(source, source_id) WHERE source_id IS NOT NULL;
                CREATE INDEX events_received_at ON events(received_at);

                CREATE TABLE deliveries (
                    id TEXT PRIMARY KEY NOT NULL,
                    event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
                    sink TEXT NOT NULL,
                    recipient TEXT,
                    route TEXT,
                    app TEXT,
                    state TEXT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_at REAL NOT NULL,
                    expires_at REAL NOT NULL,
                    lease_until REAL,
                    last_error TEXT,
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL
                );
                CREATE INDEX deliveries_event ON deliveries(event_id);
                CREATE INDEX deliveries_due ON deliveries(state, next_attempt_at);
                CREATE INDEX deliveries_sink ON deliveries(sink, state);

                CREATE TABLE attempts (
                    delivery_id TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
                    number INTEGER NOT NULL,
                    started_at REAL NOT NULL,
                    duration_ms REAL NOT NULL,
                    outcome TEXT NOT NULL,
                    detail TEXT,
                    PRIMARY KEY (delivery_id, number)
                );
                """)
        }
        migrator.registerMigration("v2: receipts, claims per sink") { db in
            try db.execute(sql: """
                ALTER TABLE deliveries ADD COLUMN receipt TEXT;
                DROP INDEX deliveries_sink;
                CREATE INDEX deliveries_sink_due ON deliveries(sink, state, next_attempt_at);
                """)
        }
        migrator.registerMigration("v3: origin-bound codes") { db in
            try db.execute(sql: "ALTER TABLE events ADD COLUMN otp_domain TEXT")
        }
        migrator.registerMigration("v4: retractions") { db in
            try db.execute(sql: "ALTER TABLE deliveries ADD COLUMN retracts TEXT")
        }
        return migrator
    }
}
