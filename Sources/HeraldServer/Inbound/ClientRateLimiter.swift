import Foundation
import HTTPTypes
import HeraldCore
import Hummingbird
import Synchronization

/// `server.limits.per_client`: a token bucket per client address; a client over its rate gets 429
/// with `Retry-After`. With `trust_forwarded_headers` the address is the first `X-Forwarded-For`.
struct ClientRateLimiter<Context: RemoteAddressRequestContext>: RouterMiddleware {
    let limits: InboundLimits
    let trustForwarded: Bool
    let metrics: HeraldMetrics
    /// Request paths → the source label for metrics.
    let sources: [String: String]
    let buckets = Buckets()

    final class Buckets: Sendable {
        let state = Mutex<[String: TokenBucket]>([:])
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let client = clientAddress(request, context: context)
        let now = Date()
        let wait = buckets.state.withLock { buckets -> Duration? in
            if buckets.count > 10_000 {
                // Forget clients whose buckets have refilled; the map stays bounded.
                buckets = buckets.filter { !$0.value.isFull(now: now) }
            }
            var bucket = buckets[client] ?? TokenBucket(rate: limits.perClient, burst: limits.perClientBurst, now: now)
            let wait = bucket.take(now: now)
            buckets[client] = bucket
            return wait
        }
        guard let wait else { return try await next(request, context) }
        if let source = sources[request.uri.path] { metrics.eventReceived(source: source, outcome: .rateLimited) }
        let seconds = max(1, Int(wait.seconds.rounded(.up)))
        throw HTTPError(.tooManyRequests, headers: [.retryAfter: "\(seconds)"], message: "too many requests from this address; retry in \(seconds) s")
    }

    func clientAddress(_ request: Request, context: Context) -> String {
        if trustForwarded, let forwarded = request.headers[.xForwardedFor]?.split(separator: ",").first {
            return forwarded.trimmingCharacters(in: .whitespaces)
        }
        return context.remoteAddress?.ipAddress ?? "unknown"
    }
}

extension HTTPField.Name {
    static let xForwardedFor = Self("X-Forwarded-For")!
    static let xForwardedProto = Self("X-Forwarded-Proto")!
    static let xForwardedHost = Self("X-Forwarded-Host")!
}
