import AsyncHTTPClient
import Foundation
import HeraldCore
@testable import HeraldSinks
import HeraldTesting
import Testing

@Suite("Sinks")
struct SinkTests {
    @Test func slackShowsTheCodeAndEscapesTheSMS() async throws {
        let receiver = try await FakeReceiver.start()
        defer { Task { await receiver.stop() } }
        let config = try ConfigLoader.parse("""
            sinks: { team: { type: slack, webhook_url: "\(receiver.url("/services/T/B/X"))" } }
            routes: [ { deliver: [team] } ]
            """)
        let sink = SinkFactory.makeSink(config.sinks[0])
        let outcome = await sink.deliver(sampleRequest(body: "<!channel> Your code is 123456 & <http://evil|click>"))
        #expect(outcome == .delivered(detail: "Slack: ok"))
        let request = try #require(receiver.requests.first)
        #expect(request.method == "POST")
        #expect(request.path == "/services/T/B/X")
        #expect(request.header("Content-Type")?.hasPrefix("application/json") == true)
        let text = try #require(request.json?["text"] as? String)
        #expect(text == "*123456*  ·  AWS  ·  from +15551234567\n&lt;!channel&gt; Your code is 123456 &amp; &lt;http://evil|click&gt;")
        #expect(!text.contains("<!channel>"))
    }

    /// Defect 7: a 2xx answer over 64 KiB made reading the body throw, which counted as a
    /// transport error: the message was sent again up to max_attempts times.
    @Test(arguments: [(200, "delivered"), (500, "retry"), (400, "permanent")])
    func aLargeAnswerIsClassifiedByItsStatus(_ status: Int, _ label: String) async throws {
        let big = String(repeating: "x", count: 200 * 1024)
        let receiver = try await FakeReceiver.start(fallback: .status(status, big))
        defer { Task { await receiver.stop() } }
        let sink = HTTPSink(name: "audit", settings: try httpSettings(receiver.url("/big")), timeout: .seconds(5), client: SinkHTTPClient.shared)
        let outcome = await sink.deliver(sampleRequest())
        #expect(outcome.label == label)
        #expect(receiver.requests.count == 1)
        if status != 200 {
            #expect(outcome.detail?.hasPrefix("HTTP \(status): xxxx") == true, "the start of the answer explains it")
        }
    }

    @Test func slackTextIsCut() {
        let payload = SlackSink.payload(text: String(repeating: "a", count: 50_000))
        let object = try? JSONSerialization.jsonObject(with: payload) as? [String: String]
        #expect(object?["text"]?.count == 40_000)
        #expect(object?["text"]?.hasSuffix("…") == true)
    }

    static let awkwardTexts = [
        "plain 123456", "quote \" backslash \\ slash / tab \t", "new\nline\r\nand \u{01} \u{1F}", "emoji 🔐 and ü, 验证码 482913",
        "form-ish a=b&c=d+e%20f", "<!channel> & <http://x|y>", "",
    ]

    /// The hand-written Slack payload is JSON any parser reads back to the same text.
    @Test(arguments: awkwardTexts)
    func slackPayloadRoundTrips(_ text: String) throws {
        let object = try JSONSerialization.jsonObject(with: SlackSink.payload(text: text)) as? [String: String]
        #expect(object == ["text": text])
    }

    /// The byte-level form encoding decodes (as Twilio would) to the same fields.
    @Test(arguments: awkwardTexts)
    func twilioFormRoundTrips(_ text: String) {
        let fields = [("To", "+15551230001"), ("Body", text), ("ValidityPeriod", "600")]
        let encoded = FormText.encode(fields)
        #expect(encoded.utf8.allSatisfy { $0 < 0x80 && $0 != UInt8(ascii: "+") && $0 != UInt8(ascii: " ") }, "\(encoded)")
        let decoded = TwilioSignature.parseForm(encoded)
        #expect(decoded.map(\.name) == fields.map(\.0))
        #expect(decoded.map(\.value) == fields.map(\.1))
    }

