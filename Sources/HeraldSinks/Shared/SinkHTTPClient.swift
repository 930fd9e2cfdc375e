import AsyncHTTPClient
import NIOCore

/// The HTTP client every sink shares. Unlike `HTTPClient.shared` it does not retry a refused
/// connection inside one request until the connect timeout: a dead receiver fails the attempt at
/// once, and the delivery's own retry policy (with its backoff and expiry) decides what comes next.
public enum SinkHTTPClient {
    public static let shared: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(5)
        configuration.redirectConfiguration = .disallow
        // Sink lanes default to 32 deliveries at once and may be set up to 256; let the pool
        // follow, so a busy lane never waits for a connection. Connections are kept alive and
        // reused (idle ones close after the pool's 60 s).
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 256
        // No tracing: by default the client takes the process's tracer, a no-op one here, and
        // still builds every request's span attributes (parsing its URL a second time): ~2 % of
        // Herald's CPU under load.
        configuration.tracing.tracer = nil
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()
}
