import Foundation
import Yams

/// Walks a composed YAML tree, checking shape and collecting errors with their positions.
/// Every scalar string goes through `${VAR}` / `${VAR:-default}` interpolation here.
final class YAMLReader {
    let file: String
    let environment: [String: String]
    private(set) var errors: [ConfigError] = []
    /// Things worth saying that do not stop start-up.
    var warnings: [String] = []
    /// While reading an `optional: true` sink, unset variables are collected here instead of being
    /// errors; the sink is then disabled.
    var missingVariables: [String]?

    init(file: String, environment: [String: String]) {
        self.file = file
        self.environment = environment
    }

    // MARK: Errors

    func fail(_ node: Node?, _ message: String) {
        let mark = node?.mark
        errors.append(ConfigError(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1, message: message))
    }

    func fail(line: Int, column: Int, _ message: String) {
        errors.append(ConfigError(file: file, line: line, column: column, message: message))
    }

    // MARK: Shapes

    /// A mapping whose keys are names chosen by the user (sinks), in file order.
    func namedMapping(_ node: Node, _ path: String) -> [(name: String, keyNode: Node, value: Node)] {
        guard case .mapping(let mapping) = node else {
            fail(node, "\(path) must be a mapping of names to definitions")
            return []
        }
        var result: [(String, Node, Node)] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode, !scalar.string.isEmpty else {
                fail(keyNode, "names in \(path) must be plain, non-empty strings")
                continue
            }
            result.append((scalar.string, keyNode, value))
        }
        return result
    }

    func sequence(_ node: Node, _ path: String) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            fail(node, "\(path) must be a list")
            return nil
        }
        return Array(sequence)
    }

    static func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node else { return false }
        return scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    // MARK: Scalars

    /// A string value after interpolation. `secret` keeps the value out of any message.
    func string(_ node: Node, _ path: String) -> String? {
        guard case .scalar(let scalar) = node, !Self.isNull(node) else {
            fail(node, "\(path) must be a string")
            return nil
        }
        return interpolate(scalar.string, node: node, path: path)
    }

    func nonEmptyString(_ node: Node, _ path: String) -> String? {
        guard let value = string(node, path) else { return nil }
        if value.isEmpty, missingVariables?.isEmpty ?? true {
            fail(node, "\(path) must not be empty")
            return nil
        }
        return value
    }

    /// One string or a list of strings.
    func stringList(_ node: Node, _ path: String) -> [String]? {
        if case .sequence(let sequence) = node {
            var values: [String] = []
            for (index, item) in sequence.enumerated() {
                guard let value = string(item, "\(path)[\(index)]") else { return nil }
                values.append(value)
            }
            if values.isEmpty {
                fail(node, "\(path) must not be an empty list")
                return nil
            }
            return values
        }
        return string(node, path).map { [$0] }
    }

    func bool(_ node: Node, _ path: String) -> Bool? {
        guard let text = string(node, path) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            fail(node, "\(path) must be true or false, not \(shown(node, text))")
            return nil
        }
    }

    func int(_ node: Node, _ path: String, range: ClosedRange<Int>) -> Int? {
        guard let text = string(node, path) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            fail(node, "\(path) must be a whole number from \(range.lowerBound) to \(range.upperBound), not \(shown(node, text))")
            return nil
        }
        return value
    }

    func duration(_ node: Node, _ path: String) -> Duration? {
        guard let text = string(node, path) else { return nil }
        guard let value = Duration.parse(text) else {
            fail(node, "bad duration \(shown(node, text)) for \(path): write a number and a unit, like 500ms, 30s, 10m, 2h or 7d")
            return nil
        }
        return value
    }

    /// An http or https URL with a host. The value is never quoted back: URLs often carry tokens.
    func url(_ node: Node, _ path: String, schemes: [String] = ["http", "https"]) -> String? {
        guard let text = string(node, path) else { return nil }
        if text.isEmpty, !(missingVariables?.isEmpty ?? true) { return text }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
              schemes.contains(scheme), let host = components.host, !host.isEmpty
        else {
            fail(node, "\(path) is not a valid URL: it must start with \(schemes.map { $0 + "://" }.joined(separator: " or ")) and name a host")
            return nil
        }
        return text
    }

    /// How a value is quoted in a message: as written, unless it came from the environment (where
    /// secrets live), in which case it is never shown.
    func shown(_ node: Node, _ value: String) -> String {
        if case .scalar(let scalar) = node, scalar.string.contains("${") { return "the value from the environment" }
        return "'\(value)'"
    }

    // MARK: Interpolation

    /// Resolves `${NAME}` and `${NAME:-default}` (`ConfigString`). An unset variable without a
    /// default is an error naming the variable and the key (never a value), except inside an
    /// optional sink, which is then disabled.
    func interpolate(_ text: String, node: Node, path: String) -> String? {
        switch ConfigString.interpolate(text, environment: environment) {
        case .failure(.unterminated):
            fail(node, "\(path) has a '${' without a closing '}'")
            return nil
        case .failure(.badName(let name)):
            fail(node, "\(path) has '${\(name)}', which is not a valid variable name")
            return nil
        case .success(let resolved):
            guard let name = resolved.missing.first else { return resolved.value }
            if missingVariables != nil {
                missingVariables?.append(contentsOf: resolved.missing)
                return resolved.value
            }
            fail(node, "environment variable \(name) is not set (used by \(path)); set it, or write ${\(name):-default}")
            return nil
        }
    }
}

/// Levenshtein distance, for "did you mean" hints on misspelt keys.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
