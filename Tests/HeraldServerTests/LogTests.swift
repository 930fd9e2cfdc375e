import Foundation
import HeraldCore
import HeraldServer
import HeraldTesting
import Logging
import Testing

@Suite("Logs")
struct LogTests {
    static func run(logBodies: Bool, format: HeraldLogHandler.Format = .logfmt) async throws -> String {
        // The receiver echoes what it got in its error, as some do.
        let echo = try await FakeReceiver.start()
        echo.setResponder { .status(400, "rejected: \($0.body.prefix(300))") }
        let capture = LogCapture()
        let server = try await TestServer.start("""
            server: { public_url: "\(TestServer.publicURL)" }
            sources: { twilio: { auth_token: \(TestServer.twilioToken) } }
            log_bodies: \(logBodies)
            sinks:
              hook: { type: http, url: "\(echo.url("/hook"))", headers: { Authorization: "Bearer hook-secret-token" } }
            routes:
              - name: all
                deliver: [hook]
            """, logger: capture.logger(format: format))
        #expect(try await server.postTwilio(sms("Your verification code is 482913", sid: "SMlogs")).status == 200)
        _ = await eventually { (try? await server.allDeliveries().first?.state) == .failed }
        await server.stop()
        await echo.stop()
        return capture.text
    }

    @Test func noBodyCodeNumberOrSecretByDefault() async throws {
        let text = try await Self.run(logBodies: false)
        #expect(text.contains("msg=\"event received\""), "\(text)")
        #expect(text.contains("event.id=evt_"))
        #expect(text.contains("route.name=all"))
        #expect(text.contains("sink.name=hook"))
        #expect(text.contains("delivery.attempt=1"))
        #expect(text.contains("event.from=…7890"), "numbers show their last four digits")
        #expect(text.contains("<redacted>"), "the echoed body is redacted from the error")
        for secret in ["482913", "Your verification code", "+12344567890", "hook-secret-token", TestServer.twilioToken] {
            #expect(!text.contains(secret), "the log shows \(secret)")
        }
    }

    /// At the default level a message delivered everywhere costs one log line, whatever its fan-out;
    /// each success is there at debug.
    @Test func theHappyPathLogsOneLinePerMessageAtInfo() async throws {
        let receiver = try await FakeReceiver.start()
        for level in [Logger.Level.info, .debug] {
            let capture = LogCapture()
            let server = try await TestServer.start("""
                server: { public_url: "\(TestServer.publicURL)" }
                sources: { twilio: { auth_token: \(TestServer.twilioToken) } }
                sinks:
                  a: { type: http, url: "\(receiver.url("/a"))" }
                  b: { type: http, url: "\(receiver.url("/b"))" }
                  c: { type: http, url: "\(receiver.url("/c"))" }
                routes:
                  - deliver: [a, b, c]
                """, logger: capture.logger(level: level))
            #expect(try await server.postTwilio(sms("Your code is 482913")).status == 200)
            #expect(try await eventually { try await server.allDeliveries().filter { $0.state == .delivered }.count == 3 })
            await server.stop()
            let lines = capture.text.split(separator: "\n").filter { $0.contains("event.id=") }
            if level == .info {
                #expect(lines.count == 1 && lines[0].contains("msg=\"event received\""), "\(lines)")
            } else {
                #expect(lines.filter { $0.contains("msg=delivered") }.count == 3, "\(lines)")
            }
        }
        await receiver.stop()
    }

    static let logfmtRows: [(value: String, written: String)] = [
        ("a\rlevel=error msg=forged", #""a\rlevel=error msg=forged""#),
        ("x\r\ny", #""x\r\ny""#),
        ("tab\there", #""tab\there""#),
        ("bell\u{07}", #""bell\u0007""#),
        ("nel\u{85}", #""nel\u0085""#),
        ("line\u{2028}sep", #""line\u2028sep""#),
        ("plain", "plain"),
        ("", "\"\""),
    ]

    /// A value cannot end the line or start a forged one: CR, LF, tabs and other control
    /// characters are escaped inside quotes.
    @Test(arguments: logfmtRows.indices)
    func logfmtEscapesControlCharacters(_ index: Int) {
        let row = Self.logfmtRows[index]
        let capture = LogCapture()
        capture.logger().info("m", metadata: ["k": "\(row.value)"])
        let line = capture.text
        #expect(line.hasSuffix(" k=\(row.written)\n"), "\(line.debugDescription)")
        #expect(line.unicodeScalars.filter { $0 == "\n" || $0 == "\r" }.count == 1, "one line, ended once: \(line.debugDescription)")
    }

    @Test func bodiesAndCodesWithLogBodies() async throws {
        let text = try await Self.run(logBodies: true, format: .json)
        #expect(text.contains("\"event.body\":\"Your verification code is 482913\""), "\(text)")
        #expect(text.contains("\"event.otp\":\"482913\""))
        #expect(text.contains("\"event.from\":\"+12344567890\""))
        #expect(!text.contains("hook-secret-token"), "secrets never appear")
        for line in text.split(separator: "\n") {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "not JSON: \(line)")
        }
    }
}
