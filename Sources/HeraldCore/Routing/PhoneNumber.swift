/// Phone numbers as routes compare them: spaces, dashes, dots and parentheses removed, so
/// `+1 (234) 456-7890` and `+12344567890` are the same number. Alphanumeric senders (`AMAZON`)
/// are compared the same way.
public enum PhoneNumber {
    public static func normalize(_ text: String) -> String {
        String(text.filter { !" -.()\t".contains($0) })
    }

    /// The last four digits, for logs: `+12345678901` → `…8901`.
    public static func masked(_ text: String) -> String {
        let digits = text.filter(\.isNumber)
        guard digits.count > 4 else { return "…" }
        return "…" + String(digits.suffix(4))
    }
}
