import GRDB
import Synchronization

/// Group commit: writes queued while a transaction commits go together in the next one, so a
/// burst of webhooks costs one `fsync` per batch instead of one per request. Callers are resumed
/// only after the transaction holding their write has committed.
///
/// One failing write does not undo the others: the transaction is rolled back, that write's
/// caller hears its error, and the rest run again in a new transaction (their bodies only run
/// statements, so running one again is safe). Writes fail rarely, so this costs less than a
/// savepoint around every write, which SQLite backs with a journal of every page each write
/// touches (~2 % of Herald's CPU under load, and the savepoint statements as much again).
///
/// A write may be marked not `durable` (a delivery's result): a batch of only such writes commits
/// with `synchronous = NORMAL`, without an `fsync` of its own. It survives a crash of the process
/// at once (it is in the WAL file) and a power cut once the next durable commit syncs the WAL
/// (which covers every frame before it) or a checkpoint does (the maintenance sweep's, every
/// 5 s). What a power cut can take is a result written since then: that delivery is sent again,
/// which "at least once" allows; no message is lost. A batch holding any durable write commits
/// with `synchronous = FULL`, and the connection is FULL outside the relaxed batches.
///
/// A write may ask to hear, before its transaction commits, that its statements ran
/// (`beforeCommit`): the ingest path starts a message's deliveries then, while the commit's
/// `fsync` runs, instead of after it. Every statement of the batch has succeeded by then; only the
/// commit itself (an I/O error, a crash) can still undo the write, and its caller then hears so.
///
/// No task of its own: the caller that finds the writer idle becomes the leader and commits a
/// batch (its own write first); if more writes queued meanwhile, it hands the lead to the oldest
/// of them, whose caller commits the next batch. Every write is committed by a caller that waits
/// for it anyway, and no caller commits more than one batch.
final class BatchWriter: Sendable {
    private struct Job: Sendable {
        /// Runs the write inside the batch's transaction; returns what to do once every write of
        /// the batch ran (just before the commit), and once it committed.
        var run: @Sendable (Database) throws -> Ran
        /// The write, or the transaction holding it, failed: nothing of it was stored.
        var fail: @Sendable (any Error) -> Void
        var waiter: Waiter
        /// Needs its own `fsync` before its caller hears it committed.
        var durable: Bool
    }

    private struct Ran: Sendable {
        var beforeCommit: (@Sendable () -> Void)?
        var committed: @Sendable () -> Void
    }

    /// How a queued caller is woken: its write is done, or it leads the next batch.
    final class Waiter: Sendable {
        enum Wake: Sendable { case done, lead }
        private let state = Mutex<(wake: Wake?, continuation: CheckedContinuation<Wake, Never>?)>((nil, nil))

