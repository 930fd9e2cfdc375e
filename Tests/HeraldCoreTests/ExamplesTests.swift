import Foundation
import HeraldCore
import HeraldSinks
import Testing

/// Every example configuration in `examples/` loads, with its variables set.
@Suite("Examples")
struct ExamplesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var examples: [String] {
        let folder = root.appendingPathComponent("examples")
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
            .filter { FileManager.default.fileExists(atPath: folder.appendingPathComponent("\($0)/channels.yaml").path) }
    }

    static let environment = [
        "HERALD_PUBLIC_URL": "https://herald.example.com", "TWILIO_AUTH_TOKEN": "token", "TWILIO_ACCOUNT_SID": "AC1",
        "TWILIO_FROM": "+15005550006", "BACKUP_PHONE_1": "+15551230001", "BACKUP_PHONE_2": "+15551230002",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/X", "SMTP_PASSWORD": "pw", "SMTP_URL": "smtps://smtp.example.com:465",
        "ARCHIVE_FROM": "Herald <archive@example.com>", "ARCHIVE_TO": "me@example.com", "SMTP_USERNAME": "archive@example.com",
        "PHONE_SIGNING_KEY": "kY3pZ9qR", "TELEGRAM_BOT_TOKEN": "123456789:AAexampletoken", "TELEGRAM_CHAT_ID": "123456789",
    ]

    /// The documented requests are ones Herald takes: every `MessageSid=…` in the README and the
    /// examples' READMEs is well-formed (Herald refuses any other with 400, so a short made-up id
    /// would make the walk-through fail at its first step).
    @Test func theDocumentedTwilioRequestsCarryAWellFormedMessageSid() throws {
        let folder = Self.root.appendingPathComponent("examples")
        let pages = ["README.md"] + ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted().map { "examples/\($0)/README.md" }
        var seen = 0
        for page in pages {
            guard let text = try? String(contentsOf: Self.root.appendingPathComponent(page), encoding: .utf8) else { continue }
            for match in text.matches(of: /MessageSid=([A-Za-z0-9]+)/) {
                seen += 1
                #expect(TwilioSignature.isMessageSID(String(match.output.1)), "\(page): MessageSid=\(match.output.1)")
            }
        }
        #expect(seen >= 4, "the README's demo and the Slack example sign and send one each")
    }

    /// The Android phone example: one sms-gateway source whose messages reach Slack (codes) and
    /// the archive (everything).
    @Test func theAndroidPhoneExampleRoutesThePhonesMessages() throws {
        let config = try ConfigLoader.load(path: Self.root.appendingPathComponent("examples/android-phone/channels.yaml").path, environment: Self.environment)
        #expect(config.sources.smsGateways.map(\.name) == ["my-phone"])
        #expect(config.sources.smsGateways.first?.path == "/sources/my-phone")
        #expect(config.sources.smsGateways.first?.signingKey.value == "kY3pZ9qR")
        let router = Router(config: config)
        #expect(router.route(source: "my-phone", from: "+15551234567", to: nil, body: "Your verification code is 123456").targets.map(\.sink) == ["team-slack", "otp-archive"])
        #expect(router.route(source: "my-phone", from: "+15551234567", to: nil, body: "Running late, see you at 8").targets.map(\.sink) == ["otp-archive"])
        #expect(router.route(source: "twilio", from: "+15551234567", to: nil, body: "Your code is 123456").targets.isEmpty, "only the phone's messages")
    }

    /// The Telegram example: every code to one chat, with the copy button and retraction on.
    @Test func theTelegramExampleCopiesAndRetracts() throws {
        let config = try ConfigLoader.load(path: Self.root.appendingPathComponent("examples/telegram-copy-code/channels.yaml").path, environment: Self.environment)
        let sink = try #require(config.sink(named: "my-telegram"))
        let settings = try #require(sink.settings as? TelegramSinkSettings)
        #expect(settings.chatIDs == ["123456789"])
        #expect(settings.copyButton && settings.retract)
        #expect(SinkFactory.makeSink(sink).retraction != nil)
        #expect(Router(config: config).route(source: "twilio", from: "+15551234567", to: nil, body: "Your code is 482913").targets.map(\.sink) == ["my-telegram"])
    }

    @Test func thereAreExamples() {
        #expect(Self.examples.count >= 2)
    }

    @Test(arguments: examples)
    func loads(_ name: String) throws {
        let path = Self.root.appendingPathComponent("examples/\(name)/channels.yaml").path
        let config = try ConfigLoader.load(path: path, environment: Self.environment)
        #expect(!config.routes.isEmpty)
        #expect(config.sinks.allSatisfy { $0.disabledReason == nil })
        #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent("examples/\(name)/README.md").path))
    }
}
