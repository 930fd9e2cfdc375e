import AsyncHTTPClient
import Foundation
import HeraldCore

/// The one place that turns what an HTTP receiver answered into a delivery outcome, so every
/// HTTP-based sink retries the same things: connection errors, timeouts, 408, 429 and 5xx are worth
/// another attempt (after `Retry-After` when given); other 4xx and 3xx are permanent.
public enum HTTPResponseClassifier {
    public static func classify(status: Int, retryAfter: String?, body: String, now: Date = Date()) -> DeliveryOutcome {
        let detail = describe(status: status, body: body)
        switch status {
        case 200..<300:
            return .delivered(detail: "HTTP \(status)")
        case 408, 425, 429, 500..<600:
            return .retry(after: retryAfter.flatMap { parseRetryAfter($0, now: now) }, reason: detail)
        case 300..<400:
            return .permanent(reason: detail + " (redirects are not followed)")
        default:
            return .permanent(reason: detail)
        }
    }

    /// Transport failures are always worth another attempt. The text names the kind of failure,
    /// never the URL (a webhook URL is a credential).
    public static func classify(error: any Error, timeout: Duration) -> DeliveryOutcome {
        .retry(after: nil, reason: describe(error: error, timeout: timeout))
    }

    public static func describe(error: any Error, timeout: Duration) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                return "timed out after \(timeout.shortDescription)"
            case .connectTimeout:
                return "connection timed out"
            case .remoteConnectionClosed:
                return "the receiver closed the connection"
            case .cancelled:
                return "cancelled"
            default:
                return "HTTP client error"
            }
        }
        if error is CancellationError { return "cancelled" }
        let text = String(describing: error).lowercased()
        if text.contains("refused") { return "connection refused" }
        if text.contains("timeout") || text.contains("timed out") { return "timed out after \(timeout.shortDescription)" }
        if text.contains("ssl") || text.contains("tls") || text.contains("certificate") { return "TLS handshake failed" }
        if text.contains("resolve") || text.contains("lookup") || text.contains("dns") { return "host name could not be resolved" }
        return "connection failed"
    }

    /// `Retry-After` as seconds (`120`) or an HTTP date (`Wed, 21 Oct 2026 07:28:00 GMT`).
    public static func parseRetryAfter(_ value: String, now: Date = Date()) -> Duration? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Int(trimmed), seconds >= 0 {
            return .seconds(seconds)
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            formatter.dateFormat = format
            if let date = formatter.date(from: trimmed) {
                let interval = max(0, date.timeIntervalSince(now))
                return .milliseconds(Int64(interval * 1000))
            }
        }
        return nil
    }

    /// `HTTP 500: rollup_error`: the status and the start of the receiver's answer, on one line.
    static func describe(status: Int, body: String) -> String {
        let snippet = body.prefix(200).map { $0.isNewline ? " " : $0 }
        let text = String(snippet).trimmingCharacters(in: .whitespaces)
        return text.isEmpty ? "HTTP \(status)" : "HTTP \(status): \(text)"
    }
}
