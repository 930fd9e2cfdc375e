import AsyncHTTPClient
import Crypto
import Foundation
import HeraldCore
import HeraldTesting
import NIOCore
import NIOHTTP1
import Testing

/// A Telnyx number's inbound webhooks to the real `herald` binary, signed with Ed25519.
@Suite("telnyx source (the herald binary)")
struct TelnyxSourceTests {
    /// The key of PROTOCOLS.md A5's vector (seed = sha256("herald-telnyx-test-vector-seed")).
    static let key = try! Curve25519.Signing.PrivateKey(rawRepresentation: Array(Data(hex: "bfb3f3e621e394c2b38df25cd54886fdede4cf76647041c185d5d7a138420839")!))
    static let body = #"{"data":{"event_type":"message.received","id":"b301ed3f-1490-491f-995f-6e64e69674d4","occurred_at":"2024-06-22T08:46:40.000+00:00","payload":{"direction":"inbound","encoding":"GSM-7","from":{"carrier":"T-Mobile USA","line_type":"Wireless","phone_number":"+15551234567"},"id":"84cca175-9755-4859-b67f-4730d7f58aa3","media":[],"messaging_profile_id":"740572b6-099c-44a1-89b9-6c92163bc68d","parts":1,"received_at":"2024-06-22T08:46:39.000+00:00","record_type":"message","text":"Your code is 123456","to":[{"carrier":"Telnyx","line_type":"Wireless","phone_number":"+15557654321","status":"webhook_delivered"}],"type":"SMS"},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://herald.example.com/hooks/telnyx"}}"#

    static func post(_ port: Int, _ body: String, timestamp: Int = Int(Date().timeIntervalSince1970),
                     key: Curve25519.Signing.PrivateKey = key) async throws -> Int {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/sources/my-telnyx")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        let signed = Array("\(timestamp)|".utf8) + Array(body.utf8)
        request.headers.add(name: "telnyx-timestamp", value: "\(timestamp)")
        request.headers.add(name: "telnyx-signature-ed25519", value: try key.signature(for: signed).base64EncodedString())
        request.body = .bytes(ByteBuffer(string: body))
        return try await send(request).status
    }

    @Test func inboundMessagesAreRoutedOnceAndForgeriesStoreNothing() async throws {
        #expect(Self.key.publicKey.rawRepresentation.base64EncodedString() == "7HfuTGHHP/ZqrJHCKY7IHJ0h1S0/6FC9iZ8xAB8lQ9Q=")
        let server = try await SourceTestServer.start(sources: """
              my-telnyx: { type: telnyx, public_key: "7HfuTGHHP/ZqrJHCKY7IHJ0h1S0/6FC9iZ8xAB8lQ9Q=" }
            """, match: ["my-telnyx"])
        let (port, sink) = (server.port, server.sink)

        #expect(try await Self.post(port, Self.body) == 200)
        let delivered = try #require(await sink.waitForRequests(1).first?.json)
        #expect(delivered["source"] as? String == "my-telnyx")
        #expect(delivered["from"] as? String == "+15551234567")
        #expect(delivered["to"] as? String == "+15557654321")
        #expect(delivered["body"] as? String == "Your code is 123456")
        #expect(delivered["otp"] as? String == "123456")
        #expect(delivered["source_id"] as? String == "84cca175-9755-4859-b67f-4730d7f58aa3")

        #expect(try await Self.post(port, Self.body) == 200, "Telnyx sends an event twice at times: 2xx, stored once")
        let forged = Self.body.replacingOccurrences(of: "84cca175", with: "99999999").replacingOccurrences(of: "123456", with: "654321")
        #expect(try await Self.post(port, forged, key: Curve25519.Signing.PrivateKey()) == 403, "another key")
        #expect(try await Self.post(port, forged, timestamp: Int(Date().timeIntervalSince1970) - 301) == 403, "older than 300 s")
        let report = #"{"data":{"event_type":"message.finalized","id":"e1","payload":{"id":"m1"}}}"#
        #expect(try await Self.post(port, report) == 200, "a delivery report is acknowledged and dropped")
        try await Task.sleep(for: .milliseconds(300))
        #expect(sink.requests.count == 1)
        await server.stop()
    }
}

extension Data {
    init?(hex: String) {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        self.init(bytes)
    }
}
