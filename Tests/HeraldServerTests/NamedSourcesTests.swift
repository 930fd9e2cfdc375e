import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldTesting
import NIOCore
import NIOHTTP1
import Testing

/// Sources of the first two types under names of their own: a second Twilio account and a second
/// JSON sender, each with its own secret, path and `source`.
@Suite("Named twilio and http sources (the herald binary)")
struct NamedSourcesTests {
    static func twilio(_ port: Int, path: String, token: String, sid: String) async throws -> Int {
        let parameters = [("MessageSid", twilioSID(sid)), ("From", "+15551234567"), ("To", "+15005550009"), ("Body", "Your code is 314159")]
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "X-Twilio-Signature", value: TwilioSignature.compute(url: "http://herald.test" + path, parameters: parameters.map { (name: $0.0, value: $0.1) }, authToken: token))
        request.body = .bytes(ByteBuffer(string: parameters.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&")))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }

    @Test func aSecondTwilioAccountAndASecondJSONSenderAreSourcesOfTheirOwn() async throws {
        let sink = try await FakeReceiver.start()
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try """
            server: { listen: "127.0.0.1:0", public_url: "http://herald.test" }
            storage: sqlite:state/herald.db
            sources:
              twilio: { auth_token: main-account-token }
              work-twilio: { type: twilio, auth_token: work-account-token }
              shortcut: { type: http, token: shortcut-token }
            sinks:
              work: { type: http, url: "\(sink.url("/work"))" }
              everything: { type: http, url: "\(sink.url("/all"))" }
            routes:
              - match: { source: [work-twilio] }
                deliver: [work]
                continue: true
              - deliver: [everything]
            """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)
        let herald = try HeraldProcess(["serve"], directory: folder)
        let port = try #require(await herald.listeningPort(), "\(herald.text)")

        #expect(try await Self.twilio(port, path: "/sources/work-twilio", token: "work-account-token", sid: "SMwork1") == 200)
        let work = await sink.waitForRequests(2)
        #expect(Set(work.map(\.path)) == ["/work", "/all"])
        #expect(work.allSatisfy { $0.json?["source"] as? String == "work-twilio" })
        #expect(try await Self.twilio(port, path: "/sources/work-twilio", token: "main-account-token", sid: "SMwork2") == 403, "each account's own token")
        #expect(try await Self.twilio(port, path: "/twilio/sms", token: "main-account-token", sid: "SMmain1") == 200)
        #expect(await sink.waitForRequests(3).last?.json?["source"] as? String == "twilio")

        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/sources/shortcut")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer shortcut-token")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: #"{"from":"+15550001111","body":"Your code is 271828"}"#))
        #expect(try await HTTPClient.shared.execute(request, timeout: .seconds(10)).status.code == 202)
        #expect(await sink.waitForRequests(4).last?.json?["source"] as? String == "shortcut")
        try await Task.sleep(for: .milliseconds(300))
        #expect(sink.requests.count == 4)
        herald.signal(SIGTERM)
        #expect(await herald.wait() == 0)
        await sink.stop()
    }
}
