import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldTesting
import NIOCore
import NIOHTTP1
import Testing

/// "Incoming SMS to URL forwarder" to the real `herald` binary: an old phone that does not sign
/// (a token in its URL) and a new one that signs its body.
@Suite("sms-to-url source (the herald binary)")
struct SMSToURLSourceTests {
    static let body = "{\n  \"from\":\"+15551234567\",\n  \"text\":\"Your code is 123456\",\n  \"sentStamp\":\(Int64(Date().timeIntervalSince1970 * 1000)),\n  \"receivedStamp\":1719046001234,\n  \"sim\":\"sim1\"\n}"

    static func post(_ port: Int, _ path: String, _ body: String, headers: [(String, String)] = []) async throws -> Int {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        request.headers.add(name: "User-agent", value: "SMS Forwarder App")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body))
        return try await send(request).status
    }

    @Test func tokenAndSignedPhonesAreRoutedOnceAndStrangersStoreNothing() async throws {
        let server = try await SourceTestServer.start(sources: """
              old-phone: { type: sms-to-url, token: old-phone-token }
              new-phone: { type: sms-to-url, signing_key: new-phone-secret }
            """, match: ["old-phone", "new-phone"])
        let (port, sink) = (server.port, server.sink)

        #expect(try await Self.post(port, "/sources/old-phone?token=old-phone-token", Self.body) == 200)
        let first = try #require(await sink.waitForRequests(1).first?.json)
        #expect(first["source"] as? String == "old-phone")
        #expect(first["from"] as? String == "+15551234567")
        #expect(first["body"] as? String == "Your code is 123456")
        #expect(first["otp"] as? String == "123456")
        #expect((first["source_id"] as? String)?.hasPrefix("sha256:") == true)
        #expect(first["to"] as? String == "sim1", "the SIM that received it")
        #expect(try await Self.post(port, "/sources/old-phone?token=old-phone-token", Self.body) == 200, "the app's retry: stored once")
        #expect(try await Self.post(port, "/sources/old-phone?token=wrong", Self.body) == 401)
        #expect(try await Self.post(port, "/sources/old-phone", Self.body) == 401)

        let signature = SMSToURLSignature.compute(body: Array(Self.body.utf8), secret: "new-phone-secret")
        #expect(try await Self.post(port, "/sources/new-phone", Self.body, headers: [("X-Signature", signature)]) == 200)
        #expect(await sink.waitForRequests(2).last?.json?["source"] as? String == "new-phone")
        let forged = Self.body.replacingOccurrences(of: "123456", with: "654321")
        #expect(try await Self.post(port, "/sources/new-phone", forged, headers: [("X-Signature", signature)]) == 403)
        #expect(try await Self.post(port, "/sources/new-phone", forged) == 401)
        try await Task.sleep(for: .milliseconds(300))
        #expect(sink.requests.count == 2)
        await server.stop()
    }
}
