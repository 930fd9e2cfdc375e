import CoreMetrics
import Foundation

/// Herald's metrics, written through swift-metrics to the factory of one runtime (the server's
/// Prometheus registry, or a test's own), so no process-wide bootstrap is needed. Labels are only
/// source, sink and outcome names from the configuration: never a number, a body or a secret.
public struct HeraldMetrics: Sendable {
    public enum EventOutcome: String, Sendable, CaseIterable {
        case accepted, duplicate
        case rejectedSignature = "rejected_signature"
        case rejectedAuth = "rejected_auth"
        case invalid
        case rateLimited = "rate_limited"
        case tooLarge = "too_large"
        /// Answered 503: the work queued ahead would outlast the message's code (`server.limits.refuse_when`).
        case refusedOverloaded = "refused_overloaded"
    }

    public enum DeliveryOutcomeLabel: String, Sendable, CaseIterable {
        case delivered, retried, failed, expired, skipped
    }

    let factory: any MetricsFactory

    public init(factory: any MetricsFactory) {
        self.factory = factory
    }

    /// Metrics that go nowhere (commands that do not serve).
    public static let none = HeraldMetrics(factory: NOOPMetricsHandler.instance)

    public func eventReceived(source: String, outcome: EventOutcome) {
        Counter(label: "herald_events_received_total", dimensions: [("source", source), ("outcome", outcome.rawValue)], factory: factory).increment()
    }

    public func delivery(sink: String, outcome: DeliveryOutcomeLabel) {
        Counter(label: "herald_deliveries_total", dimensions: [("sink", sink), ("outcome", outcome.rawValue)], factory: factory).increment()
    }

    public func attempt(sink: String, duration: Duration) {
        Timer(label: "herald_delivery_attempt_seconds", dimensions: [("sink", sink)], factory: factory).recordNanoseconds(nanoseconds(duration))
    }

    /// `herald_retractions_total{sink,outcome}`: a retraction's result (`delivered`: the message
    /// is gone; `pending`: retried).
    public func retraction(sink: String, outcome: DeliveryState) {
        Counter(label: "herald_retractions_total", dimensions: [("sink", sink), ("outcome", outcome.rawValue)], factory: factory).increment()
    }

    /// Received → delivered.
    public func latency(sink: String, duration: Duration) {
        Timer(label: "herald_delivery_latency_seconds", dimensions: [("sink", sink)], factory: factory).recordNanoseconds(nanoseconds(duration))
    }

    /// `herald_source_last_seen_timestamp_seconds{source}`: a message or a phone's ping.
    public func sourceSeen(source: String, at date: Date) {
        Gauge(label: "herald_source_last_seen_timestamp_seconds", dimensions: [("source", source)], factory: factory).record(date.timeIntervalSince1970)
    }

    public func pending(_ count: Int) {
        Gauge(label: "herald_outbox_pending", factory: factory).record(count)
    }

    public func reload(success: Bool, at date: Date) {
        Gauge(label: "herald_config_reload_success", factory: factory).record(success ? 1 : 0)
        if success {
            Gauge(label: "herald_config_reload_timestamp_seconds", factory: factory).record(date.timeIntervalSince1970)
        }
    }

    private func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
