/// What a sink saw on one attempt, before anyone judged it. Sinks report; `Classifier` alone
/// decides what it means (delivered, retry, permanent), so 408/425/429/5xx mean the same for
/// every sink unless the sink's `ClassificationRules` say otherwise.
public enum SinkReport: Sendable, Equatable {
    /// The receiver answered over HTTP (the first 64 KiB of the body, and the headers the sink
    /// asked to keep, by lower-cased name).
    case http(status: Int, retryAfter: String?, body: String, headers: [String: String] = [:])
    /// The mail server's reply code and text.
    case smtp(code: Int, reply: String)
    /// No answer: connection refused, timed out, TLS failed, cancelled. Worth another attempt.
    case transport(String)
    /// The attempt cannot work as configured (credentials rejected, TLS policy): permanent.
    case refused(String)
}
