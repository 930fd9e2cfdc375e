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

    public init(
        service: String = "", gone: Set<Int> = [],
        failureReason: (@Sendable (Int, String) -> String)? = nil,
        retryable: (@Sendable (Int, String) -> Bool)? = nil,
        delivered: @escaping @Sendable (Int, String) -> (detail: String, receipt: String?) = { status, _ in ("HTTP \(status)", nil) }
    ) {
        self.service = service
        self.gone = gone
        self.failureReason = failureReason
        self.retryable = retryable
        self.delivered = delivered
    }

    /// Plain HTTP: the status alone decides.
    public static let standard = ClassificationRules()
}
