import AsyncHTTPClient
import Foundation
import HeraldCore

/// The one place that turns what a sink saw into a delivery outcome.
///
/// | report | outcome |
/// | --- | --- |
/// | HTTP 2xx | delivered (with the service's receipt) |
/// | HTTP 408, 425, 429, 5xx, or what the service marks temporary | retry, after `Retry-After` when given |
/// | HTTP status the service calls gone (Slack 404/410) | permanent: the endpoint is gone |
/// | HTTP 3xx | permanent (redirects are not followed) |
/// | other HTTP 4xx | permanent |
/// | SMTP 2xx / 4xx / 5xx | delivered / retry / permanent |
/// | no answer (connection, timeout, TLS, cancelled) | retry |
/// | refused by our own rules (credentials, TLS policy) | permanent |
public enum Classifier {
    public static func classify(_ report: SinkReport, rules: ClassificationRules = .standard, now: Date = Date()) -> DeliveryOutcome {
        switch report {
        case .http(let status, let retryAfter, let body, let headers):
            return http(status: status, retryAfter: retryAfter, body: body, headers: headers, rules: rules, now: now)
        case .smtp(let code, let reply):
            switch code {
            case 200..<300: return .delivered(detail: "SMTP \(code)")
            case 400..<500: return .retry(reason: "SMTP \(code): \(reply)")
            case 500..<600: return .permanent(reason: "SMTP \(code): \(reply)")
            default: return .retry(reason: "SMTP transfer failed: \(reply)")
            }
        case .transport(let reason):
            return .retry(reason: reason)
        case .refused(let reason):
            return .permanent(reason: reason)
        }
    }

    /// Statuses every sink retries.
    public static func isRetryable(status: Int) -> Bool {
        [408, 425, 429].contains(status) || (500..<600).contains(status)
    }

    private static func http(status: Int, retryAfter: String?, body: String, headers: [String: String], rules: ClassificationRules, now: Date) -> DeliveryOutcome {
        if (200..<300).contains(status) {
            let (detail, receipt) = rules.delivered(status, body)
            return .delivered(detail: detail, receipt: receipt, rest: rules.restAfterSuccess?(headers))
        }
        if rules.gone.contains(status) {
            let snippet = oneLine(body)
            return .permanent(reason: "\(rules.service)the webhook is gone (HTTP \(status)\(snippet.isEmpty ? "" : ": \(snippet)"))")
        }
        let reason = rules.failureReason?(status, body) ?? rules.service + describe(status: status, body: body)
        if isRetryable(status: status) || rules.retryable?(status, body) == true {
            let after = rules.wait?(status, headers, body) ?? retryAfter.flatMap { parseRetryAfter($0, now: now) }
            return .retry(after: after, reason: reason)
        }
        if (300..<400).contains(status) { return .permanent(reason: reason + " (redirects are not followed)") }
        return .permanent(reason: reason)
    }

    /// What a transport failure is called. The text names the kind of failure, never the URL (a
    /// webhook URL is a credential).
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
                return .milliseconds(saturating: interval * 1000)
            }
        }
        return nil
    }

    /// `HTTP 500: rollup_error`: the status and the start of the receiver's answer, on one line.
    static func describe(status: Int, body: String) -> String {
        let text = oneLine(body)
        return text.isEmpty ? "HTTP \(status)" : "HTTP \(status): \(text)"
    }

    /// The first 200 characters of a body, on one line.
    static func oneLine(_ body: String, limit: Int = 200) -> String {
        String(body.prefix(limit).map { $0.isNewline ? " " : $0 }).trimmingCharacters(in: .whitespaces)
    }
}
