import Foundation
import HeraldCore

/// What the chat sinks share: their JSON, `retract:`, and URL path pieces.
enum ChatJSON {
    /// A JSON body, keys sorted (the same bytes for the same message).
    static func encode(_ object: [String: Any]) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    }

    /// An answer's JSON object, or nil.
    static func object(_ body: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
    }

    /// A number as a `Double`, whatever JSON type it came in.
    static func number(_ value: Any?) -> Double? {
        switch value {
        case let n as NSNumber: n.doubleValue
        case let s as String: Double(s)
        default: nil
        }
    }

    /// A JSON id (a number or a string) as text.
    static func id(_ value: Any?) -> String? {
        switch value {
        case let s as String: s
        case let n as NSNumber: n.stringValue
        default: nil
        }
    }
}

/// `retract: on_expiry | never` (default `never`).
enum RetractSetting {
    static func decode(_ section: ConfigSection) -> Bool? {
        guard section.has("retract") else { return false }
        switch section.string("retract") {
        case "on_expiry": return true
        case "never": return false
        case let value?:
            section.fail("retract", "\(section.keyPath("retract")) must be on_expiry or never, not \(section.shown("retract", value))")
            return nil
        case nil: return nil
        }
    }
}

enum URLPath {
    /// One path segment, percent-encoded (a Matrix room id `!abc:example.org`).
    static func segment(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)..<Unicode.Scalar(128)))
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    /// `base` without a trailing `/`.
    static func trimmed(_ base: String) -> String {
        base.hasSuffix("/") ? String(base.dropLast()) : base
    }
}

extension Duration {
    /// Seconds with fractions (a service's `retry_after: 1.5`), at least zero.
    static func fractionalSeconds(_ seconds: Double) -> Duration {
        .milliseconds(saturating: max(0, seconds) * 1000)
    }
}