    @Test func httpSinkSendsTheEventWithStandardWebhooksHeaders() async throws {
        let receiver = try await FakeReceiver.start()
        defer { Task { await receiver.stop() } }
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        let settings = try httpSettings(receiver.url("/hooks/sms"), extra: """
                headers: { Authorization: "Bearer audit-token" }
                signing_secret: \(secret)
            """)
        let sink = HTTPSink(name: "audit", settings: settings, timeout: .seconds(2), client: SinkHTTPClient.shared)
        let request = sampleRequest(deliveryID: "dlv_stable")
        #expect(await sink.deliver(request) == .delivered(detail: "HTTP 200"))
        #expect(await sink.deliver(request) == .delivered(detail: "HTTP 200"))
        let received = receiver.requests
        #expect(received.count == 2)
        let first = received[0]
        #expect(first.header("Authorization") == "Bearer audit-token")
        #expect(received.map { $0.header("webhook-id") } == ["dlv_stable", "dlv_stable"], "webhook-id is stable across retries")
        let json = try #require(first.json)
        #expect(Set(json.keys) == ["id", "source", "source_id", "from", "to", "body", "otp", "otp_domain", "app", "route", "received_at", "media"])
        #expect(json["otp"] as? String == "123456")
        #expect(json["received_at"] as? String == "2027-01-15T08:00:00.000Z")
        // The receiver can verify the signature over exactly the bytes it got.
        let timestamp = try #require(first.header("webhook-timestamp").flatMap(Int.init))
        let expected = StandardWebhooks.signature(secret: secret, id: "dlv_stable", timestamp: timestamp, body: Data(first.body.utf8))
        #expect(first.header("webhook-signature") == expected)
    }

    @Test func httpSinkBodyTemplateEscapesJSON() async throws {
        let receiver = try await FakeReceiver.start()
        defer { Task { await receiver.stop() } }
        let settings = try httpSettings(receiver.url("/t"), extra: #"    body: '{"code": "{{otp}}", "text": "{{body}}"}'"#)
        let sink = HTTPSink(name: "audit", settings: settings, timeout: .seconds(2), client: SinkHTTPClient.shared)
        _ = await sink.deliver(sampleRequest(body: "He said \"use 123456\"\nthanks\\"))
        let json = try #require(receiver.requests.first?.json)
        #expect(json["code"] as? String == "123456")
        #expect(json["text"] as? String == "He said \"use 123456\"\nthanks\\")
        #expect(receiver.requests.first?.header("webhook-signature") == nil, "no signature without a secret")
    }

    /// A form body's values are percent-encoded, so an SMS with `&admin=1` adds no field; an XML
    /// body's text cannot close a tag.
    @Test func httpSinkBodyTemplateEscapesFormAndXML() async throws {
        let receiver = try await FakeReceiver.start()
        defer { Task { await receiver.stop() } }
        let sms = "code 123456 & admin=1 <x/> ü"
        let form = try httpSettings(receiver.url("/form"), extra: """
                headers: { Content-Type: application/x-www-form-urlencoded }
                body: "text={{body}}&code={{otp}}"
            """)
        _ = await HTTPSink(name: "f", settings: form, timeout: .seconds(2), client: SinkHTTPClient.shared).deliver(sampleRequest(body: sms))
        let sent = try #require(receiver.requests.first)
        #expect(sent.form.map(\.0) == ["text", "code"], "\(sent.body)")
        #expect(sent.form.first?.1 == sms)
        let xml = try httpSettings(receiver.url("/xml"), extra: """
                headers: { Content-Type: text/xml }
                body: "<sms>{{body}}</sms>"
            """)
        _ = await HTTPSink(name: "x", settings: xml, timeout: .seconds(2), client: SinkHTTPClient.shared).deliver(sampleRequest(body: sms))
        #expect(receiver.requests.last?.body == "<sms>code 123456 &amp; admin=1 &lt;x/&gt; ü</sms>")
    }

    @Test func fileSinkAppendsOneLinePerEventUnderConcurrency() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("herald-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("nested/inbox.jsonl").path
        let sink = FileSink(name: "inbox", settings: FileSinkSettings(path: path))
        let body = String(repeating: "long message with code 123456 ", count: 300)
        await withTaskGroup(of: DeliveryOutcome.self) { group in
            for i in 0..<200 {
                group.addTask { await sink.deliver(sampleRequest(body: "\(i) \(body)", deliveryID: "dlv_\(i)")) }
            }
            for await outcome in group { #expect(outcome.label == "delivered") }
        }
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 200)
        let bodies = Set(lines.compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["body"] as? String
        })
        #expect(bodies.count == 200, "every line is whole JSON")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }

    @Test func fileSinkReportsAnUnwritablePath() async {
        let sink = FileSink(name: "inbox", settings: FileSinkSettings(path: "/proc/herald-cannot-write/inbox.jsonl"))
        let outcome = await sink.deliver(sampleRequest())
        #expect(outcome.label == "retry")
        #expect(outcome.detail?.contains("/proc/herald-cannot-write") == true)
    }
}
