import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldTesting
import NIOCore
import NIOHTTP1
import Testing

/// An Android phone with SMS Gateway for Android posting to the real `herald` binary: the app's
/// exact payload, its signature, its retries and pings.
@Suite("sms-gateway source (the herald binary)")
struct SMSGatewayTests {
    static let signingKey = "phone-signing-key-1"
    /// The app's JSON as it sends it (Gson escapes the apostrophe; absent fields are left out).
    static let received = #"{"id":"Ey6ECgOkVVFjz3CL48B8C","webhookId":"LreFUt-Z3sSq0JufY9uWB","event":"sms:received","deviceId":"ffffffffceb0b1db0000018e937c815b","payload":{"message":"Your code is 123456. Don\u0027t share it.","receivedAt":"2024-06-22T15:46:11.000+07:00","messageId":"7c2a91f0","sender":"+15551234567","recipient":"+15557654321","simNumber":1,"phoneNumber":"+15551234567"}}"#
    static let ping = #"{"id":"q1ZfN0cYlkZ2BWuS3Hb0x","webhookId":"LreFUt-Z3sSq0JufY9uWC","event":"system:ping","deviceId":"ffffffffceb0b1db0000018e937c815b","payload":{"health":{"status":"pass","checks":{},"version":"1.40.0","releaseId":1}}}"#

    struct Answer {
        var status: Int
        var body: String
    }

