/// A credential from the configuration. Its `description` never shows the value, so a secret
/// that ends up in a log line, an error or `herald check` output prints as `<secret>`.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    public let value: String

    public init(_ value: String) {
        self.value = value
    }

    public var isEmpty: Bool { value.isEmpty }
    public var description: String { "<secret>" }
    public var debugDescription: String { "<secret>" }
}
