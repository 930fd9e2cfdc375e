import Foundation
import Yams

/// One mapping of `channels.yaml` being decoded (the server block, a sink, a route). A decoder
/// asks for the keys it understands; whatever the file holds beyond them is reported by
/// `finish()` as an unknown key, with a "did you mean" among the keys that were asked for. So the
/// keys a section accepts are declared once, by the code that reads them.
///
/// Every value is interpolated (`ConfigString`) and every problem is recorded with its
/// `file:line:column`; decoding goes on after a problem, so a file's errors come all at once.
/// Messages quote a value only when it was written in the file, never one from the environment.
public final class ConfigSection {
    let reader: YAMLReader
    /// The dotted path used in messages: `sinks.team`, `server.limits`; empty for the top level.
    public let path: String
    /// How messages name the section itself.
    var name: String { path.isEmpty ? "the top level" : path }
    /// How messages name one of its keys: `sinks.team.url`, or `retention` at the top level.
    public func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    let node: Node
    private let entries: [(key: String, keyNode: Node, value: Node)]
    private var asked: [String] = []

    /// Nil (with the problem recorded) when `node` is not a mapping.
    init?(_ node: Node, path: String, reader: YAMLReader) {
        guard case .mapping(let mapping) = node else {
            reader.fail(node, "\(path.isEmpty ? "the top level" : path) must be a mapping of keys to values")
            return nil
        }
        var entries: [(String, Node, Node)] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                reader.fail(keyNode, "keys in \(path.isEmpty ? "the top level" : path) must be plain names")
                continue
            }
            entries.append((scalar.string, keyNode, value))
        }
        self.node = node
        self.path = path
        self.reader = reader
        self.entries = entries
    }

    /// The node under `key`, marking the key as one this section understands.
    subscript(_ key: String) -> Node? {
        if !asked.contains(key) { asked.append(key) }
        return entries.first { $0.key == key }?.value
    }

    /// A nested section (`retry`, `limits`), or nil when absent or not a mapping.
    func section(_ key: String) -> ConfigSection? {
        self[key].flatMap { ConfigSection($0, path: keyPath(key), reader: reader) }
    }

    /// The keys not asked for yet, each as a section of its own (user-named entries such as
    /// sources), marking them as understood; a key whose value is not a mapping is reported.
    func remainingSections() -> [(name: String, keyNode: Node, section: ConfigSection)] {
        entries.filter { !asked.contains($0.key) }.compactMap { entry in
            asked.append(entry.key)
            return ConfigSection(entry.value, path: keyPath(entry.key), reader: reader).map { (entry.key, entry.keyNode, $0) }
        }
    }

    /// Reports every key nobody asked for.
    public func finish() {
        for entry in entries where !asked.contains(entry.key) {
            let suggestion = asked.min { editDistance($0, entry.key) < editDistance($1, entry.key) }
                .flatMap { editDistance($0, entry.key) <= 2 ? " (did you mean '\($0)'?)" : nil } ?? ""
            reader.fail(entry.keyNode, "unknown key '\(entry.key)' in \(name)\(suggestion); allowed: \(asked.joined(separator: ", "))")
        }
    }

    // MARK: Values

    public func has(_ key: String) -> Bool { self[key] != nil }

    /// Present and not null.
    public func hasValue(_ key: String) -> Bool { self[key].map { !YAMLReader.isNull($0) } ?? false }

    /// Records "`path` needs `key`" when the key is absent; true when it is there.
    public func require(_ key: String) -> Bool {
        if self[key] != nil { return true }
        reader.fail(node, "\(name) needs `\(key)`")
        return false
    }

    public func string(_ key: String) -> String? {
        self[key].flatMap { reader.string($0, keyPath(key)) }
    }

    public func nonEmptyString(_ key: String) -> String? {
        self[key].flatMap { reader.nonEmptyString($0, keyPath(key)) }
    }

    /// One string or a list of strings.
    public func stringList(_ key: String) -> [String]? {
        self[key].flatMap { reader.stringList($0, keyPath(key)) }
    }

    public func bool(_ key: String) -> Bool? {
        self[key].flatMap { reader.bool($0, keyPath(key)) }
    }

    public func int(_ key: String, range: ClosedRange<Int>) -> Int? {
        self[key].flatMap { reader.int($0, keyPath(key), range: range) }
    }

    public func duration(_ key: String) -> Duration? {
        self[key].flatMap { reader.duration($0, keyPath(key)) }
    }

    /// A duration longer than zero.
    public func positiveDuration(_ key: String) -> Duration? {
        guard let node = self[key], let value = reader.duration(node, keyPath(key)) else { return nil }
        guard value > .zero else {
            reader.fail(node, "\(keyPath(key)) must be longer than zero")
            return nil
        }
        return value
    }

    /// A URL with one of `schemes` and a host. Never quoted back: URLs often carry tokens.
    public func url(_ key: String, schemes: [String] = ["http", "https"]) -> String? {
        self[key].flatMap { reader.url($0, keyPath(key), schemes: schemes) }
    }

    /// A template, or nil when absent (check `has`) or when it does not compile (recorded).
    public func template(_ key: String, escaping: MessageTemplate.Escaping) -> MessageTemplate? {
        guard let node = self[key] else { return nil }
        guard case .scalar(let scalar) = node, !YAMLReader.isNull(node) else {
            reader.fail(node, "\(keyPath(key)) must be a template string")
            return nil
        }
        do {
            // Templates are not interpolated: `${...}` inside one would be a secret in a message.
            return try MessageTemplate(scalar.string, escaping: escaping)
        } catch {
            reader.fail(node, "template \(keyPath(key)) does not compile: \(error)")
            return nil
        }
    }

    /// A mapping of names chosen by the user (HTTP headers), in file order.
    public func entries(_ key: String) -> [ConfigEntry] {
        guard let node = self[key] else { return [] }
        return reader.namedMapping(node, keyPath(key)).map { ConfigEntry(name: $0.name, keyNode: $0.keyNode, value: $0.value) }
    }

    public func string(_ entry: ConfigEntry, _ what: String) -> String? {
        reader.string(entry.value, what)
    }

    // MARK: Problems

    /// A problem at `key` (its value), or at the section when the key is absent or nil.
    public func fail(_ key: String?, _ message: String) {
        reader.fail(key.flatMap { self[$0] } ?? node, message)
    }

    public func fail(_ entry: ConfigEntry, atName: Bool = false, _ message: String) {
        reader.fail(atName ? entry.keyNode : entry.value, message)
    }

    /// Something worth saying at start-up that does not stop it.
    public func warn(_ message: String) {
        reader.warnings.append(message)
    }

    /// How `value` (read from `key`) may be quoted in a message.
    public func shown(_ key: String, _ value: String) -> String {
        self[key].map { reader.shown($0, value) } ?? "'\(value)'"
    }

    /// Inside an optional sink some variable was unset: checks that need its value are skipped
    /// (the sink will be disabled).
    public var variablesMissing: Bool { !(reader.missingVariables?.isEmpty ?? true) }
}

/// One name → value pair of a user-named mapping.
public struct ConfigEntry {
    public let name: String
    let keyNode: Node
    let value: Node
}
