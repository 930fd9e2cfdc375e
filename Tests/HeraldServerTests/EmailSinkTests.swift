import Foundation
import HeraldCore
@testable import HeraldSinks
import HeraldTesting
import Testing

/// The email sink against a real SMTP server (aiosmtpd, started per test by `Tests/Support/smtp_server.py`).
@Suite("Email sink (real SMTP server)")
struct EmailSinkTests {
    final class SMTPServer: Sendable {
        let port: Int
        let spool: URL
        let process: HeraldProcess

        init(port: Int, spool: URL, process: HeraldProcess) {
            self.port = port
            self.spool = spool
            self.process = process
        }

        static func start(auth: String? = nil, starttls: Bool = false) async throws -> SMTPServer {
            let spool = try HeraldProcess.tempFolder()
            let port = try await freeLoopbackPort()
            let script = RepositoryRoot.url.appendingPathComponent("Tests/Support/smtp_server.py").path
            var arguments = [script, "--port", "\(port)", "--spool", spool.path]
            if let auth { arguments += ["--auth", auth] }
            if starttls { arguments.append("--starttls") }
            let child = try HeraldProcess(arguments, directory: spool, executable: "/usr/bin/python3")
            let ready = await eventually(timeout: .seconds(20)) { child.text.contains("READY") }
            guard ready else { throw TestFailure("SMTP server did not start: \(child.text)") }
            return SMTPServer(port: port, spool: spool, process: child)
        }

        func messages() -> [[String: Any]] {
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: spool.path)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
            return files.compactMap { name in
                (try? Data(contentsOf: spool.appendingPathComponent(name))).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
            }
        }

