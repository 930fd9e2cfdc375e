import Foundation
import HeraldCore
import HeraldSinks
import Testing

@Suite("storage: postgres:// URLs")
struct PostgresStorageTests {
    static let good: [(url: String, endpoint: PostgresStorage.Endpoint, user: String, password: String?, database: String, tls: PostgresStorage.TLSMode, shown: String)] = [
        ("postgres://herald:s3cr%40t@db.internal:5433/outbox?sslmode=require", .tcp(host: "db.internal", port: 5433), "herald", "s3cr@t", "outbox", .require,
         "postgres://herald:***@db.internal:5433/outbox?sslmode=require"),
        ("postgresql://app@10.0.0.7/herald", .tcp(host: "10.0.0.7", port: 5432), "app", nil, "herald", .prefer, "postgres://app@10.0.0.7:5432/herald"),
        ("postgres://app:pw@[::1]:6432/h?sslmode=verify-full", .tcp(host: "::1", port: 6432), "app", "pw", "h", .verifyFull,
         "postgres://app:***@[::1]:6432/h?sslmode=verify-full"),
        ("postgres://herald@/outbox?host=/var/run/postgresql", .socket(path: "/var/run/postgresql/.s.PGSQL.5432"), "herald", nil, "outbox", .prefer,
         "postgres://herald@/outbox?host=/var/run/postgresql/.s.PGSQL.5432"),
        ("postgres://herald:pw@%2Ftmp%2Fpg:5444/outbox", .socket(path: "/tmp/pg/.s.PGSQL.5444"), "herald", "pw", "outbox", .prefer,
         "postgres://herald:***@/outbox?host=/tmp/pg/.s.PGSQL.5444"),
    ]

    @Test(arguments: good.indices)
    func parses(_ index: Int) throws {
        let row = Self.good[index]
        let storage = try PostgresStorage.parse(row.url).get()
        #expect(storage.endpoint == row.endpoint)
        #expect(storage.username == row.user)
        #expect(storage.password?.value == row.password)
        #expect(storage.database == row.database)
        #expect(storage.tls == row.tls)
        #expect(storage.description == row.shown)
        if let password = row.password { #expect(!storage.description.contains(password)) }
    }

    static let bad: [(url: String, message: String)] = [
        ("postgres://db.internal/outbox", "needs a user name"),
        ("postgres://herald:pw@db.internal", "needs a database name"),
        ("postgres://herald:pw@db.internal/outbox?sslmode=always", "sslmode must be one of disable, prefer, require, verify-full"),
        ("postgres://herald:pw@db.internal/outbox?pool=5", "unknown parameter 'pool'"),
        ("postgres://herald:pw@/outbox?host=relative/dir", "absolute path"),
        ("postgres://herald:pw@/outbox", "needs a host"),
    ]

    @Test(arguments: bad.indices)
    func refuses(_ index: Int) {
        let row = Self.bad[index]
        guard case .failure(let error) = PostgresStorage.parse(row.url) else {
            Issue.record("\(row.url) was accepted")
            return
        }
        #expect(error.description.contains(row.message), "\(error)")
        #expect(!error.description.contains("pw"), "the password is never repeated")
    }

    /// In channels.yaml: the error points at the value, and the password appears nowhere.
    @Test func configErrorsHaveThePlaceAndNoPassword() throws {
        let yaml = """
            server: { listen: "127.0.0.1:8080", node_id: herald-a }
            storage: postgres://herald:hunter2@db.internal/outbox?sslmode=maybe
            sinks: { inbox: { type: file, path: inbox.jsonl } }
            routes: [ { deliver: [inbox] } ]
            """
        do {
            _ = try ConfigLoader.parse(yaml)
            Issue.record("accepted")
        } catch let errors as ConfigErrors {
            let error = try #require(errors.errors.first)
            #expect(error.line == 2)
            #expect(error.column == 10)
            #expect(error.message.contains("sslmode must be one of"))
            #expect(!errors.description.contains("hunter2"))
        }
        let ok = try ConfigLoader.parse(yaml.replacingOccurrences(of: "?sslmode=maybe", with: ""))
        #expect(ok.storage.shown == "postgres://herald:***@db.internal:5432/outbox")
        #expect(ok.server.effectiveNodeID == "herald-a")
        #expect(try ConfigLoader.parse(yaml.replacingOccurrences(of: "?sslmode=maybe", with: "").replacingOccurrences(of: ", node_id: herald-a", with: ""))
            .server.effectiveNodeID == "\(ProcessInfo.processInfo.hostName):8080", "default: host name and port")
        #expect(throws: ConfigErrors.self) { try ConfigLoader.parse(yaml.replacingOccurrences(of: "node_id: herald-a", with: "node_id: \"two words\"")) }
    }

    @Test func leaseIsConfigurableAndNeverShorterThanATimeoutAllows() throws {
        let yaml = """
            defaults: { lease: 3s }
            sinks: { a: { type: http, url: "http://127.0.0.1:9/a", timeout: 1s }, b: { type: http, url: "http://127.0.0.1:9/b" } }
            routes: [ { deliver: [a, b] } ]
            """
        let config = try ConfigLoader.parse(yaml)
        #expect(config.defaults.lease == .seconds(3))
        #expect(LaneSettings(sink: "a", timeout: .seconds(1), minimumLease: config.defaults.lease).lease == .seconds(11), "timeout + 2 × 5 s margin")
        #expect(LaneSettings(sink: "b", minimumLease: .seconds(60)).lease == .seconds(60))
    }
}
