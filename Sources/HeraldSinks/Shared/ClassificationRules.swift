/// How one sink type reads what its service answers, on top of the rules every sink shares.
public struct ClassificationRules: Sendable {
    /// Put before every reason (`Slack: `); empty for plain HTTP.
    public var service: String
    /// Statuses that mean the endpoint is gone for good (Slack 404 and 410).
    public var gone: Set<Int>
    /// The service's own account of a failure, from its body (Twilio's code and message). Nil:
    /// `HTTP 500: <start of the body>`.
    public var failureReason: (@Sendable (_ status: Int, _ body: String) -> String)?
    /// A failure the service marks as temporary in its body, whatever the status (Twilio 20429).
    public var retryable: (@Sendable (_ status: Int, _ body: String) -> Bool)?
    /// What a 2xx says: the detail kept with the attempt, and the receiver's id for the message.
    public var delivered: @Sendable (_ status: Int, _ body: String) -> (detail: String, receipt: String?)
    /// The service's own wait signal on a retryable failure (Telegram's `parameters.retry_after`,
    /// Discord's fractional `retry_after`, Matrix's `retry_after_ms`). When it says nothing,
    /// `Retry-After` decides.
    public var wait: (@Sendable (_ status: Int, _ headers: [String: String], _ body: String) -> Duration?)?
    /// After a success, how long the sink should rest before the next request (Discord's bucket
    /// is empty: `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset-After`).
    public var restAfterSuccess: (@Sendable (_ headers: [String: String]) -> Duration?)?

    public init(
        service: String = "", gone: Set<Int> = [],
        failureReason: (@Sendable (Int, String) -> String)? = nil,
        retryable: (@Sendable (Int, String) -> Bool)? = nil,
        delivered: @escaping @Sendable (Int, String) -> (detail: String, receipt: String?) = { status, _ in ("HTTP \(status)", nil) },
        wait: (@Sendable (Int, [String: String], String) -> Duration?)? = nil,
        restAfterSuccess: (@Sendable ([String: String]) -> Duration?)? = nil
    ) {
        self.service = service
        self.gone = gone
        self.failureReason = failureReason
        self.retryable = retryable
        self.delivered = delivered
        self.wait = wait
        self.restAfterSuccess = restAfterSuccess
    }

    /// Plain HTTP: the status alone decides.
    public static let standard = ClassificationRules()
}
