import AsyncHTTPClient
import Foundation
import HeraldCore
import NIOCore
import NIOHTTP1

/// Sends one request with a deadline and reports what happened (`SinkReport`), reading at most
/// the first 64 KiB of the answer. Shared by the HTTP based sinks so that timeouts and error
/// texts are the same everywhere. Public for `herald-bench`, which measures its cost per request.
public struct HTTPTransport: Sendable {
    let client: HTTPClient

    public init(client: HTTPClient) { self.client = client }

    /// `keep`: response headers the sink reads (a service's rate-limit headers), lower-cased.
    public func send(url: String, method: HTTPMethod, headers: [(String, String)], body: Data?, timeout: Duration, keep: [String] = []) async -> SinkReport {
        do {
            return try await exchange(url: url, method: method, headers: headers, body: body, timeout: timeout, keep: keep)
        } catch {
            return .transport(Classifier.describe(error: error, timeout: timeout))
        }
    }

    private func exchange(url: String, method: HTTPMethod, headers: [(String, String)], body: Data?, timeout: Duration, keep: [String]) async throws -> SinkReport {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await client.execute(request, timeout: .milliseconds(Int64(timeout.seconds * 1000)))
        // The status decides the outcome; the body only explains it. A large answer is cut to its
        // first `maxBody` bytes rather than failing the attempt (a 2xx with a big body was once
        // classified as a transport error and sent again). A body that breaks off after a 2xx
        // status is still a delivery.
        var prefix = ByteBuffer()
        do {
            for try await chunk in response.body {
                var chunk = chunk
                if let slice = chunk.readSlice(length: min(chunk.readableBytes, Self.maxBody - prefix.readableBytes)) {
                    prefix.writeImmutableBuffer(slice)
                }
                if prefix.readableBytes >= Self.maxBody { break }
            }
        } catch where (200..<300).contains(Int(response.status.code)) {}
        var kept: [String: String] = [:]
        for name in keep { kept[name] = response.headers.first(name: name) }
        return .http(
            status: Int(response.status.code),
            retryAfter: response.headers.first(name: "Retry-After"),
            body: String(decoding: prefix.readableBytesView, as: UTF8.self),
            headers: kept
        )
    }

    /// How much of an answer is read.
    static let maxBody = 64 * 1024
}
