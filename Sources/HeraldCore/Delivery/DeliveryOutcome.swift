/// What a sink says about one attempt. Sinks report what happened; the retry policy alone
/// decides what happens next.
public enum DeliveryOutcome: Sendable, Equatable {
    /// `receipt` is the receiver's id for the sent message, kept with the delivery. `rest`: the
    /// receiver said its budget is spent, so the sink waits that long before its next request.
    case delivered(detail: String? = nil, receipt: String? = nil, rest: Duration? = nil)
    /// Worth trying again, after `after` when the receiver said so (`Retry-After`).
    case retry(after: Duration? = nil, reason: String)
    /// Trying again cannot help (bad payload, unknown channel, invalid number).
    case permanent(reason: String)
    /// Deliberately not sent (for example the SMS loop guard).
    case skipped(reason: String)

    public var label: String {
        switch self {
        case .delivered: "delivered"
        case .retry: "retry"
        case .permanent: "permanent"
        case .skipped: "skipped"
        }
    }

    public var detail: String? {
        switch self {
        case .delivered(let detail, _, _): detail
        case .retry(_, let reason), .permanent(let reason), .skipped(let reason): reason
        }
    }

    /// Whether the receiver was asked at all (a skip sends nothing).
    public var attempted: Bool {
        if case .skipped = self { return false }
        return true
    }

    public var isDelivered: Bool {
        if case .delivered = self { return true }
        return false
    }
}
