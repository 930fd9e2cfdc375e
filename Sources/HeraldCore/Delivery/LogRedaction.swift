import Foundation

/// A receiver may echo what it was sent; without `log_bodies` the code, the text and the full
/// numbers stay out of the log line (the stored error keeps them for the audit trail). Echoes come
/// back in the receiver's own syntax, so the text is looked for as sent and JSON-escaped,
/// URL-encoded and HTML-escaped, line by line as well as whole; the code with or without
/// separators (`123456`, `123-456`, `123 456`).
public enum LogRedaction {
    public static let marker = "<redacted>"

    public static func redact(_ text: String, event: Event) -> String {
        var result = text
        var texts = [event.body]
        texts += event.body.split(whereSeparator: \.isNewline).map(String.init).filter { $0.count >= 8 }
        var forms: Set<String> = []
        for text in texts where text.count >= 4 {
            forms.formUnion([text, JSONText.escape(text), FormText.escape(text), FormText.escape(text).replacingOccurrences(of: "%20", with: "+"),
                             MarkupText.escape(text), SlackText.escape(text)])
        }
        // Longest first, so a whole body goes before the lines inside it.
        for form in forms.sorted(by: { $0.count > $1.count }) where result.contains(form) {
            result = result.replacingOccurrences(of: form, with: marker)
        }
        if let code = event.otp, code.count >= 4 { result = redactCode(code, in: result) }
        for number in [event.from, event.to].compactMap({ $0 }) where number.count > 4 {
            result = result.replacingOccurrences(of: number, with: PhoneNumber.masked(number))
            if number.hasPrefix("+") {
                result = result.replacingOccurrences(of: "%2B" + number.dropFirst(), with: PhoneNumber.masked(number))
            }
        }
        return result
    }

    /// Replaces `code` where it appears with at most one separator (space, dash, dot, no-break
    /// space) between two of its characters.
    static func redactCode(_ code: String, in text: String) -> String {
        let pattern = Array(code)
        let characters = Array(text)
        let separators: Set<Character> = [" ", "-", ".", "\u{00A0}", "\u{2009}"]
        var out = ""
        var index = 0
        while index < characters.count {
            var cursor = index
            var matched = 0
            while matched < pattern.count, cursor < characters.count {
                if characters[cursor] == pattern[matched] {
                    matched += 1
                    cursor += 1
                } else if matched > 0, separators.contains(characters[cursor]), cursor + 1 < characters.count, characters[cursor + 1] == pattern[matched] {
                    cursor += 1
                } else {
                    break
                }
            }
            if matched == pattern.count {
                out += marker
                index = cursor
            } else {
                out.append(characters[index])
                index += 1
            }
        }
        return out
    }
}
