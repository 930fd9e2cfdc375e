import Foundation

/// `storage: postgres://user:password@host:port/database?sslmode=…` — the shared outbox of several
/// Herald processes. Also the Unix socket form, as libpq writes it:
/// `postgres://user@/database?host=/var/run/postgresql` (the folder holding `.s.PGSQL.5432`).
/// The password is a `Secret`: `description` never shows it.
public struct PostgresStorage: Sendable, Equatable, CustomStringConvertible {
    public enum TLSMode: String, Sendable, Equatable, CaseIterable {
        /// Never TLS.
        case disable
        /// TLS when the server offers it, the certificate not checked (libpq's default).
        case prefer
        /// TLS or no connection; the certificate is not checked (libpq's `require`).
        case require
        /// TLS or no connection, with the certificate and host name verified.
        case verifyFull = "verify-full"
    }

    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        /// The socket file itself (`…/.s.PGSQL.5432`).
        case socket(path: String)
    }

    public var endpoint: Endpoint
    public var username: String
    public var password: Secret?
    public var database: String
    public var tls: TLSMode

    public init(endpoint: Endpoint, username: String, password: Secret?, database: String, tls: TLSMode = .prefer) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
    }

    /// The URL with the password replaced: what `herald check`, logs and errors show.
    public var description: String {
        let auth = username + (password == nil ? "" : ":***")
        switch endpoint {
        case .tcp(let host, let port):
            let shownHost = host.contains(":") ? "[\(host)]" : host
            return "postgres://\(auth)@\(shownHost):\(port)/\(database)\(tls == .prefer ? "" : "?sslmode=\(tls.rawValue)")"
        case .socket(let path):
            return "postgres://\(auth)@/\(database)?host=\(path)"
        }
    }

    /// Parses the URL; the error says what is wrong without repeating the password.
    public static func parse(_ text: String) -> Result<PostgresStorage, ParseError> {
        guard let components = URLComponents(string: text), let scheme = components.scheme,
              scheme == "postgres" || scheme == "postgresql" else {
            return .failure(ParseError("is not a URL like postgres://user:password@host:5432/herald"))
        }
        let user = components.user.flatMap { $0.removingPercentEncoding } ?? ""
        guard !user.isEmpty else { return .failure(ParseError("needs a user name (postgres://USER:password@host/db)")) }
        let password = components.password.flatMap { $0.removingPercentEncoding }.map(Secret.init)
        var database = components.path
        if database.hasPrefix("/") { database.removeFirst() }
        database = database.removingPercentEncoding ?? database
        guard !database.isEmpty, !database.contains("/") else {
            return .failure(ParseError("needs a database name after the host (postgres://user@host:5432/DATABASE)"))
        }
        var tls = TLSMode.prefer
        var socketFolder: String?
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let mode = TLSMode(rawValue: item.value ?? "") else {
                    return .failure(ParseError("sslmode must be one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", ")), not '\(item.value ?? "")'"))
                }
                tls = mode
            case "host":
                socketFolder = item.value
            default:
                return .failure(ParseError("has the unknown parameter '\(item.name)' (known: sslmode, host)"))
            }
        }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { return .failure(ParseError("has a port outside 1–65535")) }
        var host = components.host.flatMap { $0.removingPercentEncoding } ?? ""
        if host.hasPrefix("/") { socketFolder = host; host = "" }
        if let folder = socketFolder {
            guard folder.hasPrefix("/") else { return .failure(ParseError("host= must be the absolute path of the socket folder, like /var/run/postgresql")) }
            let path = folder.hasSuffix(".s.PGSQL.\(port)") ? folder : (folder.hasSuffix("/") ? folder : folder + "/") + ".s.PGSQL.\(port)"
            return .success(PostgresStorage(endpoint: .socket(path: path), username: user, password: password, database: database, tls: tls))
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return .failure(ParseError("needs a host (postgres://user@HOST:5432/db), or host=/socket/folder")) }
        return .success(PostgresStorage(endpoint: .tcp(host: host, port: port), username: user, password: password, database: database, tls: tls))
    }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}
