import Foundation

extension Duration {
    /// Parses the configuration's duration syntax: an integer (or decimal) followed by
    /// `ms`, `s`, `m`, `h` or `d` — `500ms`, `30s`, `10m`, `2h`, `7d`.
    /// `value` milliseconds, clamped to 0 … 10¹⁵ ms (31,000 years): a time from outside (a
    /// `Retry-After`, a `received_at`, a stored row) can never trap a conversion. NaN is zero.
    public static func milliseconds(saturating value: Double) -> Duration {
        guard value > 0 else { return .zero }
        return .milliseconds(Int64(min(value, 1e15).rounded()))
    }

    /// The longest duration a configuration may name: 100 years.
    public static let maximumSeconds: Double = 100 * 365 * 86400

    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            // "ms" also ends in "s": make sure the remaining text is a number.
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                  let value = Double(number), value.isFinite, value >= 0
            else { continue }
            // Past a century it is a typo, not a setting (and past Int64 milliseconds it would trap).
            guard value * scale <= maximumSeconds else { return nil }
            return .milliseconds(Int64((value * scale * 1000).rounded()))
        }
        return nil
    }

    /// The duration in seconds as a floating-point number.
    public var seconds: Double {
        let (s, attos) = components
        return Double(s) + Double(attos) / 1e18
    }

    /// A short human form: `1.5s`, `250ms`, `10m`.
    public var shortDescription: String {
        let total = seconds
        if total < 1 { return "\(Int((total * 1000).rounded()))ms" }
        if total < 60 { return total == total.rounded() ? "\(Int(total))s" : String(format: "%.1fs", total) }
        if total < 3600 { return total.truncatingRemainder(dividingBy: 60) == 0 ? "\(Int(total / 60))m" : "\(Int(total))s" }
        return total.truncatingRemainder(dividingBy: 3600) == 0 ? "\(Int(total / 3600))h" : "\(Int(total / 60))m"
    }
}

extension Date {
    public func adding(_ duration: Duration) -> Date {
        addingTimeInterval(duration.seconds)
    }
}
