import Foundation

/// The throwaway PostgreSQL cluster `make test` starts (`scripts/test-postgres`), reached with
/// Debian's `psql` so tests read the outbox independently of the code under test.
public enum TestPostgres {
    /// `postgres://herald@127.0.0.1:PORT/postgres`, or nil when no cluster was started (then the
    /// PostgreSQL tests are skipped; `make test` always starts one).
    public static var url: String? {
        ProcessInfo.processInfo.environment["HERALD_TEST_POSTGRES"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public static var isAvailable: Bool { url != nil }

    /// A new, empty database on the cluster at `server` (default: `url`); returns its URL.
    public static func createDatabase(on server: String? = nil) throws -> String {
        guard let base = server ?? url else { throw Failure(message: "HERALD_TEST_POSTGRES is not set") }
        let name = "herald_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        _ = try psql(base, "CREATE DATABASE \(name)")
        return base.replacingOccurrences(of: "/postgres", with: "/\(name)")
    }

    /// Runs `sql` with psql; returns its unaligned, tuples-only output, trimmed.
    @discardableResult
    public static func psql(_ url: String, _ sql: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        process.arguments = ["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(message: "psql failed: \(String(decoding: errors, as: UTF8.self))")
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A cluster of its own (for a test that stops and starts the database), in `folder`.
    /// `durable`: fsync and synchronous commit on (the benchmark); tests leave them off.
    public static func startCluster(in folder: URL, durable: Bool = false) throws -> String {
        try script(["init", folder.path], durable: durable)
    }

    public static func stopCluster(in folder: URL) throws { _ = try script(["stop", folder.path]) }
    public static func restartCluster(in folder: URL) throws { _ = try script(["start", folder.path]) }
    public static func destroyCluster(in folder: URL) { _ = try? script(["destroy", folder.path]) }

    private static func script(_ arguments: [String], durable: Bool = false) throws -> String {
        // The tests run from the package folder (swift test) or name it.
        let root = ProcessInfo.processInfo.environment["HERALD_SOURCE_ROOT"] ?? FileManager.default.currentDirectoryPath
        let process = Process()
        process.executableURL = URL(fileURLWithPath: root + "/scripts/test-postgres")
        process.arguments = arguments
        if durable { process.environment = ProcessInfo.processInfo.environment.merging(["HERALD_PG_DURABLE": "1"]) { $1 } }
        // Output to a file, not a pipe: the server it starts could inherit the pipe and keep it
        // open, and a reader would wait for an end of file that never comes.
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("herald-pg-\(UUID().uuidString).out")
        _ = FileManager.default.createFile(atPath: outputPath.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outputPath) }
        process.standardOutput = try FileHandle(forWritingTo: outputPath)
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw Failure(message: "scripts/test-postgres \(arguments[0]) failed") }
        return String(decoding: try Data(contentsOf: outputPath), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public struct Failure: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
        public init(message: String) { self.message = message }
    }
}
