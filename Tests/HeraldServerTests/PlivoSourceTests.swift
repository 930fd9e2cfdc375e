import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldTesting
import NIOCore
import NIOHTTP1
import Testing

/// A Plivo number's inbound SMS to the real `herald` binary, signed with V3 over the public URL.
@Suite("plivo source (the herald binary)")
struct PlivoSourceTests {
    static let token = "MjQ0YWE1ZGQ0NzY3ZjQ3NzE0ZWQ5MjBhNGVmNDA0"

    static func post(_ port: Int, _ form: [(String, String)], token: String = token, headers extra: [(String, String)]? = nil) async throws -> (Int, String) {
        let path = "/sources/my-plivo?tenant=acme"
        let nonce = "\(UInt64.random(in: 1...UInt64.max))"
        let body = form.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&")
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        let signature = PlivoSignature.v3(url: "https://herald.example.com" + path, parameters: form.map { (name: $0.0, value: $0.1) }, nonce: nonce, authToken: token)
        for (name, value) in extra ?? [("X-Plivo-Signature-V3", signature), ("X-Plivo-Signature-V3-Nonce", nonce)] { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    static let form = [("From", "15551234567"), ("To", "15557654321"), ("Text", "Your code is 123456"), ("Type", "sms"),
                       ("MessageUUID", "2b0fc1f6-3a4e-11ef-9a5b-0242ac110002"), ("Units", "1"), ("MessageIntent", "")]

    @Test func inboundSMSIsRoutedOnceAndForgeriesStoreNothing() async throws {
        let server = try await SourceTestServer.start(server: #"listen: "127.0.0.1:0", public_url: "https://herald.example.com""#, sources: """
              my-plivo: { type: plivo, auth_token: \(Self.token) }
            """, match: ["my-plivo"])
        let (port, sink) = (server.port, server.sink)

        let (status, answer) = try await Self.post(port, Self.form)
        #expect(status == 200)
        #expect(answer == "<Response></Response>", "Plivo reads Message XML")
        let delivered = try #require(await sink.waitForRequests(1).first?.json)
        #expect(delivered["source"] as? String == "my-plivo")
        #expect(delivered["from"] as? String == "+15551234567")
        #expect(delivered["to"] as? String == "+15557654321")
        #expect(delivered["otp"] as? String == "123456")
        #expect(delivered["source_id"] as? String == "2b0fc1f6-3a4e-11ef-9a5b-0242ac110002")

        #expect(try await Self.post(port, Self.form).0 == 200, "sent again: stored once")
        var forged = Self.form
        forged[2].1 = "Your code is 654321"
        forged[4].1 = "00000000-0000-0000-0000-000000000000"
        #expect(try await Self.post(port, forged, token: "another-account").0 == 403)
        #expect(try await Self.post(port, forged, headers: [("X-Plivo-Signature-V2", "c2lnbmVk"), ("X-Plivo-Signature-V2-Nonce", "1")]).0 == 403, "V2 alone")
        #expect(try await Self.post(port, forged, headers: []).0 == 401)
        try await Task.sleep(for: .milliseconds(300))
        #expect(sink.requests.count == 1)
        await server.stop()
    }
}
