import Dispatch
import Foundation
import HeraldCore
import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads, one at a time: `POST /admin/reload` and `kill -HUP` both queue here, and each reload
/// reads the file (off the cooperative pool) and applies it to sinks, dispatcher and router before
/// the next one starts, so two reloads can never leave them on different files.
public final class ConfigReloader: Service, Sendable {
    typealias Request = CheckedContinuation<[String], any Error>

    private let requests: AsyncStream<Request>
    private let queue: AsyncStream<Request>.Continuation
    /// Config files are read here: a slow disk must not block the cooperative pool.
    private static let files = DispatchQueue(label: "herald.config-files")
    private let apply: @Sendable (HeraldConfig) throws -> [String]
    private let load: @Sendable () throws -> HeraldConfig
    private let refused: @Sendable (any Error) -> Void

    init(load: @escaping @Sendable () throws -> HeraldConfig, apply: @escaping @Sendable (HeraldConfig) throws -> [String],
         refused: @escaping @Sendable (any Error) -> Void) {
        self.load = load
        self.apply = apply
        self.refused = refused
        (requests, queue) = AsyncStream<Request>.makeStream()
    }

    /// Queues a reload and waits for it: the warnings, or the problems of a refused file
    /// (`ConfigErrors`, with file, line and column) while the old configuration stays in force.
    public func reload() async throws -> [String] {
        try await withCheckedThrowingContinuation { (request: Request) in
            if case .terminated = queue.yield(request) {
                request.resume(throwing: ConfigErrors([ConfigError(file: "-", line: 1, column: 1, message: "the server is shutting down")]))
            }
        }
    }

    public func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await _ in hangups { _ = try? await self.reload() }
            }
            await cancelWhenGracefulShutdown {
                for await request in self.requests {
                    request.resume(with: await self.perform())
                }
            }
            queue.finish()
            // Requests that came in as the server stopped still get an answer.
            for await request in requests {
                request.resume(throwing: ConfigErrors([ConfigError(file: "-", line: 1, column: 1, message: "the server is shutting down")]))
            }
            group.cancelAll()
        }
    }

    private func perform() async -> Result<[String], any Error> {
        let load = self.load
        let loaded: Result<HeraldConfig, any Error> = await withCheckedContinuation { continuation in
            Self.files.async { continuation.resume(returning: Result { try load() }) }
        }
        let result = loaded.flatMap { config in Result { try apply(config) } }
        if case .failure(let error) = result { refused(error) }
        return result
    }
}