        func wait() async -> Wake {
            await withCheckedContinuation { (continuation: CheckedContinuation<Wake, Never>) in
                let ready = state.withLock { state -> Wake? in
                    if let wake = state.wake { return wake }
                    state.continuation = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }

        func wake(_ wake: Wake) {
            let continuation = state.withLock { state -> CheckedContinuation<Wake, Never>? in
                state.wake = wake
                defer { state.continuation = nil }
                return state.continuation
            }
            continuation?.resume(returning: wake)
        }
    }

    private final class Outcome<T: Sendable>: Sendable {
        private let value = Mutex<Result<T, any Error>?>(nil)
        func set(_ result: Result<T, any Error>) { value.withLock { $0 = result } }
        func get() throws -> T {
            guard let result = value.withLock({ $0 }) else { throw CancellationError() }
            return try result.get()
        }
    }

    private struct State {
        var queue: [Job] = []
        /// A leader is committing; the queue waits for it. False only with an empty queue.
        var leading = false
    }

    private let writer: any DatabaseWriter
    private let state = Mutex(State())
    /// The connection is at `synchronous = NORMAL` (a relaxed batch ran and FULL was not yet
    /// set back). Read and written only inside the writer's database access.
    private let relaxed = Mutex(false)
    /// Upper bound of writes per transaction, so one batch never holds the write lock for long.
    private let maxBatch = 512

    init(_ writer: any DatabaseWriter) {
        self.writer = writer
    }

    /// `durable: false` only for a write whose loss in a power cut is safe to repeat (see above).
    /// `beforeCommit` runs once, on the writer's thread, with what `body` returned, after every
    /// write of its transaction ran and before the commit: it must be quick and must not write.
    func write<T: Sendable>(
        durable: Bool = true, beforeCommit: (@Sendable (T) -> Void)? = nil, _ body: @escaping @Sendable (Database) throws -> T
    ) async throws -> T {
        let outcome = Outcome<T>()
        let waiter = Waiter()
        let job = Job(
            run: { db in
                let value = try body(db)
                return Ran(
                    beforeCommit: beforeCommit.map { hook in { @Sendable in hook(value) } },
                    committed: { @Sendable in
                        outcome.set(.success(value))
                        waiter.wake(.done)
                    }
                )
            },
            fail: { error in
                outcome.set(.failure(error))
                waiter.wake(.done)
            },
            waiter: waiter,
            durable: durable
        )
        let leads = state.withLock { state -> Bool in
            state.queue.append(job)
            guard !state.leading else { return false }
            state.leading = true
            return true
        }
        let wake: Waiter.Wake = leads ? .lead : await waiter.wait()
        if wake == .lead { await commitBatch() }
        return try outcome.get()
    }

    /// Commits the writes at the head of the queue (the leader's own first), then passes the lead.
    private func commitBatch() async {
        defer { passLead() }
        var jobs = state.withLock { state -> [Job] in
            let batch = Array(state.queue.prefix(maxBatch))
            state.queue.removeFirst(batch.count)
            return batch
        }
        let taken = jobs.count
        while !jobs.isEmpty {
            do {
                let batch = jobs
                let ran = try await transaction(durable: batch.contains { $0.durable }) { db in
                    let ran = try batch.enumerated().map { index, job in
                        do { return try job.run(db) } catch { throw WriteFailed(index: index, error: error) }
                    }
                    // Every write of the batch ran (a failure above reruns the rest first).
                    for hook in ran { hook.beforeCommit?() }
                    return ran
                }
                for job in ran { job.committed() }
                return
            } catch let failed as WriteFailed {
                // Rolled back with the transaction: that write alone hears its error, the
                // others run again. After a few, each goes alone, so that a batch of failing
                // writes is not run over and over.
                jobs.remove(at: failed.index).fail(failed.error)
                if taken - jobs.count >= Self.retriesPerBatch {
                    for job in jobs { await commitAlone(job) }
                    return
                }
            } catch {
                // The transaction failed as a whole (disk full, I/O error): nothing in it was
                // stored, and every caller hears so.
                for job in jobs { job.fail(error) }
                return
            }
        }
    }

    private func commitAlone(_ job: Job) async {
        do {
            let ran = try await transaction(durable: job.durable) { db in
                let ran = try job.run(db)
                ran.beforeCommit?()
                return ran
            }
            ran.committed()
        } catch {
            job.fail(error)
        }
    }

    /// One transaction at the durability its writes need. A relaxed one sets `synchronous =
    /// NORMAL` for itself and FULL again afterwards; should that fail, the next durable
    /// transaction sets FULL before it runs (and fails if it cannot).
    private func transaction<T: Sendable>(durable: Bool, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await writer.writeWithoutTransaction { db in
            if durable, self.relaxed.withLock({ $0 }) {
                try db.execute(sql: "PRAGMA synchronous = FULL")
                self.relaxed.withLock { $0 = false }
            } else if !durable {
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
                self.relaxed.withLock { $0 = true }
            }
            defer {
                if !durable, (try? db.execute(sql: "PRAGMA synchronous = FULL")) != nil {
                    self.relaxed.withLock { $0 = false }
                }
            }
            var result: T?
            try db.inTransaction {
                result = try body(db)
                return .commit
            }
            return result!
        }
    }

    /// Failed writes after which the rest of a batch commits one by one.
    private static let retriesPerBatch = 3

    private struct WriteFailed: Error {
        var index: Int
        var error: any Error
    }

    private func passLead() {
        let next = state.withLock { state -> Waiter? in
            guard let first = state.queue.first else {
                state.leading = false
                return nil
            }
            return first.waiter
        }
        next?.wake(.lead)
    }
}
