import Foundation

/// A compiled regular expression (ICU syntax, so `(?i)` works) that can be shared across tasks.
public struct Pattern: @unchecked Sendable, CustomStringConvertible {
    // NSRegularExpression is immutable and documented as safe to use from several threads.
    private let regex: NSRegularExpression
    public let source: String

    public init(_ source: String) throws {
        self.regex = try NSRegularExpression(pattern: source)
        self.source = source
    }

    public var captureGroups: Int { regex.numberOfCaptureGroups }
    public var description: String { source }

    /// True when the pattern is found anywhere in `text`.
    public func matches(_ text: String) -> Bool {
        regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    /// The first capture group of the first match (or the whole match when there is no group).
    public func firstCapture(in text: String) -> String? {
        guard let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) else { return nil }
        let index = match.numberOfRanges > 1 ? 1 : 0
        guard let range = Range(match.range(at: index), in: text) else { return nil }
        return String(text[range])
    }
}
