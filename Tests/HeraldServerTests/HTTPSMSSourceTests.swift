import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldTesting
import NIOCore
import NIOHTTP1
import Testing

/// httpSMS's CloudEvents to the real `herald` binary, with the bearer JWT httpSMS signs.
@Suite("httpsms source (the herald binary)")
struct HTTPSMSSourceTests {
    static let key = "httpsms-signing-key-0001"
    static let audience = "https://herald.example.com/sources/my-httpsms"
    static let event = #"{"specversion":"1.0","id":"0f4c3d8e-2a0b-4b7e-9d0c-3b5d8e1f2a6c","source":"/v1/messages/receive","type":"message.phone.received","time":"2024-06-22T08:46:40.123Z","datacontenttype":"application/json","data":{"message_id":"5b2a9f3e-7c1d-4e8a-b6f0-1d2c3b4a5e6f","user_id":"XtABz6zdeFMoBLoltz6SREDvRSh2","owner":"+15557654321","encrypted":false,"contact":"+15551234567","timestamp":"2024-06-22T08:46:39.000Z","content":"Your code is 123456","sim":"SIM1","attachments":[]}}"#

    static func post(_ port: Int, _ body: String, token: String?) async throws -> Int {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/sources/my-httpsms")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "X-Event-Type", value: "message.phone.received")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.body = .bytes(ByteBuffer(string: body))
        return try await send(request).status
    }

    @Test func phoneMessagesAreRoutedOnceAndBadTokensStoreNothing() async throws {
        let server = try await SourceTestServer.start(server: #"listen: "127.0.0.1:0", public_url: "https://herald.example.com""#, sources: """
              my-httpsms: { type: httpsms, signing_key: \(Self.key) }
            """, match: ["my-httpsms"])
        let (port, sink) = (server.port, server.sink)
        let good = HTTPSMSToken.make(signingKey: Self.key, audience: Self.audience, now: Date())

        #expect(try await Self.post(port, Self.event, token: good) == 200)
        let delivered = try #require(await sink.waitForRequests(1).first?.json)
        #expect(delivered["source"] as? String == "my-httpsms")
        #expect(delivered["from"] as? String == "+15551234567")
        #expect(delivered["to"] as? String == "+15557654321")
        #expect(delivered["body"] as? String == "Your code is 123456")
        #expect(delivered["otp"] as? String == "123456")
        #expect(delivered["source_id"] as? String == "5b2a9f3e-7c1d-4e8a-b6f0-1d2c3b4a5e6f")

        #expect(try await Self.post(port, Self.event, token: good) == 200, "sent again: 2xx, stored once")
        let forged = Self.event.replacingOccurrences(of: "5b2a9f3e", with: "11111111")
        #expect(try await Self.post(port, forged, token: HTTPSMSToken.make(signingKey: "other", audience: Self.audience, now: Date())) == 403)
        #expect(try await Self.post(port, forged, token: HTTPSMSToken.make(signingKey: Self.key, audience: Self.audience, now: Date().addingTimeInterval(-1300))) == 403, "expired")
        #expect(try await Self.post(port, forged, token: HTTPSMSToken.make(signingKey: Self.key, audience: "https://elsewhere.example/x", now: Date())) == 403, "audience")
        #expect(try await Self.post(port, forged, token: nil) == 401)
        #expect(try await Self.post(port, forged.replacingOccurrences(of: #""encrypted":false"#, with: #""encrypted":true"#), token: good) == 422)
        #expect(try await Self.post(port, #"{"type":"message.phone.sent","data":{}}"#, token: good) == 200, "other events are dropped")
        try await Task.sleep(for: .milliseconds(300))
        #expect(sink.requests.count == 1)
        await server.stop()
    }
}
