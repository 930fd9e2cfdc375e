import Foundation

public enum DeliveryState: String, Sendable, Codable, CaseIterable {
    // The raw values are the store's and the admin API's words; a store that reads any other
    // word fails loudly (`OutboxStoreError.corrupt`) instead of guessing.
    case pending
    case inFlight = "in_flight"
    case delivered
    case failed
    case expired
    case skipped

    public var isFinished: Bool {
        switch self {
        case .pending, .inFlight: false
        case .delivered, .failed, .expired, .skipped: true
        }
    }
}

/// One event on its way to one sink (and, for sinks with several recipients, one recipient).
/// Its `id` stays the same across retries: HTTP sinks send it as `webhook-id`.
public struct Delivery: Sendable, Equatable, Codable {
    public var id: String
    public var eventID: String
    public var sink: String
    public var recipient: String?
    /// The route that sent this event to the sink, and that route's `app` label.
    public var route: String?
    public var app: String?
    public var state: DeliveryState
    /// Attempts started so far; the claim of attempt N fences the result of attempt N.
    public var attempts: Int
    public var nextAttemptAt: Date
    /// Never delivered at or after this time.
    public var expiresAt: Date
    public var leaseUntil: Date?
    public var lastError: String?
    /// What the receiver called the message once it was delivered (a Slack `ts`, a Twilio SID, a
    /// chat message id): later work on the sent message, such as deleting it, starts from it.
    public var receipt: String?
    /// Set on a retraction: the id of the delivery whose sent message this row deletes (or
    /// redacts) once the code has expired. A retraction is claimed, retried, fenced and audited
    /// like any delivery, in its sink's lane, and never changes the delivery it retracts.
    public var retracts: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, eventID: String, sink: String, recipient: String? = nil, route: String?, app: String?,
        state: DeliveryState = .pending, attempts: Int = 0, nextAttemptAt: Date, expiresAt: Date,
        leaseUntil: Date? = nil, lastError: String? = nil, receipt: String? = nil, retracts: String? = nil, createdAt: Date,
        updatedAt: Date? = nil
    ) {
        self.id = id
        self.eventID = eventID
        self.sink = sink
        self.recipient = recipient
        self.route = route
        self.app = app
        self.state = state
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.expiresAt = expiresAt
        self.leaseUntil = leaseUntil
        self.lastError = lastError
        self.receipt = receipt
        self.retracts = retracts
        self.createdAt = createdAt
        self.updatedAt = updatedAt ?? createdAt
    }
}

extension Delivery {
    public var isRetraction: Bool { retracts != nil }
    /// `delivery` or `retraction`: the word the admin API and `herald deliveries` show.
    public var kind: String { isRetraction ? "retraction" : "delivery" }
}

/// The record of one attempt, kept for the audit trail.
public struct DeliveryAttempt: Sendable, Equatable, Codable {
    public var deliveryID: String
    public var number: Int
    public var startedAt: Date
    public var duration: Duration
    public var outcome: String
    /// What the sink reported: status code, provider error, or a transport error.
    public var detail: String?

    public init(deliveryID: String, number: Int, startedAt: Date, duration: Duration, outcome: String, detail: String?) {
        self.deliveryID = deliveryID
        self.number = number
        self.startedAt = startedAt
        self.duration = duration
        self.outcome = outcome
        self.detail = detail
    }
}
