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
        /// Telegram's HTML parse mode: exactly `&`, `<`, `>` (its only named entities besides
        /// `&quot;`), so an SMS cannot open a tag or a link.
        case telegram = "HERALD_TELEGRAM"
        /// Discord markdown: every markdown character behind a backslash (Discord drops the
        /// backslash before any punctuation), so an SMS cannot format, link or mention.
        case discord = "HERALD_DISCORD"
        /// HTML for a chat message (Matrix `formatted_body`): markup escaped, line breaks kept as
        /// `<br>`.
        case htmlLines = "HERALD_HTML_LINES"

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
        MustacheContentTypes.register(SlackEscaping(), named: Escaping.telegram.rawValue)
        MustacheContentTypes.register(DiscordEscaping(), named: Escaping.discord.rawValue)
        MustacheContentTypes.register(HTMLLinesEscaping(), named: Escaping.htmlLines.rawValue)
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

struct DiscordEscaping: MustacheContentType {
    func escapeText(_ text: String) -> String { DiscordText.escape(text) }
}

struct HTMLLinesEscaping: MustacheContentType {
    func escapeText(_ text: String) -> String { MarkupText.escapeKeepingLines(text) }
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

/// The one loop behind every escaping here: each scalar `replacement` names is replaced, the rest
/// kept; text that needs nothing (`needsWork` false for every UTF-8 byte) is handed back as it is.
public enum TextEscaping {
    public static func replacingScalars(_ text: String, needsWork: (UInt8) -> Bool, _ replacement: (Unicode.Scalar) -> String?) -> String {
        guard text.utf8.contains(where: needsWork) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 16)
        for scalar in text.unicodeScalars {
            if let replaced = replacement(scalar) { out += replaced } else { out.unicodeScalars.append(scalar) }
        }
        return out
    }
}

public enum MarkupText {
    public static func escape(_ text: String) -> String {
        TextEscaping.replacingScalars(text, needsWork: { $0 == 0x26 || $0 == 0x3C || $0 == 0x3E || $0 == 0x22 || $0 == 0x27 }) { scalar in
            switch scalar {
            case "&": "&amp;"
            case "<": "&lt;"
            case ">": "&gt;"
            case "\"": "&quot;"
            case "'": "&#39;"
            default: nil
            }
        }
    }
}

extension MarkupText {
    /// Markup escaped, and each line break (`\n`, `\r\n`) written as `<br>`.
    public static func escapeKeepingLines(_ text: String) -> String {
        let escaped = escape(text)
        guard escaped.contains(where: \.isNewline) else { return escaped }
        return escaped.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).joined(separator: "<br>")
    }
}

public enum DiscordText {
    static let special: Set<Unicode.Scalar> = ["\\", "*", "_", "~", "`", "|", "<", ">", "#", "-", "[", "]", "(", ")", "@", ":"]

    public static func escape(_ text: String) -> String {
        TextEscaping.replacingScalars(text, needsWork: { $0 < 0x80 && special.contains(Unicode.Scalar($0)) }) { scalar in
            special.contains(scalar) ? "\\" + String(scalar) : nil
        }
    }
}

public enum JSONText {
    /// Escapes text for the inside of a JSON string literal.
    public static func escape(_ text: String) -> String {
        TextEscaping.replacingScalars(text, needsWork: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) { scalar in
            switch scalar {
            case "\"": "\\\""
            case "\\": "\\\\"
            case "\n": "\\n"
            case "\r": "\\r"
            case "\t": "\\t"
            case _ where scalar.value < 0x20: String(format: "\\u%04x", scalar.value)
            default: nil
            }
        }
    }
}

public enum SlackText {
    public static func escape(_ text: String) -> String {
        TextEscaping.replacingScalars(text, needsWork: { $0 == 0x26 || $0 == 0x3C || $0 == 0x3E }) { scalar in
            switch scalar {
            case "&": "&amp;"
            case "<": "&lt;"
            case ">": "&gt;"
            default: nil
            }
        }
    }
}
