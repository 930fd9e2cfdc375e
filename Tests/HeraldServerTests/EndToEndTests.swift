import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldTesting
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// The built `herald` binary, run as a user runs it.
@Suite("End to end (the herald binary)")
struct EndToEndTests {
    typealias Run = HeraldProcess
    static var binary: String { HeraldProcess.binary }
    static func tempFolder() throws -> URL { try HeraldProcess.tempFolder() }

    @Test func servesASignedWebhookIntoTheFileSinkAndStopsOnSIGTERM() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build the binary first (make test does)")
        let folder = try Self.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try """
            server: { listen: "127.0.0.1:0", public_url: "http://herald.e2e" }
            sources: { twilio: { auth_token: "${TWILIO_AUTH_TOKEN}" } }
            sinks:
              inbox: { type: file, path: out/inbox.jsonl }
              slack: { type: slack, optional: true, webhook_url: "${SLACK_WEBHOOK_URL}" }
            routes:
              - name: all
                deliver: [inbox, slack]
            """.write(to: folder.appendingPathComponent("herald.yaml"), atomically: true, encoding: .utf8)
        let run = try Run(["serve", "--config", "herald.yaml"], environment: ["TWILIO_AUTH_TOKEN": "e2e-secret-token"], directory: folder)
        var port: Int?
        _ = await eventually(timeout: .seconds(20)) {
            guard let range = run.text.range(of: #"server.address=http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) else { return false }
            port = Int(run.text[range].split(separator: ":").last!)
            return true
        }
        let serverPort = try #require(port, "no listening line in: \(run.text)")

        let status = try await postSignedWebhook(port: serverPort, publicURL: "http://herald.e2e", token: "e2e-secret-token", [
            ("MessageSid", twilioSID("SMe2e0001")), ("From", "+15551234567"), ("To", "+15005550006"), ("Body", "Your GitHub code is 123-456"),
        ])
        #expect(status == 200)

        let inbox = folder.appendingPathComponent("out/inbox.jsonl")
        let arrived = await eventually { (try? String(contentsOf: inbox, encoding: .utf8))?.hasSuffix("\n") == true }
        #expect(arrived)
        let lines = try String(contentsOf: inbox, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(json["source_id"] as? String == twilioSID("SMe2e0001"))
        #expect(json["body"] as? String == "Your GitHub code is 123-456")
        #expect(json["otp"] as? String == "123456")
        #expect(json["route"] as? String == "all")

        kill(run.process.processIdentifier, SIGTERM)
        #expect(await run.wait() == 0, "herald did not exit cleanly: \(run.text)")
        let log = run.text
        #expect(log.contains("sink 'slack' is disabled: SLACK_WEBHOOK_URL is not set"))
        #expect(!log.contains("e2e-secret-token"))
        #expect(!log.contains("Your GitHub code"), "message bodies stay out of logs by default")
        #expect(!log.contains("123456") && !log.contains("123-456"), "codes stay out of logs by default")
        #expect(!log.contains("+15551234567"), "phone numbers are masked")
    }

    @Test func checkReportsErrorsWithTheirPlaceAndNoSecret() async throws {
        let folder = try Self.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try """
            sources: { twilio: { auth_token: "${TWILIO_AUTH_TOKEN}" } }
            sinks:
              team: { type: slack, webhook_url: "${SLACK_WEBHOOK_URL}", timeout: "${SLACK_WEBHOOK_URL}" }
            routes:
              - deliver: [team, nowhere]
            """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)
        let env = ["TWILIO_AUTH_TOKEN": "check-secret-1", "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/check-secret-2"]
        let run = try Run(["check"], environment: env, directory: folder)
        #expect(await run.wait() == 1)
        #expect(run.text.contains("channels.yaml:3:70: bad duration the value from the environment for sinks.team.timeout"), "\(run.text)")
        #expect(run.text.contains("channels.yaml:5:21: route 'route-1' delivers to unknown sink 'nowhere'"), "\(run.text)")
        #expect(!run.text.contains("check-secret"))

        try """
            sources: { twilio: { auth_token: "${TWILIO_AUTH_TOKEN}" } }
            sinks:
              team: { type: slack, webhook_url: "${SLACK_WEBHOOK_URL}" }
            routes:
              - deliver: [team]
            """.write(to: folder.appendingPathComponent("good.yaml"), atomically: true, encoding: .utf8)
        let good = try Run(["check"], environment: env.merging(["HERALD_CONFIG": "good.yaml"]) { $1 }, directory: folder)
        #expect(await good.wait() == 0)
        #expect(good.text.contains("good.yaml: OK"), "$HERALD_CONFIG names the file: \(good.text)")
        #expect(good.text.contains("team (slack, enabled)"))
        #expect(!good.text.contains("check-secret"))
    }

