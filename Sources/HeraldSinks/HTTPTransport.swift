import AsyncHTTPClient
import Foundation
import HeraldCore
import NIOCore
import NIOHTTP1

/// Sends one request with a deadline and reads at most 64 KiB of the answer. Shared by the HTTP
/// based sinks so that timeouts and error texts are the same everywhere.
struct HTTPTransport: Sendable {
    let client: HTTPClient

    struct Answer {
        var status: Int
        var retryAfter: String?
        var body: String
    }

    func send(url: String, method: HTTPMethod, headers: [(String, String)], body: Data, timeout: Duration) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await client.execute(request, timeout: .milliseconds(Int64(timeout.seconds * 1000)))
        let buffer = try await response.body.collect(upTo: 64 * 1024)
        return Answer(
            status: Int(response.status.code),
            retryAfter: response.headers.first(name: "Retry-After"),
            body: String(buffer: buffer)
        )
    }
}
