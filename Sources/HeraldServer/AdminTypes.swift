import Foundation
import HeraldCore

/// The admin API's JSON, as types the server encodes and `AdminClient` (and so `herald retry`)
/// decodes: one definition of each shape. Absent values are written as `null`, never left out.
public struct AdminDelivery: Codable, Sendable, Equatable {
    public var id: String
    public var eventID: String
    public var sink: String
    public var recipient: String?
    public var route: String?
    public var app: String?
    public var state: DeliveryState
    public var attempts: Int
    public var nextAttemptAt: String
    public var expiresAt: String
    public var lastError: String?
    /// The receiver's id for the sent message.
    public var receipt: String?
    /// `delivery`, or `retraction`: a row that deletes the message of the delivery `retracts`
    /// once the code expired.
    public var kind: String
    public var retracts: String?
    public var createdAt: String
    public var updatedAt: String

    public init(_ d: Delivery) {
        id = d.id
        eventID = d.eventID
        sink = d.sink
        recipient = d.recipient
        route = d.route
        app = d.app
        state = d.state
        attempts = d.attempts
        nextAttemptAt = RFC3339.string(from: d.nextAttemptAt)
        expiresAt = RFC3339.string(from: d.expiresAt)
        lastError = d.lastError
        receipt = d.receipt
        kind = d.kind
        retracts = d.retracts
        createdAt = RFC3339.string(from: d.createdAt)
        updatedAt = RFC3339.string(from: d.updatedAt)
    }

    enum CodingKeys: String, CodingKey {
        case id, eventID = "event_id", sink, recipient, route, app, state, attempts, nextAttemptAt = "next_attempt_at"
        case expiresAt = "expires_at", lastError = "last_error", receipt, kind, retracts, createdAt = "created_at", updatedAt = "updated_at"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(eventID, forKey: .eventID)
        try c.encode(sink, forKey: .sink)
        try c.encode(recipient, forKey: .recipient)
        try c.encode(route, forKey: .route)
        try c.encode(app, forKey: .app)
        try c.encode(state, forKey: .state)
        try c.encode(attempts, forKey: .attempts)
        try c.encode(nextAttemptAt, forKey: .nextAttemptAt)
        try c.encode(expiresAt, forKey: .expiresAt)
        try c.encode(lastError, forKey: .lastError)
        try c.encode(receipt, forKey: .receipt)
        try c.encode(kind, forKey: .kind)
        try c.encode(retracts, forKey: .retracts)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(updatedAt, forKey: .updatedAt)
    }
}

public struct AdminAttempt: Codable, Sendable, Equatable {
    public var deliveryID: String
    public var number: Int
    public var startedAt: String
    public var durationMs: Int
    public var outcome: String
    public var detail: String?

    public init(_ a: DeliveryAttempt) {
        deliveryID = a.deliveryID
        number = a.number
        startedAt = RFC3339.string(from: a.startedAt)
        durationMs = Int((a.duration.seconds * 1000).rounded())
        outcome = a.outcome
        detail = a.detail
    }

    enum CodingKeys: String, CodingKey {
        case deliveryID = "delivery_id", number, startedAt = "started_at", durationMs = "duration_ms", outcome, detail
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(deliveryID, forKey: .deliveryID)
        try c.encode(number, forKey: .number)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encode(durationMs, forKey: .durationMs)
        try c.encode(outcome, forKey: .outcome)
        try c.encode(detail, forKey: .detail)
    }
}

/// An event with its deliveries (and, shown alone, its attempts): the event's own keys plus
/// `routed`, `deliveries` and `attempts`.
public struct AdminEvent: Codable, Sendable, Equatable {
    public var event: Event
    public var routed: Bool
    public var deliveries: [AdminDelivery]
    public var attempts: [AdminAttempt]?

    public init(_ stored: StoredEvent, attempts: Bool) {
        event = stored.event
        routed = stored.isRouted
        deliveries = stored.deliveries.map(AdminDelivery.init)
        self.attempts = attempts ? stored.attempts.map(AdminAttempt.init) : nil
    }

    enum CodingKeys: String, CodingKey {
        case routed, deliveries, attempts
    }

    public init(from decoder: any Decoder) throws {
        event = try Event(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        routed = try c.decode(Bool.self, forKey: .routed)
        deliveries = try c.decode([AdminDelivery].self, forKey: .deliveries)
        attempts = try c.decodeIfPresent([AdminAttempt].self, forKey: .attempts)
    }

    public func encode(to encoder: any Encoder) throws {
        try event.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(routed, forKey: .routed)
        try c.encode(deliveries, forKey: .deliveries)
        try c.encodeIfPresent(attempts, forKey: .attempts)
    }
}

public struct AdminEventList: Codable, Sendable, Equatable {
    public var events: [AdminEvent]
}

public struct AdminDeliveryList: Codable, Sendable, Equatable {
    public var deliveries: [AdminDelivery]
}

/// `POST /admin/reload`: `reloaded` with the warnings, or the problems (file:line:column).
public struct AdminReload: Codable, Sendable, Equatable {
    public var reloaded: Bool
    public var warnings: [String]?
    public var errors: [String]?
}

/// Every refusal: `{"error": {"message": "…"}}` (Hummingbird's `HTTPError` shape).
public struct AdminErrorBody: Codable, Sendable, Equatable {
    public struct Detail: Codable, Sendable, Equatable {
        public var message: String
    }

    public var error: Detail
}

enum AdminCoding {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}

public struct AdminSource: Codable, Sendable, Equatable {
    public var name: String
    public var type: String
    public var path: String
    public var lastMessageAt: String?
    public var lastPingAt: String?

    enum CodingKeys: String, CodingKey {
        case name, type, path
        case lastMessageAt = "last_message_at"
        case lastPingAt = "last_ping_at"
    }
}

public struct AdminSourceList: Codable, Sendable, Equatable {
    public var sources: [AdminSource]
}
