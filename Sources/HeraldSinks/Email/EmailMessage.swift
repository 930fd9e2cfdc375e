import Foundation
import HeraldCore

/// Builds the RFC 5322 message the email sink uploads: CRLF line endings, header values with CR
/// and LF removed (an SMS can never add a header or a recipient), non-ASCII subjects as RFC 2047
/// encoded words, and a body in 7bit when it is short-lined ASCII, else base64.
public enum EmailMessage {
    public static func build(
        from: String, to: [String], subject: String, body: String, messageID: String, date: Date
    ) -> Data {
        var headers: [String] = []
        headers.append("Date: " + rfc5322Date(date))
        headers.append("From: " + headerValue(from))
        headers.append("To: " + to.map(headerValue).joined(separator: ",\r\n "))
        headers.append(subjectHeader(headerValue(subject)))
        headers.append("Message-ID: <" + headerValue(messageID) + ">")
        headers.append("MIME-Version: 1.0")
        headers.append("Content-Type: text/plain; charset=UTF-8")
        let normalized = normalizeLineEndings(body)
        let lines = normalized.components(separatedBy: "\r\n")
        let body: String
        if normalized.allSatisfy(\.isASCII) && lines.allSatisfy({ $0.utf8.count <= 998 }) {
            headers.append("Content-Transfer-Encoding: 7bit")
            body = normalized
        } else {
            headers.append("Content-Transfer-Encoding: base64")
            body = Data(normalized.utf8).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        }
        let text = headers.joined(separator: "\r\n") + "\r\n\r\n" + body + (body.hasSuffix("\r\n") ? "" : "\r\n")
        return Data(text.utf8)
    }

    /// Any CR, LF or other control character becomes a space: header values come from SMS text.
    static func headerValue(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) })
    }

    /// Bare LF and bare CR become CRLF, so libcurl's dot-stuffing sees every line start.
    static func normalizeLineEndings(_ text: String) -> String {
        text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
            .replacingOccurrences(of: "\n", with: "\r\n")
    }

    /// The longest header line we write (RFC 5322 asks for 78, and allows 998).
    static let foldAt = 78

    /// `Subject:` with its value folded so no line passes 78 characters where the text allows:
    /// ASCII folded at its spaces (a word too long to fit, or any non-ASCII, makes the whole
    /// value encoded words, which can be split anywhere).
    static func subjectHeader(_ value: String) -> String {
        let name = "Subject: "
        if value.allSatisfy(\.isASCII), let folded = foldASCII(value, first: name.count) { return name + folded }
        return name + encodedWords(value)
    }

    /// Folds ASCII text at spaces into lines of at most 78 characters (the first one after
    /// `first` characters of header name); nil when one word alone would pass 998.
    static func foldASCII(_ text: String, first: Int) -> String? {
        var lines: [String] = []
        var line = ""
        var room = foldAt - first
        for word in text.split(separator: " ", omittingEmptySubsequences: false) {
            if word.utf8.count > 900 { return nil }
            if line.isEmpty {
                line = String(word)
            } else if line.utf8.count + 1 + word.utf8.count <= room {
                line += " " + word
            } else {
                lines.append(line)
                room = foldAt - 1
                line = String(word)
            }
        }
        lines.append(line)
        // A continuation line starts with the space it was folded at.
        return lines.joined(separator: "\r\n ")
    }

    /// ASCII stays as it is; anything else becomes `=?UTF-8?B?…?=` words of at most 75 characters,
    /// split between characters (between scalars inside one very long character, such as a long
    /// emoji sequence), folded onto continuation lines.
    static func encodedWords(_ text: String) -> String {
        guard !text.allSatisfy(\.isASCII) || text.utf8.count > foldAt - 9 else { return text }
        var words: [String] = []
        var chunk = Data()
        func add(_ bytes: Data) {
            // 42 bytes encode to 56 base64 characters: with `=?UTF-8?B?` and `?=` that is 68, so
            // even the first word fits on the `Subject: ` line within 78.
            if chunk.count + bytes.count > 42, !chunk.isEmpty {
                words.append("=?UTF-8?B?" + chunk.base64EncodedString() + "?=")
                chunk = Data()
            }
            chunk.append(bytes)
        }
        for character in text {
            let bytes = Data(String(character).utf8)
            if bytes.count > 42 {
                for scalar in character.unicodeScalars { add(Data(String(scalar).utf8)) }
            } else {
                add(bytes)
            }
        }
        if !chunk.isEmpty { words.append("=?UTF-8?B?" + chunk.base64EncodedString() + "?=") }
        return words.joined(separator: "\r\n ")
    }

    static func rfc5322Date(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss +0000"
        return formatter.string(from: date)
    }
}
