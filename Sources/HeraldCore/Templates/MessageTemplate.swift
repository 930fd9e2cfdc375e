import Foundation
import Mustache

/// A Mustache template for one sink's message, with the escaping that sink's format needs applied
/// to every `{{variable}}`: Slack escapes `&`, `<`, `>`; JSON escapes string content; plain text
/// leaves values as they are. `{{{variable}}}` always inserts the raw value.
public struct MessageTemplate: Sendable {
    public enum Escaping: String, Sendable {
        case text = "TEXT"
        case slack = "HERALD_SLACK"
        case json = "HERALD_JSON"
        /// `application/x-www-form-urlencoded`: every value percent-encoded.
        case form = "HERALD_FORM"
        /// XML and HTML: `& < > " '` as entities.
        case markup = "HERALD_MARKUP"

        /// The escaping for a body sent with this `Content-Type`.
        public static func forContentType(_ contentType: String?) -> Escaping {
            guard let type = contentType?.lowercased() else { return .json }
            if type.contains("json") { return .json }
            if type.contains("x-www-form-urlencoded") { return .form }
            if type.contains("xml") || type.contains("html") { return .markup }
            return .text
        }
    }

    public let source: String
    public let escaping: Escaping
    private let template: MustacheTemplate

    public struct CompileError: Error, CustomStringConvertible {
        public var line: Int
        public var column: Int
        public var reason: String
        public var description: String { "\(reason) at template line \(line), column \(column)" }
    }

    public init(_ source: String, escaping: Escaping) throws(CompileError) {
        Self.registerContentTypes
        // Compile the text as written first so that positions in errors match what the user wrote.
        do {
            _ = try MustacheTemplate(string: source)
        } catch let error as MustacheTemplate.ParserError {
            throw CompileError(line: error.context.lineNumber, column: error.context.columnNumber, reason: Self.describe(error.error))
        } catch {
            throw CompileError(line: 1, column: 1, reason: "\(error)")
        }
        do {
            self.template = try MustacheTemplate(string: "{{% CONTENT_TYPE: \(escaping.rawValue)}}" + source)
        } catch {
            throw CompileError(line: 1, column: 1, reason: "\(error)")
        }
        self.source = source
        self.escaping = escaping
    }

    public func render(_ context: TemplateContext) -> String {
        template.render(context.values)
    }

    private static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        switch text {
        case "unfinishedName": return "a {{ tag is not closed"
        case "sectionCloseNameIncorrect": return "a section is closed with a different name than it was opened with"
        case "expectedSectionEnd": return "a {{#section}} is never closed"
        default: return text
        }
    }

    private static let registerContentTypes: Void = {
        MustacheContentTypes.register(SlackEscaping(), named: Escaping.slack.rawValue)
        MustacheContentTypes.register(JSONEscaping(), named: Escaping.json.rawValue)
        MustacheContentTypes.register(FormEscaping(), named: Escaping.form.rawValue)
        MustacheContentTypes.register(MarkupEscaping(), named: Escaping.markup.rawValue)
    }()
}

/// Slack mrkdwn: exactly `&`, `<`, `>`, ampersand first, so an SMS cannot write `<!channel>` or
/// a disguised link.
struct SlackEscaping: MustacheContentType {
    func escapeText(_ text: String) -> String { SlackText.escape(text) }
}

/// The inside of a JSON string: quotes, backslashes and control characters escaped.
struct JSONEscaping: MustacheContentType {
    func escapeText(_ text: String) -> String { JSONText.escape(text) }
}

struct FormEscaping: MustacheContentType {
    func escapeText(_ text: String) -> String { FormText.escape(text) }
}

struct MarkupEscaping: MustacheContentType {
    func escapeText(_ text: String) -> String { MarkupText.escape(text) }
}

public enum FormText {
    /// Percent-encodes every byte but ASCII letters, digits and `-._~` (RFC 3986's unreserved).
    public static func escape(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count * 3)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(byte)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `name=value&…`, each part escaped.
    public static func encode(_ fields: [(String, String)]) -> String {
        fields.map { escape($0.0) + "=" + escape($0.1) }.joined(separator: "&")
    }
}

public enum MarkupText {
    public static func escape(_ text: String) -> String {
        guard text.utf8.contains(where: { [UInt8(ascii: "&"), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "\""), UInt8(ascii: "'")].contains($0) })
        else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

public enum JSONText {
    /// Escapes text for the inside of a JSON string literal.
    public static func escape(_ text: String) -> String {
        // Most text needs nothing: hand it back without building a copy.
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

public enum SlackText {
    public static func escape(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "&") || $0 == UInt8(ascii: "<") || $0 == UInt8(ascii: ">") }) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 16)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
