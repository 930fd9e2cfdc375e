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
        // Sink lanes default to 4 deliveries at once but may be set higher; let the pool follow.
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()
}
