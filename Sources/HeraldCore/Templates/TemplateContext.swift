/// The variables a template sees: `id`, `source`, `source_id`, `from`, `to`, `body`, `otp`, `otp_domain`, `app`,
/// `route`, `received_at`, `media`. Absent values are left out, so `{{#otp}}…{{/otp}}` works.
public struct TemplateContext: @unchecked Sendable {
    // Values are only strings and string arrays; `Any` is what Mustache renders from.
    public let values: [String: Any]

    public init(event: Event, route: String? = nil, app: String? = nil) {
        var values: [String: Any] = [
            "id": event.id,
            "source": event.source,
            "from": event.from,
            "body": event.body,
            "received_at": RFC3339.string(from: event.receivedAt),
            "media": event.media,
        ]
        values["source_id"] = event.sourceID
        values["to"] = event.to
        values["otp"] = event.otp
        values["otp_domain"] = event.otpDomain
        values["app"] = app ?? event.app
        values["route"] = route ?? event.route
        self.values = values
    }

    public init(event: Event, delivery: Delivery) {
        self.init(event: event, route: delivery.route, app: delivery.app)
    }
}
