import Synchronization

/// Group commit for one statement: calls that arrive while a batch is being written go together
/// in the next one, so a burst costs one round trip and one commit instead of one each. Each
/// caller is resumed once the batch holding its input has committed (or with its error).
final class Batcher<Input: Sendable, Output: Sendable>: Sendable {
    typealias Flush = @Sendable ([Input]) async throws -> [Output]

    private struct Waiting: Sendable {
        var input: Input
        var continuation: CheckedContinuation<Output, any Error>
    }

    private let state = Mutex<(queue: [Waiting], running: Bool)>(([], false))
    private let flush: Flush
    private let maxBatch: Int

    /// `flush` gets the inputs in arrival order and answers one output per input, in that order.
    init(maxBatch: Int = 256, flush: @escaping Flush) {
        self.flush = flush
        self.maxBatch = maxBatch
    }

    func submit(_ input: Input) async throws -> Output {
        try await withCheckedThrowingContinuation { continuation in
            let lead = state.withLock { state -> Bool in
                state.queue.append(Waiting(input: input, continuation: continuation))
                guard !state.running else { return false }
                state.running = true
                return true
            }
            if lead { Task { await self.drain() } }
        }
    }

    private func drain() async {
        while true {
            let batch = state.withLock { state -> [Waiting] in
                let batch = Array(state.queue.prefix(maxBatch))
                state.queue.removeFirst(batch.count)
                if batch.isEmpty { state.running = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            do {
                let outputs = try await flush(batch.map(\.input))
                guard outputs.count == batch.count else { throw CancellationError() }
                for (waiting, output) in zip(batch, outputs) { waiting.continuation.resume(returning: output) }
            } catch {
                for waiting in batch { waiting.continuation.resume(throwing: error) }
            }
        }
    }
}
