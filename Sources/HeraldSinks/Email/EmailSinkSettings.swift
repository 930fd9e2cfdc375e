import Foundation
import HeraldCore

/// `type: email`: an archive over SMTP (libcurl).
public struct EmailSinkSettings: SinkBuilding {
    public static let type = "email"
    /// Each attempt is an SMTP session on a thread of its own: a mail server is not asked for 32.
    public static let defaults = SinkDefaults(concurrency: 4)

    public enum StartTLS: String, Sendable {
        case required, none
    }

    /// `smtp://host:587` (STARTTLS) or `smtps://host:465` (TLS from the first byte).
    public var url: String
    public var startTLS: StartTLS
    public var username: String?
    public var password: Secret?
    /// `Name <address>` or a bare address; the address is the envelope sender.
    public var from: String
    public var to: [String]
    public var subject: MessageTemplate
    public var body: MessageTemplate
    public var tlsVerify: Bool
    public var connectTimeout: Duration

    public static func decode(_ section: ConfigSection) -> EmailSinkSettings? {
        let path = section.path
        let name = path.hasPrefix("sinks.") ? String(path.dropFirst(6)) : path
        let url = section.require("url") ? section.url("url", schemes: ["smtp", "smtps"]) : nil
        var startTLS: StartTLS? = .required
        if let text = section.string("starttls") {
            startTLS = StartTLS(rawValue: text)
            if startTLS == nil { section.fail("starttls", "\(path).starttls must be required or none, not \(section.shown("starttls", text))") }
        }
        if let url, startTLS == StartTLS.none, url.lowercased().hasPrefix("smtp://"),
           !["127.0.0.1", "localhost", "::1"].contains(URLComponents(string: url)?.host ?? "") {
            section.warn("sink \(name) sends mail without TLS (starttls: none): the password and every code cross the network in clear text")
        }
        let username = section.string("username").flatMap { $0.isEmpty ? nil : $0 }
        let password = section.string("password").flatMap { $0.isEmpty ? nil : Secret($0) }
        if (username == nil) != (password == nil), !section.variablesMissing {
            section.fail(nil, "\(path) needs both `username` and `password`, or neither (no AUTH)")
        }
        let from = section.require("from") ? section.nonEmptyString("from") : nil
        if let from, EmailAddress.address(in: from) == nil, !section.variablesMissing {
            section.fail("from", "\(path).from must be an address, like archive@example.com or \"Herald <archive@example.com>\"")
        }
        let to = section.require("to") ? section.stringList("to") : nil
        for address in to ?? [] where EmailAddress.address(in: address) == nil && !section.variablesMissing {
            section.fail("to", "\(path).to: \(section.shown("to", address)) is not an email address")
        }
        let subject = section.has("subject") ? section.template("subject", escaping: .text) : DefaultTemplates.emailSubject
        let body = section.has("body") ? section.template("body", escaping: .text) : DefaultTemplates.emailBody
        let tlsVerify = section.bool("tls_verify") ?? true
        if !tlsVerify { section.warn("sink \(name) does not verify the mail server's TLS certificate (tls_verify: false)") }
        let connectTimeout = section.duration("connect_timeout") ?? .seconds(10)
        guard let url, let startTLS, let from, let to, let subject, let body else { return nil }
        return EmailSinkSettings(url: url, startTLS: startTLS, username: username, password: password, from: from,
                                 to: to, subject: subject, body: body, tlsVerify: tlsVerify, connectTimeout: connectTimeout)
    }

    public func preview(_ context: TemplateContext, event: Event) -> String {
        "mail to \(to.joined(separator: ", ")), subject: \(subject.render(context))\n" + body.render(context)
    }

    public func makeSink(_ config: SinkConfig, context: SinkContext) -> any Sink {
        EmailSink(name: config.name, settings: self, timeout: config.timeout)
    }
}
