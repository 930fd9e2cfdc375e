import Foundation
import HeraldCore
import PostgresNIO

/// Whose clock a statement reads. In production every time is the database's `now()`: the
/// processes sharing the outbox never compare their own clocks. Instants the engine hands over
/// (an event's expiry, a lease's end) are sent as durations from the caller's clock, applied to
/// `now()`; instants read back come as durations from `now()`, applied to the caller's clock.
/// Tests of the store contract pin "now" to their manual clock instead (`fixed`).
struct StoreTime: Sendable {
    /// The clock of the process, for turning instants into durations and back.
    let local: any HeraldClock
    /// Tests only: "now" in SQL is this clock's time, not the database's.
    let fixed: (any HeraldClock)?

    func statement() -> SQLStatement {
        SQLStatement(fixed: fixed?.now(), localNow: local.now())
    }
}

/// SQL text with its bind parameters, built in order: `bind` appends a parameter and returns its
/// `$n`, `now` is the store's clock (`$1`), `at` an instant as the database's time. Every parameter is
/// cast in the text, so the same SQL types whatever the driver sends.
struct SQLStatement {
    private(set) var binds = PostgresBindings()
    /// Always `$1`: the Unix epoch stands for the database's `now()`, any other time is the fixed
    /// clock's (tests). So the text is the same either way, and tests run the statements production
    /// runs. (A typed value rather than NULL: a statement that never reads `now` still types `$1`.)
    let now = "coalesce(nullif($1::timestamptz, 'epoch'), now())"
    /// The local clock when the statement was built: instants are converted against it.
    let localNow: Date

    init(fixed: Date?, localNow: Date) {
        self.localNow = localNow
        binds.append(fixed ?? Date(timeIntervalSince1970: 0))
    }

    mutating func bind(_ value: String) -> String { binds.append(value); return "$\(binds.count)::text" }
    mutating func bind(_ value: String?) -> String {
        if let value { binds.append(value) } else { binds.appendNull() }
        return "$\(binds.count)::text"
    }
    mutating func bind(_ value: Int) -> String { binds.append(Int64(value)); return "$\(binds.count)::int8" }
    mutating func bind(_ value: Double) -> String { binds.append(value); return "$\(binds.count)::float8" }
    mutating func bind(_ value: Double?) -> String {
        if let value { binds.append(value) } else { binds.appendNull() }
        return "$\(binds.count)::float8"
    }
    mutating func bind(_ value: [String]) -> String { binds.append(value); return "$\(binds.count)::text[]" }

    /// `instant` as a database time: now() plus its distance from the local clock.
    mutating func at(_ instant: Date) -> String {
        "(\(now) + make_interval(secs => \(bind(instant.timeIntervalSince(localNow)))))"
    }

    /// A duration from now, in the database's time.
    mutating func after(_ duration: Duration) -> String {
        "(\(now) + make_interval(secs => \(bind(duration.seconds))))"
    }

    /// A timestamp column read as seconds from now (negative: in the past).
    func seconds(_ column: String) -> String {
        "extract(epoch FROM (\(column) - \(now)))::float8"
    }

    /// A value read by `seconds(_:)`, back on the local clock.
    func instant(_ seconds: Double) -> Date { localNow.addingTimeInterval(seconds) }

    func query(_ sql: String) -> PostgresQuery { PostgresQuery(unsafeSQL: sql, binds: binds) }
}
