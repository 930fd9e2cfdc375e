import Foundation

/// RFC 3339 timestamps with millisecond precision in UTC, e.g. `2026-11-29T05:01:02.345Z`.
public enum RFC3339 {
    // Building a format style is costly; the style itself is a value that can be shared.
    private static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
    private static let plain = Date.ISO8601FormatStyle()

    public static func string(from date: Date) -> String {
        date.formatted(style)
    }

    public static func date(from text: String) -> Date? {
        (try? style.parse(text)) ?? (try? plain.parse(text)) ?? (try? Date(text, strategy: .iso8601))
    }
}
