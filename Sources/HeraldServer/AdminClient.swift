import AsyncHTTPClient
import Foundation
import HeraldCore
import NIOCore
import NIOHTTP1

/// The admin API from the other side: `herald retry` asks a running server through this, with
/// the same types the server encodes.
public struct AdminClient: Sendable {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// No server answered (not running, or another address).
        case unreachable
        /// The server answered with a refusal and its reason.
        case refused(status: Int, message: String)

        public var description: String {
            switch self {
            case .unreachable: "no Herald answered"
            case .refused(let status, let message): "HTTP \(status): \(message)"
            }
        }
    }

    let baseURL: String
    let token: Secret
    let client: HTTPClient
    let timeout: Duration

    /// `baseURL` like `http://127.0.0.1:8080`.
    public init(baseURL: String, token: Secret, client: HTTPClient = .shared, timeout: Duration = .seconds(5)) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.client = client
        self.timeout = timeout
    }

    /// The server the configuration describes, on its `listen` address.
    public init(config: HeraldConfig, token: Secret, client: HTTPClient = .shared) {
        let host = config.server.host.contains(":") ? "[\(config.server.host)]" : config.server.host
        self.init(baseURL: "http://\(host):\(config.server.port)", token: token, client: client)
    }

    public func retry(deliveryID: String) async throws -> AdminDelivery {
        try await call(.POST, "/admin/deliveries/\(escaped(deliveryID))/retry")
    }

    public func deliveries(state: DeliveryState? = nil, sink: String? = nil, limit: Int = 50) async throws -> [AdminDelivery] {
        var query = ["limit=\(limit)"]
        if let state { query.append("state=\(state.rawValue)") }
        if let sink { query.append("sink=\(escaped(sink))") }
        let list: AdminDeliveryList = try await call(.GET, "/admin/deliveries?" + query.joined(separator: "&"))
        return list.deliveries
    }

    public func event(id: String) async throws -> AdminEvent {
        try await call(.GET, "/admin/events/\(escaped(id))")
    }

    public func reload() async throws -> AdminReload {
        try await call(.POST, "/admin/reload")
    }

    private func call<T: Decodable>(_ method: HTTPMethod, _ path: String) async throws -> T {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token.value)")
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await client.execute(request, timeout: .milliseconds(Int64(timeout.seconds * 1000)))
            body = try await response.body.collect(upTo: 4 << 20)
        } catch {
            throw Failure.unreachable
        }
        let data = Data(body.readableBytesView)
        guard (200..<300).contains(Int(response.status.code)) else {
            let message = (try? JSONDecoder().decode(AdminErrorBody.self, from: data))?.error.message
                ?? (try? JSONDecoder().decode(AdminReload.self, from: data))?.errors?.joined(separator: "\n")
                ?? "the server refused (\(response.status.code))"
            throw Failure.refused(status: Int(response.status.code), message: message)
        }
        return try JSONDecoder().decode(T.self, from: data)
    }

    private func escaped(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?&="))) ?? text
    }
}
