import Foundation

/// A string from the configuration after `${VAR}` / `${VAR:-default}` interpolation: the one
/// place variables are resolved. A value that came from the environment is never quoted back in
/// a message (that is where secrets live).
public struct ConfigString: Sendable, Equatable {
    public var value: String
    /// The text named at least one variable.
    public var fromEnvironment: Bool
    /// Variables that were unset and had no default (their part of `value` is empty).
    public var missing: [String]

    public init(value: String, fromEnvironment: Bool, missing: [String]) {
        self.value = value
        self.fromEnvironment = fromEnvironment
        self.missing = missing
    }

    public enum Problem: Error, Equatable {
        case unterminated
        case badName(String)
    }

    /// Resolves every `${NAME}` and `${NAME:-default}` in `text`.
    public static func interpolate(_ text: String, environment: [String: String]) -> Result<ConfigString, Problem> {
        guard text.contains("${") else { return .success(ConfigString(value: text, fromEnvironment: false, missing: [])) }
        var output = ""
        var missing: [String] = []
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            output += rest[..<start.lowerBound]
            let afterOpen = rest[start.upperBound...]
            guard let close = afterOpen.firstIndex(of: "}") else { return .failure(.unterminated) }
            let inner = afterOpen[..<close]
            let name: Substring, fallback: Substring?
            if let separator = inner.range(of: ":-") {
                name = inner[..<separator.lowerBound]
                fallback = inner[separator.upperBound...]
            } else {
                name = inner
                fallback = nil
            }
            guard let first = name.first, first == "_" || (first.isASCII && first.isLetter),
                  name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) })
            else { return .failure(.badName(String(name))) }
            if let value = environment[String(name)] {
                output += value
            } else if let fallback {
                output += fallback
            } else {
                missing.append(String(name))
            }
            rest = afterOpen[afterOpen.index(after: close)...]
        }
        output += rest
        return .success(ConfigString(value: output, fromEnvironment: true, missing: missing))
    }
}
