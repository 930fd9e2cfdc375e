import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldTesting
import NIOCore
import NIOHTTP1
import Testing

/// A Vonage number's inbound SMS to the real `herald` binary: signed forms and queries, and a long
/// message in parts joined before routing.
@Suite("vonage source (the herald binary)")
struct VonageSourceTests {
    static let secret = "herald-vonage-sig-secret"

    static func signed(_ parameters: [(String, String)], secret: String = secret) -> [(String, String)] {
        parameters + [("sig", VonageSignature.compute(parameters.map { (name: $0.0, value: $0.1) }, secret: secret, method: .sha256).uppercased())]
    }

    static func encode(_ parameters: [(String, String)]) -> String {
        parameters.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&")
    }

    static func post(_ port: Int, _ parameters: [(String, String)]) async throws -> Int {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/sources/my-vonage")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.body = .bytes(ByteBuffer(string: encode(parameters)))
        return try await send(request).status
    }

    static func get(_ port: Int, _ parameters: [(String, String)]) async throws -> Int {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/sources/my-vonage?\(encode(parameters))"), timeout: .seconds(15))
        _ = try await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }

    static func sms(_ id: String, _ text: String, extra: [(String, String)] = []) -> [(String, String)] {
        [("msisdn", "447700900001"), ("to", "447700900000"), ("messageId", id), ("text", text), ("type", "text"),
         ("message-timestamp", "2026-12-02 08:46:40"), ("timestamp", "\(Int(Date().timeIntervalSince1970))"), ("nonce", UUID().uuidString)] + extra
    }

    @Test func signedMessagesAndLongOnesInPartsAreRoutedOnce() async throws {
        let server = try await SourceTestServer.start(sources: """
              my-vonage: { type: vonage, signature_secret: \(Self.secret), signature_method: sha256, multipart_wait: 3s }
            """, match: ["my-vonage"])
        let (port, sink) = (server.port, server.sink)

        #expect(try await Self.post(port, Self.signed(Self.sms("0A01", "Your code is 123456"))) == 200)
        let first = try #require(await sink.waitForRequests(1).first?.json)
        #expect(first["source"] as? String == "my-vonage")
        #expect(first["from"] as? String == "+447700900001")
        #expect(first["to"] as? String == "+447700900000")
        #expect(first["otp"] as? String == "123456")
        #expect(first["source_id"] as? String == "0A01")
        #expect(try await Self.get(port, Self.signed(Self.sms("0A01", "Your code is 123456"))) == 200, "resent as a GET: stored once")

        // A long message in two parts, the second first: one event with the joined text, both answered 200.
        let part1 = Self.signed(Self.sms("0B01", "Your verification code is 4", extra: [("concat", "true"), ("concat-ref", "77"), ("concat-total", "2"), ("concat-part", "1")]))
        let part2 = Self.signed(Self.sms("0B02", "81516. Do not share it.", extra: [("concat", "true"), ("concat-ref", "77"), ("concat-total", "2"), ("concat-part", "2")]))
        async let second = Self.post(port, part2)
        try await Task.sleep(for: .milliseconds(100))
        async let firstPart = Self.post(port, part1)
        #expect(try await [second, firstPart] == [200, 200])
        let joined = try #require(await sink.waitForRequests(2).last?.json)
        #expect(joined["body"] as? String == "Your verification code is 481516. Do not share it.")
        #expect(joined["otp"] as? String == "481516")

        // A part whose sibling never comes is stored after multipart_wait, marked.
        let lonely = Self.signed(Self.sms("0C01", "Half of a message", extra: [("concat", "true"), ("concat-ref", "78"), ("concat-total", "2"), ("concat-part", "1")]))
        let started = Date()
        #expect(try await Self.post(port, lonely) == 200)
        #expect(Date().timeIntervalSince(started) >= 2.9, "the answer waited for the other part")
        #expect(await sink.waitForRequests(3).last?.json?["body"] as? String == "Half of a message[…]")

        let forged = Self.sms("0D01", "Your code is 654321") + [("sig", "00" + String(repeating: "A", count: 62))]
        #expect(try await Self.post(port, forged) == 403)
        #expect(try await Self.post(port, Self.sms("0D02", "Your code is 654321")) == 401, "unsigned")
        #expect(try await Self.post(port, Self.signed(Self.sms("0D03", "Your code is 654321"), secret: "other")) == 403)
        try await Task.sleep(for: .milliseconds(300))
        #expect(sink.requests.count == 3)
        await server.stop()
    }
}
