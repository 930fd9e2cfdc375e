import Foundation
import HTTPTypes
import HeraldCore
import Hummingbird
import Synchronization

/// Answers that mean the request did not prove itself (or was not worth reading).
private let failedProof: Set<HTTPResponse.Status> = [.badRequest, .unauthorized, .forbidden, .contentTooLarge]

/// `server.limits.per_client`: a token bucket per client; a client over its rate gets 429 with
/// `Retry-After`.
///
/// Requests that prove who they are (a Twilio signature, the JSON source's token, the admin
/// token) are never refused by it: on those paths only a failed proof takes a token, and a
/// client out of tokens gets 429 instead of 401/403 — so unauthenticated traffic through the same
/// proxy cannot lock Twilio out (Twilio does not retry a 429). Everything else takes a token
/// before it is served. A client is its peer address, or, from a trusted proxy, the right-most
/// `X-Forwarded-For` hop that is not one (`server.trusted_proxies`).
struct ClientRateLimiter<Context: RemoteAddressRequestContext>: RouterMiddleware {
    let limits: InboundLimits
    let proxies: TrustedProxies
    let metrics: HeraldMetrics
    /// Request paths → the source label for metrics.
    let sources: [String: String]
    let buckets = Buckets()

    final class Buckets: Sendable {
        let state = Mutex<[String: TokenBucket]>([:])
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let client = clientAddress(request, context: context)
        let path = request.uri.path
        guard sources[path] != nil || path.hasPrefix("/admin/") else {
            try refuseIfOver(client, path: path)
            return try await next(request, context)
        }
        do {
            let response = try await next(request, context)
            if failedProof.contains(response.status) { try refuseIfOver(client, path: path) }
            return response
        } catch let error as HTTPError where failedProof.contains(error.status) {
            try refuseIfOver(client, path: path)
            throw error
        }
    }

    /// Takes a token for `client`, or throws 429 when there is none.
    func refuseIfOver(_ client: String, path: String) throws {
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
        guard let wait else { return }
        if let source = sources[path] { metrics.eventReceived(source: source, outcome: .rateLimited) }
        let seconds = max(1, Int(wait.seconds.rounded(.up)))
        throw HTTPError(.tooManyRequests, headers: [.retryAfter: "\(seconds)"], message: "too many requests from this address; retry in \(seconds) s")
    }

    func clientAddress(_ request: Request, context: Context) -> String {
        proxies.client(peer: context.remoteAddress?.ipAddress, forwardedFor: request.headers[values: .xForwardedFor])
    }
}

extension HTTPField.Name {
    static let xForwardedFor = Self("X-Forwarded-For")!
    static let xForwardedProto = Self("X-Forwarded-Proto")!
    static let xForwardedHost = Self("X-Forwarded-Host")!
    static let forwarded = Self("Forwarded")!
}