    static func post(_ port: Int, _ body: String, timestamp: Int = Int(Date().timeIntervalSince1970), key: String = signingKey,
                     signed: Bool = true) async throws -> Answer {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/sources/my-phone")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json; charset=UTF-8")
        request.headers.add(name: "User-Agent", value: "me.capcom.smsgateway/1.40.0")
        if signed {
            request.headers.add(name: "X-Timestamp", value: "\(timestamp)")
            request.headers.add(name: "X-Signature", value: SMSGatewaySignature.compute(body: Array(body.utf8), timestamp: "\(timestamp)", signingKey: key))
        }
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        return Answer(status: Int(response.status.code), body: String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    static func admin(_ port: Int, _ path: String) async throws -> String {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.headers.add(name: "Authorization", value: "Bearer admin-token")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
        return String(buffer: try await response.body.collect(upTo: 1 << 20))
    }

    @Test func aPhonesMessagesAreRoutedOnceAndForgeriesStoreNothing() async throws {
        let sink = try await FakeReceiver.start()
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try """
            server: { listen: "127.0.0.1:0", admin_token: admin-token }
            storage: sqlite:state/herald.db
            sources:
              my-phone: { type: sms-gateway, signing_key: \(Self.signingKey) }
            sinks:
              hook: { type: http, url: "\(sink.url("/hook"))" }
            routes:
              - name: phone
                match: { source: [my-phone] }
                deliver: [hook]
            """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)
        let herald = try HeraldProcess(["serve"], directory: folder)
        let port = try #require(await herald.listeningPort(), "\(herald.text)")

        let first = try await Self.post(port, Self.received)
        #expect(first.status == 200, "\(first.body)")
        let delivered = try #require(await sink.waitForRequests(1).first?.json)
        #expect(delivered["source"] as? String == "my-phone")
        #expect(delivered["from"] as? String == "+15551234567")
        #expect(delivered["to"] as? String == "+15557654321")
        #expect(delivered["body"] as? String == "Your code is 123456. Don't share it.")
        #expect(delivered["otp"] as? String == "123456")
        #expect(delivered["source_id"] as? String == "ffffffffceb0b1db0000018e937c815b|7c2a91f0|2024-06-22T15:46:11.000+07:00|+15551234567")
        #expect(delivered["route"] as? String == "phone")

        // The app retries with a fresh timestamp (same body): 2xx, nothing new.
        #expect(try await Self.post(port, Self.received).status == 200)
        // Forgeries and replays: refused, nothing stored.
        let forged = Self.received.replacingOccurrences(of: "123456", with: "654321")
        #expect(try await Self.post(port, forged, key: "not-the-key").status == 403, "wrong signature")
        #expect(try await Self.post(port, forged, timestamp: Int(Date().timeIntervalSince1970) - 600).status == 403, "stale timestamp")
        #expect(try await Self.post(port, forged, timestamp: Int(Date().timeIntervalSince1970) + 600).status == 403, "timestamp ahead")
        #expect(try await Self.post(port, forged, signed: false).status == 401, "unsigned")
        #expect(try await Self.post(port, "{not json", timestamp: Int(Date().timeIntervalSince1970)).status == 400)
        try await Task.sleep(for: .milliseconds(300))
        #expect(sink.requests.count == 1, "one delivery for one SMS")
        let events = try await Self.admin(port, "/admin/events")
        #expect(events.components(separatedBy: "\"source\":\"my-phone\"").count == 2, "one event: \(events.prefix(300))")
        #expect(!events.contains("Your code is 654321"), "no forged message stored")

        // A ping marks the phone alive and stores nothing.
        #expect(try await Self.post(port, Self.ping).status == 200)
        let sources = try await Self.admin(port, "/admin/sources")
        #expect(sources.contains("\"name\":\"my-phone\"") && sources.contains("\"type\":\"sms-gateway\"") && sources.contains("\"path\":\"\\/sources\\/my-phone\"")
                || sources.contains("\"path\":\"/sources/my-phone\""), "\(sources)")
        #expect(sources.contains("\"last_ping_at\":\"") && sources.contains("\"last_message_at\":\""), "\(sources)")
        var metrics = HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics")
        metrics.method = .GET
        let scrape = String(buffer: try await HTTPClient.shared.execute(metrics, timeout: .seconds(5)).body.collect(upTo: 1 << 20))
        #expect(scrape.contains("herald_source_last_seen_timestamp_seconds{source=\"my-phone\"}"), "\(scrape.prefix(2000))")
        #expect(scrape.contains("herald_events_received_total{source=\"my-phone\",outcome=\"duplicate\"} 1"))
        #expect(scrape.contains("herald_events_received_total{source=\"my-phone\",outcome=\"rejected_signature\"} 3"))
        #expect(!herald.text.contains(Self.signingKey) && !herald.text.contains("123456"), "no key or code in the log")
        herald.signal(SIGTERM)
        #expect(await herald.wait() == 0)
        await sink.stop()
    }

    /// `herald sign --source` prints the headers that make a body valid (the app's own vector).
    @Test func signPrintsTheHeadersForABody() async throws {
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try """
            sources:
              my-phone: { type: sms-gateway, signing_key: kY3pZ9qR }
            sinks: { inbox: { type: file, path: inbox.jsonl } }
            routes: [ { deliver: [inbox] } ]
            """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)
        try Self.received.write(to: folder.appendingPathComponent("sms.json"), atomically: true, encoding: .utf8)
        let sign = try HeraldProcess(["sign", "--source", "my-phone", "--body-file", "sms.json", "--timestamp", "1719046000"], directory: folder)
        #expect(await sign.wait() == 0)
        #expect(sign.text == "X-Timestamp: 1719046000\nX-Signature: a4ac07f21c686f7d76753178246026117a9253bd4ab785f921d433654dd2419f\n")
        // The other types: what sign prints passes the server's own checks.
        try """
            server: { public_url: "https://herald.example.com" }
            sources:
              hs: { type: httpsms, signing_key: k1 }
              fw: { type: smsforwarder, secret: s1, token: t1 }
              tx: { type: telnyx, public_key: "7HfuTGHHP/ZqrJHCKY7IHJ0h1S0/6FC9iZ8xAB8lQ9Q=" }
            sinks: { inbox: { type: file, path: inbox.jsonl } }
            routes: [ { deliver: [inbox] } ]
            """.write(to: folder.appendingPathComponent("other.yaml"), atomically: true, encoding: .utf8)
        let hs = try HeraldProcess(["sign", "--config", "other.yaml", "--source", "hs"], directory: folder)
        #expect(await hs.wait() == 0)
        let token = hs.text.replacingOccurrences(of: "Authorization: Bearer ", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(HTTPSMSToken.check(token, signingKey: "k1", audience: "https://herald.example.com/sources/hs", now: Date()) == nil, "\(hs.text)")
        let fw = try HeraldProcess(["sign", "--config", "other.yaml", "--source", "fw", "--timestamp", "1719046000"], directory: folder)
        #expect(await fw.wait() == 0)
        let forwarderSign = fw.text.components(separatedBy: "sign=").last?.components(separatedBy: "\n").first ?? ""
        #expect(SmsForwarderSignature.isValid(sign: forwarderSign, timestamp: "1719046000000", secret: "s1"), "\(fw.text)")
        let tx = try HeraldProcess(["sign", "--config", "other.yaml", "--source", "tx"], directory: folder)
        #expect(await tx.wait() != 0)
        #expect(tx.text.contains("only Telnyx holds"))

        let unknown = try HeraldProcess(["sign", "--source", "nope", "--body-file", "sms.json"], directory: folder)
        #expect(await unknown.wait() != 0)
        #expect(unknown.text.contains("no source 'nope'"))
    }
}
