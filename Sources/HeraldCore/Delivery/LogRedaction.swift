import Foundation

/// A receiver may echo what it was sent; without `log_bodies` the code, the text and the full
/// numbers stay out of the log line (the stored error keeps them for the audit trail).
public enum LogRedaction {
    public static func redact(_ text: String, event: Event) -> String {
        var result = text
        for secret in [event.body, event.otp].compactMap({ $0 }) where secret.count >= 4 {
            result = result.replacingOccurrences(of: secret, with: "<redacted>")
        }
        for number in [event.from, event.to].compactMap({ $0 }) where number.count > 4 {
            result = result.replacingOccurrences(of: number, with: PhoneNumber.masked(number))
        }
        return result
    }
}