    /// Telegram deletes only messages under 48 h old: a route whose codes live longer is named by
    /// `herald check`, one that expires sooner is not.
    @Test func checkWarnsWhenCodesOutliveTelegramsDeleteWindow() async throws {
        let folder = try Self.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try """
            sinks:
              phone: { type: telegram, bot_token: "123456:check-secret", chat_id: "4242", retract: on_expiry }
              quiet: { type: telegram, bot_token: "123456:check-secret", chat_id: "4243" }
            routes:
              - { name: long, expire_after: 2d, deliver: [phone, quiet] }
              - { name: short, expire_after: 10m, deliver: [phone] }
            """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)
        let run = try Run(["check"], directory: folder)
        #expect(await run.wait() == 0)
        #expect(run.text.contains("warning: route 'long' keeps codes for 48h, but sink 'phone' can retract only messages under 47h old"), "\(run.text)")
        #expect(!run.text.contains("route 'short'"), "\(run.text)")
        #expect(!run.text.contains("sink 'quiet'"), "a sink that does not retract is not named: \(run.text)")
        #expect(!run.text.contains("check-secret"))
    }

    @Test func signAndRouteCommands() async throws {
        let folder = try Self.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let sign = try Run(["sign", "--url", "https://mycompany.com/myapp.php?foo=1&bar=2", "--token", "12345",
                            "CallSid=CA1234567890ABCDE", "Caller=+14158675309", "Digits=1234", "From=+14158675309", "To=+18005551212"],
                           directory: folder)
        #expect(await sign.wait() == 0)
        #expect(sign.text == "RSOYDt4T1cUTdK1PDd93/VVr8B8=\n")

        try """
            sinks:
              team: { type: slack, webhook_url: "https://hooks.slack.com/services/T/B/route-secret" }
              inbox: { type: file, path: inbox.jsonl }
            routes:
              - name: google
                match: { from: GOOGLE }
                app: Google
                expire_after: 3m
                deliver: [team, inbox]
            """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)
        let route = try Run(["route", "--from", "GOOGLE", "--body", "G-482913 is your <Google> verification code."], directory: folder)
        #expect(await route.wait() == 0)
        let text = route.text
        #expect(text.contains("routes: google"))
        #expect(text.contains("code: 482913"))
        #expect(text.contains("team (slack, route google, expires 3m after receipt)"))
        #expect(text.contains("| *482913*  ·  Google  ·  from GOOGLE"))
        #expect(text.contains("&lt;Google&gt;"))
        #expect(!text.contains("route-secret"))
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("inbox.jsonl").path), "a dry run sends nothing")

        let unrouted = try Run(["route", "--from", "+15550000000", "--body", "hello"], directory: folder)
        #expect(await unrouted.wait() == 0)
        #expect(unrouted.text.contains("none matched; the event would be stored as unrouted"))

        // An origin-bound code: exact, with its domain, and routable by it.
        try """
            sinks:
              team: { type: slack, webhook_url: "https://hooks.slack.com/services/T/B/route-secret", text: "{{otp}} for {{otp_domain}}" }
              inbox: { type: file, path: inbox.jsonl }
            routes:
              - name: github
                match: { otp_domain: [GitHub.com, gitlab.com] }
                deliver: [team]
              - name: rest
                deliver: [inbox]
            """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)
        let bound = try Run(["route", "--from", "+15550000000", "--body", "Your GitHub code is 111111. Call 555-0100 with questions.\n\n@github.com #482913"], directory: folder)
        #expect(await bound.wait() == 0)
        #expect(bound.text.contains("routes: github"), "\(bound.text)")
        #expect(bound.text.contains("code: 482913 (origin-bound, for github.com)"))
        #expect(bound.text.contains("| 482913 for github.com"))

        let other = try Run(["route", "--from", "+15550000000", "--body", "code 1234\n@example.org #5678"], directory: folder)
        #expect(await other.wait() == 0)
        #expect(other.text.contains("routes: rest"), "another domain does not match")
    }
}

@Suite("herald send")
struct SendCommandTests {
    @Test func printsEachOutcomeAndFailsWhenOneFailed() async throws {
        let good = try await FakeReceiver.start()
        let bad = try await FakeReceiver.start(fallback: .status(400, "bad request"))
        let folder = try HeraldProcess.tempFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try """
            sinks:
              audit: { type: http, url: "\(good.url("/ok"))" }
              broken: { type: http, url: "\(bad.url("/bad"))" }
              pager: { type: slack, optional: true, webhook_url: "${PAGER_URL}" }
            routes:
              - name: codes
                match: { body: "(?i)code" }
                deliver: [audit, pager]
              - name: all
                deliver: [broken]
            """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)

        let ok = try HeraldProcess(["send", "--from", "+15551234567", "--body", "Your code is 123456"], directory: folder)
        #expect(await ok.wait() == 0, "\(ok.text)")
        #expect(ok.text.contains("audit: delivered (HTTP 200)"))
        #expect(ok.text.contains("pager: skipped (disabled: PAGER_URL is not set)"))
        #expect(good.requests.count == 1)
        #expect(good.requests.first?.json?["otp"] as? String == "123456")

        let failing = try HeraldProcess(["send", "--from", "+15551234567", "--body", "hello"], directory: folder)
        #expect(await failing.wait() == 1)
        #expect(failing.text.contains("broken: failed: HTTP 400: bad request"), "\(failing.text)")
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("data/herald.db").path), "send stores nothing")
        await good.stop()
        await bad.stop()
    }
}
