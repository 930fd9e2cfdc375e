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

    final class Exit: Sendable {
        struct State {
            var status: Int32?
            var waiters: [CheckedContinuation<Int32, Never>] = []
        }
        let state = Mutex(State())
    }

    let process: Process
    private let output = Output()
    private let exit = Exit()

    init(_ arguments: [String], environment: [String: String] = [:], directory: URL, executable: String = HeraldProcess.binary) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        var env = ProcessInfo.processInfo.environment
        for key in ["HERALD_CONFIG", "TWILIO_AUTH_TOKEN", "SLACK_WEBHOOK_URL", "HERALD_INBOUND_TOKEN", "HERALD_ADMIN_TOKEN"] { env[key] = nil }
        env.merge(environment) { $1 }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        // A plain thread reads until end-of-file. (FileHandle.readabilityHandler rests on a dispatch
        // source that can outlive its file handle and crash libdispatch's manager thread.)
        let reader = pipe.fileHandleForReading
        Thread { [output] in
            while true {
                let data = reader.availableData
                if data.isEmpty { break }
                output.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
            }
        }.start()
        process.terminationHandler = { [exit] process in
            let status = process.terminationStatus
            let waiters = exit.state.withLock { state -> [CheckedContinuation<Int32, Never>] in
                state.status = status
                defer { state.waiters.removeAll() }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(returning: status) }
        }
        try process.run()
        // Only the child writes now, so the reader sees end-of-file when it exits.
        try? pipe.fileHandleForWriting.close()
    }

    /// A test that fails half-way must not leave a server running.
    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    var text: String { output.text.withLock { $0 } }

    /// Waits for the process to end and returns its exit status, without blocking a thread of the
    /// test's cooperative pool: the fake receivers the child talks to run on that pool too.
    func wait() async -> Int32 {
        let status = await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            let done = exit.state.withLock { state -> Int32? in
                if let status = state.status { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
        // Let the last output arrive.
        try? await Task.sleep(for: .milliseconds(100))
        return status
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

