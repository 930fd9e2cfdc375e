import Foundation
import HeraldCore

/// `type: http`: any endpoint, with Standard Webhooks headers.
public struct HTTPSinkSettings: SinkBuilding {
    public static let type = "http"

    public var url: Secret
    public var method: String
    public var headers: [(name: String, value: Secret)]
    /// Nil: the event as JSON.
    public var body: MessageTemplate?
    public var signingSecret: Secret?

    public static func decode(_ section: ConfigSection) -> HTTPSinkSettings? {
        let path = section.path
        let url = section.require("url") ? section.url("url") : nil
        var method = "POST"
        if let value = section.string("method") {
            let upper = value.uppercased()
            if ["POST", "PUT", "PATCH"].contains(upper) { method = upper } else {
                section.fail("method", "\(path).method must be POST, PUT or PATCH, not \(section.shown("method", value))")
            }
        }
        var headers: [(String, Secret)] = []
        for entry in section.entries("headers") {
            guard entry.name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_".contains($0)) }) else {
                section.fail(entry, atName: true, "\(path).headers: '\(entry.name)' is not a valid header name")
                continue
            }
            if let text = section.string(entry, "\(path).headers.\(entry.name)") {
                if text.contains("\r") || text.contains("\n") {
                    section.fail(entry, "\(path).headers.\(entry.name) must be one line")
                }
                headers.append((entry.name, Secret(text)))
            }
        }
        // The SMS text is escaped for the body's own syntax, so it can never add a field or a tag.
        let escaping = MessageTemplate.Escaping.forContentType(headers.first { $0.0.lowercased() == "content-type" }?.1.value)
        var body: MessageTemplate?
        var bodyOK = true
        if section.hasValue("body") {
            body = section.template("body", escaping: escaping)
            bodyOK = body != nil
        }
        var signing: Secret?
        if let secret = section.string("signing_secret"), !secret.isEmpty {
            if StandardWebhooks.key(fromSecret: secret) == nil {
                section.fail("signing_secret", "\(path).signing_secret must be base64, optionally prefixed with whsec_")
            }
            signing = Secret(secret)
        }
        guard let url, bodyOK else { return nil }
        return HTTPSinkSettings(url: Secret(url), method: method, headers: headers, body: body, signingSecret: signing)
    }

    public func preview(_ context: TemplateContext, event: Event) -> String {
        "\(method) " + (body?.render(context) ?? String(decoding: event.jsonData(), as: UTF8.self))
    }

    public func makeSink(_ config: SinkConfig, context: SinkContext) -> any Sink {
        HTTPSink(name: config.name, settings: self, timeout: config.timeout, client: context.client)
    }
}
