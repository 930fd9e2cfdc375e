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
    ]

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
