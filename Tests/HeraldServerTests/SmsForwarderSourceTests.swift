import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldTesting
import NIOCore
import NIOHTTP1
import Testing

/// SmsForwarder's webhook sender to the real `herald` binary, in its default form mode (the sign
/// encoded twice) and with a JSON template.
@Suite("smsforwarder source (the herald binary)")
struct SmsForwarderSourceTests {
    static let secret = "SECherald-test"

    static func post(_ port: Int, _ body: String, contentType: String, query: String = "?token=forwarder-token") async throws -> Int {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/sources/cn-phone\(query)")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: contentType)
        request.body = .bytes(ByteBuffer(string: body))
        return try await send(request).status
    }

    static func formEncode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text
    }

    /// The default form: `content` is the app's template, `sign` URL-encoded by the app and again by OkHttp.
    static func form(timestamp: Int64, secret: String = secret, code: String = "123456") -> String {
        let sign = formEncode(SmsForwarderSignature.compute(timestamp: "\(timestamp)", secret: secret))
        let content = "+15551234567\nYour code is \(code)\nSIM1_\nSubId\u{FF1A}1\n2026-12-02 15:46:11"
        return "from=\(formEncode("+15551234567"))&content=\(formEncode(content))&timestamp=\(timestamp)&sign=\(formEncode(sign))"
    }

    @Test func formAndJSONModesAreRoutedAndUnsignedOrStaleRequestsStoreNothing() async throws {
        let server = try await SourceTestServer.start(sources: """
              cn-phone: { type: smsforwarder, secret: \(Self.secret), token: forwarder-token }
            """, match: ["cn-phone"])
        let (port, sink) = (server.port, server.sink)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let form = "application/x-www-form-urlencoded"

        #expect(try await Self.post(port, Self.form(timestamp: now), contentType: form) == 200)
        let first = try #require(await sink.waitForRequests(1).first?.json)
        #expect(first["source"] as? String == "cn-phone")
        #expect(first["from"] as? String == "+15551234567")
        #expect(first["otp"] as? String == "123456")
        #expect((first["body"] as? String)?.contains("Your code is 123456") == true)

        // A JSON template with the raw text: [org_content] and the sign encoded once.
        let sign = SmsForwarderSignature.compute(timestamp: "\(now + 1)", secret: Self.secret)
        let json = #"{"from":"+15557770000","text":"Your code is 222333","timestamp":\#(now + 1),"sign":"\#(Self.formEncode(sign))"}"#
        #expect(try await Self.post(port, json, contentType: "application/json") == 200)
        let second = try #require(await sink.waitForRequests(2).last?.json)
        #expect(second["body"] as? String == "Your code is 222333")
        #expect(second["from"] as? String == "+15557770000")

        #expect(try await Self.post(port, Self.form(timestamp: now + 2), contentType: form) == 200, "the same SMS sent again: stored once")
        #expect(try await Self.post(port, Self.form(timestamp: now, code: "999999"), contentType: form, query: "?token=wrong") == 401)
        #expect(try await Self.post(port, Self.form(timestamp: now, code: "999999"), contentType: form, query: "") == 401)
        #expect(try await Self.post(port, Self.form(timestamp: now, secret: "other", code: "999999"), contentType: form) == 403)
        #expect(try await Self.post(port, Self.form(timestamp: now - 600_000, code: "999999"), contentType: form) == 403, "stale")
        try await Task.sleep(for: .milliseconds(300))
        #expect(sink.requests.count == 2)
        await server.stop()
    }
}
