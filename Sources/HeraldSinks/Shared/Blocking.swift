import Dispatch

/// Work that blocks its thread (file writes, libcurl transfers) runs on threads of its own, never
/// on Swift's cooperative pool, where two blocked calls would stall every task on this 2-core box.
enum Blocking {
    static let queue = DispatchQueue(label: "herald.blocking", attributes: .concurrent)

    static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: body()) }
        }
    }
}
