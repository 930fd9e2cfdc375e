import GRDB
import Synchronization

/// Group commit: writes queued while a transaction commits go together in the next one, so a
/// burst of webhooks costs one `fsync` per batch instead of one per request. Each write runs in
/// its own savepoint, so one failing write does not undo the others; callers are resumed only
/// after the transaction holding their write has committed.
final class BatchWriter: Sendable {
    private struct Job: Sendable {
        /// Runs the write inside the batch's transaction; returns what to do once it committed.
        var run: @Sendable (Database) -> @Sendable () -> Void
        /// The transaction failed as a whole.
        var fail: @Sendable (any Error) -> Void
    }

    private struct State {
        var queue: [Job] = []
        var draining = false
    }

    private let writer: any DatabaseWriter
    private let state = Mutex(State())
    /// Upper bound of writes per transaction, so one batch never holds the write lock for long.
    private let maxBatch = 512

    init(_ writer: any DatabaseWriter) {
        self.writer = writer
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = Job(
                run: { db in
                    var result: Result<T, any Error> = .failure(CancellationError())
                    do {
                        try db.inSavepoint {
                            result = .success(try body(db))
                            return .commit
                        }
                    } catch {
                        result = .failure(error)
                    }
                    let outcome = result
                    return { continuation.resume(with: outcome) }
                },
                fail: { continuation.resume(throwing: $0) }
            )
            let start = state.withLock { state -> Bool in
                state.queue.append(job)
                guard !state.draining else { return false }
                state.draining = true
                return true
            }
            if start { Task { await self.drain() } }
        }
    }

    private func drain() async {
        while true {
            let jobs = state.withLock { state -> [Job] in
                let batch = Array(state.queue.prefix(maxBatch))
                state.queue.removeFirst(batch.count)
                if batch.isEmpty { state.draining = false }
                return batch
            }
            guard !jobs.isEmpty else { return }
            do {
                let completions = try await writer.write { db in jobs.map { $0.run(db) } }
                for complete in completions { complete() }
            } catch {
                // The transaction failed as a whole (disk full, I/O error): nothing in it was
                // stored, and every caller hears so.
                for job in jobs { job.fail(error) }
            }
        }
    }
}