        func stop() {
            process.signal(SIGTERM)
            try? FileManager.default.removeItem(at: spool)
        }
    }

    /// Only SMTP, whatever URL reaches libcurl: the configuration refuses others, and libcurl is
    /// told so too (`CURLOPT_PROTOCOLS_STR`), so no path can read a file or fetch a page.
    @Test(arguments: ["file:///etc/hostname", "http://127.0.0.1:9/", "dict://127.0.0.1:9/"])
    func libcurlSpeaksOnlySMTP(_ url: String) throws {
        let config = try ConfigLoader.parse("""
            sinks: { archive: { type: email, url: "smtp://127.0.0.1:9", starttls: none, from: a@example.com, to: [b@example.com] } }
            routes: [ { deliver: [archive] } ]
            """)
        var settings = try #require((SinkFactory.makeSink(config.sinks[0]) as? EmailSink)?.settings)
        settings.url = url
        let outcome = EmailSink.transfer(message: Data("Subject: x\r\n\r\nx\r\n".utf8), settings: settings, timeout: .seconds(2))
        #expect(!outcome.isDelivered, "\(outcome)")
        #expect(outcome.detail?.lowercased().contains("protocol") == true, "\(String(describing: outcome.detail))")
    }

    static func sink(_ server: SMTPServer, extra: String = "", to: String = "[\"archive@example.com\", \"second@example.com\"]", url: String? = nil) throws -> EmailSink {
        let config = try ConfigLoader.parse("""
            sinks:
              archive:
                type: email
                url: "\(url ?? "smtp://127.0.0.1:\(server.port)")"
                starttls: none
                from: "Herald Archive <herald@example.com>"
                to: \(to)
                timeout: 10s
            \(extra)
            routes: [ { deliver: [archive] } ]
            """)
        return try #require(SinkFactory.makeSink(config.sinks[0]) as? EmailSink)
    }

    static func header(_ message: [String: Any], _ name: String) -> [String] {
        ((message["headers"] as? [[String]]) ?? []).filter { $0[0].lowercased() == name.lowercased() }.map { $0[1] }
    }

    @Test func theMessageHasTheRightHeadersAndBody() async throws {
        let server = try await SMTPServer.start()
        defer { server.stop() }
        let outcome = await (try Self.sink(server)).deliver(sampleRequest(body: "Your AWS code is 482913"))
        #expect(outcome.label == "delivered", "\(outcome)")
        let message = try #require(server.messages().first)
        #expect(message["mail_from"] as? String == "herald@example.com")
        #expect(message["rcpt_tos"] as? [String] == ["archive@example.com", "second@example.com"])
        #expect(message["subject"] as? String == "[AWS] 482913")
        #expect(Self.header(message, "From") == ["Herald Archive <herald@example.com>"])
        #expect(Self.header(message, "To") == ["archive@example.com, second@example.com"])
        #expect(Self.header(message, "MIME-Version") == ["1.0"])
        #expect(Self.header(message, "Content-Type").first?.hasPrefix("text/plain") == true)
        #expect(Self.header(message, "Message-ID").first?.hasSuffix("@example.com>") == true)
        #expect(Self.header(message, "Date").count == 1)
        let body = try #require(message["body"] as? String)
        #expect(body.hasPrefix("Your AWS code is 482913\n\n--\nFrom: +15551234567\n"))
        let raw = try #require(message["raw"] as? String)
        #expect(!raw.replacingOccurrences(of: "\r\n", with: "").contains("\n"), "every line ends in CRLF")
    }

    @Test func unicodeSubjectAndBodyRoundTrip() async throws {
        let server = try await SMTPServer.start()
        defer { server.stop() }
        let sink = try Self.sink(server, extra: "    subject: \"🔐 Código {{otp}} — {{app}} ✈️ with a long tail that needs more than one encoded word\"")
        let outcome = await sink.deliver(sampleRequest(body: "Tu código es 482913. ¡No lo compartas! 🙂"))
        #expect(outcome.label == "delivered", "\(outcome)")
        let message = try #require(server.messages().first)
        #expect(message["subject"] as? String == "🔐 Código 482913 — AWS ✈️ with a long tail that needs more than one encoded word")
        #expect((message["body"] as? String)?.hasPrefix("Tu código es 482913. ¡No lo compartas! 🙂") == true)
        let raw = try #require(message["raw"] as? String)
        #expect(raw.contains("Subject: =?UTF-8?B?"))
        #expect(raw.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 998 })
    }

    @Test func dotsAndBareLineFeedsArriveIntact() async throws {
        let server = try await SMTPServer.start()
        defer { server.stop() }
        let text = "line one\n.\n.leading dot\n..two dots\nlast\rold mac line"
        let outcome = await (try Self.sink(server, extra: "    body: \"{{{body}}}\"")).deliver(sampleRequest(body: text))
        #expect(outcome.label == "delivered", "\(outcome)")
        let body = try #require(server.messages().first?["body"] as? String)
        #expect(body == "line one\n.\n.leading dot\n..two dots\nlast\nold mac line\n")
    }

    @Test func anSMSCannotAddARecipientOrAHeader() async throws {
        let server = try await SMTPServer.start()
        defer { server.stop() }
        let sink = try Self.sink(server, extra: "    subject: \"{{{body}}}\"", to: "\"archive@example.com\"")
        let outcome = await sink.deliver(sampleRequest(body: "code 123456\r\nBcc: someone@example.com\r\nX-Evil: 1"))
        #expect(outcome.label == "delivered", "\(outcome)")
        let message = try #require(server.messages().first)
        #expect(message["rcpt_tos"] as? [String] == ["archive@example.com"])
        #expect(Self.header(message, "Bcc").isEmpty)
        #expect(Self.header(message, "X-Evil").isEmpty)
        #expect((message["subject"] as? String)?.contains("Bcc: someone@example.com") == true, "kept as text on one line")
    }

    @Test func startTLSWithASelfSignedCertificate() async throws {
        let server = try await SMTPServer.start(auth: "archive:smtp-secret-pw", starttls: true)
        defer { server.stop() }
        // starttls is left at its default: required.
        let config = try ConfigLoader.parse("""
            sinks:
              archive: { type: email, url: "smtp://127.0.0.1:\(server.port)", from: "herald@example.com", to: "archive@example.com",
                         username: archive, password: smtp-secret-pw, tls_verify: false }
            routes: [ { deliver: [archive] } ]
            """)
        let sink = try #require(SinkFactory.makeSink(config.sinks[0]) as? EmailSink)
        let outcome = await sink.deliver(sampleRequest())
        #expect(outcome.label == "delivered", "\(outcome)")
        let message = try #require(server.messages().first)
        #expect(message["tls"] as? Bool == true)
        #expect(message["authenticated"] as? Bool == true)

        let verifying = try ConfigLoader.parse("""
            sinks:
              archive: { type: email, url: "smtp://127.0.0.1:\(server.port)", from: "herald@example.com", to: "archive@example.com",
                         username: archive, password: smtp-secret-pw }
            routes: [ { deliver: [archive] } ]
            """)
        let strict = try #require(SinkFactory.makeSink(verifying.sinks[0]) as? EmailSink)
        let refused = await strict.deliver(sampleRequest())
        #expect(refused.label == "permanent", "\(refused)")
        #expect(refused.detail?.contains("certificate") == true)
        #expect(refused.detail?.contains("smtp-secret-pw") == false)
    }

    @Test func tempFailIsRetriedRejectIsPermanent() async throws {
        let server = try await SMTPServer.start()
        defer { server.stop() }
        let temp = await (try Self.sink(server, to: "\"tempfail@example.com\"")).deliver(sampleRequest())
        #expect(temp.label == "retry", "\(temp)")
        #expect(temp.detail?.contains("451") == true)
        let reject = await (try Self.sink(server, to: "\"reject@example.com\"")).deliver(sampleRequest())
        #expect(reject.label == "permanent", "\(reject)")
        #expect(reject.detail?.contains("550") == true)
        #expect(server.messages().isEmpty)
    }

    @Test func wrongPasswordIsAPermanentAuthenticationFailure() async throws {
        let server = try await SMTPServer.start(auth: "archive:right-password")
        defer { server.stop() }
        let sink = try Self.sink(server, extra: "    username: archive\n    password: wrong-secret-pw")
        let outcome = await sink.deliver(sampleRequest())
        #expect(outcome.label == "permanent", "\(outcome)")
        #expect(outcome.detail?.contains("authentication failed") == true)
        #expect(outcome.detail?.contains("wrong-secret-pw") == false)
        #expect(outcome.detail?.contains("right-password") == false)
    }

    /// Defect 10: a transfer ignored cancellation, so the shutdown grace could not stop it.
    /// A listener that accepts connections and never greets holds the transfer until cancelled.
    @Test func aTransferStopsWhenItsTaskIsCancelled() async throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        #expect(bound && listen(fd, 8) == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let config = try ConfigLoader.parse("""
            sinks: { archive: { type: email, url: "smtp://127.0.0.1:\(port)", starttls: none, from: "h@example.com", to: "a@example.com", timeout: 60s } }
            routes: [ { deliver: [archive] } ]
            """)
        let sink = SinkFactory.makeSink(config.sinks[0])
        let started = ContinuousClock.now
        let attempt = Task { await sink.deliver(sampleRequest()) }
        try await Task.sleep(for: .milliseconds(300))
        attempt.cancel()
        let outcome = await attempt.value
        #expect(outcome == .retry(reason: "cancelled"))
        #expect(ContinuousClock.now - started < .seconds(5), "it did not wait for the 60 s timeout")
    }

    @Test func aServerThatIsDownIsRetried() async throws {
        let port = try await freeLoopbackPort()
        let config = try ConfigLoader.parse("""
            sinks: { archive: { type: email, url: "smtp://127.0.0.1:\(port)", starttls: none, from: "h@example.com", to: "a@example.com" } }
            routes: [ { deliver: [archive] } ]
            """)
        let outcome = await SinkFactory.makeSink(config.sinks[0]).deliver(sampleRequest())
        #expect(outcome.label == "retry", "\(outcome)")
    }
}

enum RepositoryRoot {
    static let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}
