import Foundation

/// One inbound message, normalized. Every source (Twilio, the generic JSON endpoint, later other
/// providers) produces this same shape, and routes, templates and sinks only ever see it.
public struct Event: Sendable, Equatable, Codable {
    public var id: String
    /// `twilio` or `http`.
    public var source: String
    /// The provider's message id (`MessageSid`), the dedupe key together with `source`.
    public var sourceID: String?
    public var from: String
    public var to: String?
    public var body: String
    /// The code a person types, when the body has one.
    public var otp: String?
    /// The domain an origin-bound code is for (`@example.com #123456`).
    public var otpDomain: String?
    /// The first matching route's `app` label.
    public var app: String?
    /// The first matching route's name; nil for an unrouted event.
    public var route: String?
    public var receivedAt: Date
    public var media: [String]

    public init(
        id: String, source: String, sourceID: String?, from: String, to: String?, body: String,
        otp: String? = nil, otpDomain: String? = nil, app: String? = nil, route: String? = nil, receivedAt: Date, media: [String] = []
    ) {
        self.id = id
        self.source = source
        self.sourceID = sourceID
        self.from = from
        self.to = to
        self.body = body
        self.otp = otp
        self.otpDomain = otpDomain
        self.app = app
        self.route = route
        self.receivedAt = receivedAt
        self.media = media
    }

    enum CodingKeys: String, CodingKey {
        case id, source, sourceID = "source_id", from, to, body, otp, otpDomain = "otp_domain", app, route, receivedAt = "received_at", media
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        source = try c.decode(String.self, forKey: .source)
        sourceID = try c.decodeIfPresent(String.self, forKey: .sourceID)
        from = try c.decode(String.self, forKey: .from)
        to = try c.decodeIfPresent(String.self, forKey: .to)
        body = try c.decode(String.self, forKey: .body)
        otp = try c.decodeIfPresent(String.self, forKey: .otp)
        otpDomain = try c.decodeIfPresent(String.self, forKey: .otpDomain)
        app = try c.decodeIfPresent(String.self, forKey: .app)
        route = try c.decodeIfPresent(String.self, forKey: .route)
        let stamp = try c.decode(String.self, forKey: .receivedAt)
        guard let date = RFC3339.date(from: stamp) else {
            throw DecodingError.dataCorruptedError(forKey: .receivedAt, in: c, debugDescription: "not an RFC 3339 time")
        }
        receivedAt = date
        media = try c.decodeIfPresent([String].self, forKey: .media) ?? []
    }

    /// Encodes exactly the documented keys; absent values are written as `null`, not left out.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(source, forKey: .source)
        try c.encode(sourceID, forKey: .sourceID)
        try c.encode(from, forKey: .from)
        try c.encode(to, forKey: .to)
        try c.encode(body, forKey: .body)
        try c.encode(otp, forKey: .otp)
        try c.encode(otpDomain, forKey: .otpDomain)
        try c.encode(app, forKey: .app)
        try c.encode(route, forKey: .route)
        try c.encode(RFC3339.string(from: receivedAt), forKey: .receivedAt)
        try c.encode(media, forKey: .media)
    }

    /// The event as one line of JSON (keys sorted, absent values `null`, no trailing newline):
    /// the HTTP sink's default body and the file sink's line. Written by hand: it is built for
    /// every delivery, and `JSONEncoder` was a visible share of the delivery path's time.
    public func jsonData() -> Data {
        func string(_ value: String?) -> String {
            value.map { "\"" + JSONText.escape($0) + "\"" } ?? "null"
        }
        var json = "{\"app\":" + string(app)
        json += ",\"body\":" + string(body)
        json += ",\"from\":" + string(from)
        json += ",\"id\":" + string(id)
        json += ",\"media\":[" + media.map { string($0) }.joined(separator: ",") + "]"
        json += ",\"otp\":" + string(otp)
        json += ",\"otp_domain\":" + string(otpDomain)
        json += ",\"received_at\":" + string(RFC3339.string(from: receivedAt))
        json += ",\"route\":" + string(route)
        json += ",\"source\":" + string(source)
        json += ",\"source_id\":" + string(sourceID)
        json += ",\"to\":" + string(to) + "}"
        return Data(json.utf8)
    }
}

/// What an inbound adapter hands to the ingest path before routing.
public struct InboundMessage: Sendable, Equatable {
    public var source: String
    public var sourceID: String?
    public var from: String
    public var to: String?
    public var body: String
    public var media: [String]
    public var receivedAt: Date?

    public init(source: String, sourceID: String?, from: String, to: String?, body: String, media: [String] = [], receivedAt: Date? = nil) {
        self.source = source
        self.sourceID = sourceID
        self.from = from
        self.to = to
        self.body = body
        self.media = media
        self.receivedAt = receivedAt
    }
}
