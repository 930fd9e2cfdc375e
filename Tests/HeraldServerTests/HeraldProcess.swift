import Foundation
import HeraldCore
import HeraldTesting
import Synchronization

/// The built `herald` binary as a child process, its output captured.
final class HeraldProcess: Sendable {

    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["HERALD_BINARY"] { return path }
        // Tests run from the build folder that also holds the executable.
        let folder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [folder, folder.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("herald").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return folder.appendingPathComponent("herald").path
    }

    final class Output: Sendable {
        let text = Mutex("")
    }

    let process: Process
    private let output = Output()

    init(_ arguments: [String], environment: [String: String] = [:], directory: URL) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: HeraldProcess.binary)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        var env = ProcessInfo.processInfo.environment
        for key in ["HERALD_CONFIG", "TWILIO_AUTH_TOKEN", "SLACK_WEBHOOK_URL", "HERALD_INBOUND_TOKEN", "HERALD_ADMIN_TOKEN"] { env[key] = nil }
        env.merge(environment) { $1 }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { [output] handle in
            let data = handle.availableData
            output.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
    }

    var text: String { output.text.withLock { $0 } }

    /// Waits for the process to end and returns its exit status.
    func wait() -> Int32 {
        process.waitUntilExit()
        // Let the last output arrive.
        Thread.sleep(forTimeInterval: 0.1)
        return process.terminationStatus
    }

    /// The port from the `listening` log line of `herald serve`.
    func listeningPort(timeout: Duration = .seconds(20)) async -> Int? {
        var port: Int?
        _ = await eventually(timeout: timeout) {
            guard let range = self.text.range(of: #"server.address=http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) else { return false }
            port = Int(self.text[range].split(separator: ":").last!)
            return true
        }
        return port
    }

    func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    static func tempFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("herald-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
