import Foundation
import HTTPTypes
import HeraldCore
import Hummingbird
import Logging
import Synchronization

/// When each source was last heard from: its last message and (phones) its last ping. Read by
/// `GET /admin/sources`; every update also sets `herald_source_last_seen_timestamp_seconds`.
public final class SourceLiveness: Sendable {
    public struct Seen: Sendable, Equatable {
        public var lastMessage: Date?
        public var lastPing: Date?
    }

    private let seen = Mutex<[String: Seen]>([:])
    private let metrics: HeraldMetrics

    init(metrics: HeraldMetrics) {
        self.metrics = metrics
    }

    func message(_ source: String, at date: Date) {
        seen.withLock { $0[source, default: Seen()].lastMessage = date }
        metrics.sourceSeen(source: source, at: date)
    }

    func ping(_ source: String, at date: Date) {
        seen.withLock { $0[source, default: Seen()].lastPing = date }
        metrics.sourceSeen(source: source, at: date)
    }

    public func current(_ source: String) -> Seen { seen.withLock { $0[source] ?? Seen() } }
}

/// `POST sources.<name>.path` for `type: sms-gateway`: SMS Gateway for Android (capcom6) on a
/// phone with a real SIM. The signature (`X-Signature`, HMAC-SHA256 of the raw body and
/// `X-Timestamp`) is checked over the bytes as received, then the timestamp window, then the
/// JSON is read. `sms:received` is routed; `system:ping` only marks the phone alive; any other
/// event is acknowledged and dropped. Every accepted request is answered 2xx — the app retries
/// anything else, for days — and a retry or a re-sent message is a duplicate, stored once.
struct SMSGatewayInbound: Sendable {
    let config: SMSGatewaySourceConfig
    let maxBody: Int
    let ingestor: Ingestor
    let metrics: HeraldMetrics
    let liveness: SourceLiveness
    let clock: any HeraldClock
    let logger: Logger

    func handle(_ request: Request, context: some RequestContext) async throws -> Response {
        let source = config.name
        let buffer = try await collectBody(request, maxBody: maxBody, source: source, metrics: metrics)
        let body = Array(buffer.readableBytesView)
        guard let timestamp = request.headers[.smsGatewayTimestamp], let signature = request.headers[.smsGatewaySignature] else {
            metrics.eventReceived(source: source, outcome: .rejectedAuth)
            logger.notice("SMS gateway request refused: no X-Signature or X-Timestamp", metadata: ["source.name": "\(source)"])
            throw HTTPError(.unauthorized, message: "missing X-Signature or X-Timestamp: set the signing key in the app's Settings → Webhooks")
        }
        guard SMSGatewaySignature.isValid(signature: signature, body: body, timestamp: timestamp, signingKey: config.signingKey.value) else {
            metrics.eventReceived(source: source, outcome: .rejectedSignature)
            logger.notice("SMS gateway request refused: wrong signature", metadata: ["source.name": "\(source)"])
            throw HTTPError(.forbidden, message: "wrong X-Signature (is the signing key the app's?)")
        }
        let now = clock.now()
        guard let sent = SMSGatewaySignature.timestamp(timestamp), abs(sent.timeIntervalSince(now)) <= config.maxSkew.seconds else {
            metrics.eventReceived(source: source, outcome: .rejectedSignature)
            logger.notice("SMS gateway request refused: X-Timestamp outside the window", metadata: ["source.name": "\(source)"])
            throw HTTPError(.forbidden, message: "X-Timestamp is more than \(config.maxSkew.shortDescription) from this server's clock (a replay, or the phone's clock is off)")
        }
        let envelope: Envelope
        do {
            envelope = try Self.parse(Data(body), source: source, now: now)
        } catch {
            metrics.eventReceived(source: source, outcome: .invalid)
            throw error
        }
        switch envelope {
        case .ping:
            liveness.ping(source, at: now)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"ok":true}"#)))
        case .ignored(let event):
            logger.debug("SMS gateway event ignored", metadata: ["source.name": "\(source)", "event.type": "\(event)"])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"ignored":true}"#)))
        case .message(let message):
            let result: Ingestor.Result
            do {
                result = try await ingestor.ingest(message)
                metrics.eventReceived(source: source, outcome: result.duplicate ? .duplicate : .accepted)
            } catch let error as IngestError {
                throw refusal(error, source: source, metrics: metrics)
            } catch {
                logger.error("could not store an SMS gateway message; answering 500 so the app sends it again", metadata: ["source.name": "\(source)", "error": "\(error)"])
                throw HTTPError(.internalServerError, message: "could not store the message")
            }
            liveness.message(source, at: now)
            let answer = try JSONSerialization.data(withJSONObject: ["id": result.eventID])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: answer)))
        }
    }

    enum Envelope: Equatable {
        case message(InboundMessage)
        case ping
        case ignored(String)
    }

    /// The app's JSON (`{"id","webhookId","event","deviceId","payload":{…}}`; absent fields are
    /// left out, never null). The message's dedupe key is the device, the app's message id, the
    /// time and the sender — the same for a retry and for a re-sent export, whose envelope `id` is new.
    static func parse(_ data: Data, source: String, now: Date) throws -> Envelope {
        guard let object = try? JSONSerialization.jsonObject(with: data), let fields = object as? [String: Any] else {
            throw HTTPError(.badRequest, message: "the body is not a JSON object")
        }
        guard let event = fields["event"] as? String else { throw HTTPError(.badRequest, message: "missing \"event\"") }
        switch event {
        case "system:ping": return .ping
        case "sms:received": break
        default: return .ignored(String(event.prefix(40)))
        }
        guard let payload = fields["payload"] as? [String: Any] else { throw HTTPError(.badRequest, message: "missing \"payload\"") }
        guard let text = payload["message"] as? String else { throw HTTPError(.badRequest, message: "missing \"payload.message\"") }
        guard let sender = (payload["sender"] as? String) ?? (payload["phoneNumber"] as? String), !sender.isEmpty else {
            throw HTTPError(.badRequest, message: "missing \"payload.sender\"")
        }
        let receivedText = payload["receivedAt"] as? String
        // The phone's clock says when the SMS arrived; a time implausibly far off is not believed.
        var receivedAt = receivedText.flatMap(RFC3339.date(from:))
        if let date = receivedAt, now.timeIntervalSince(date) > JSONInbound.maximumAge || date.timeIntervalSince(now) > JSONInbound.maximumLead {
            receivedAt = nil
        }
        let device = (fields["deviceId"] as? String) ?? ""
        let key: String
        if let messageID = payload["messageId"] as? String {
            key = [device, messageID, receivedText ?? "", sender].map { String($0.prefix(64)) }.joined(separator: "|")
        } else if let id = fields["id"] as? String {
            key = String(id.prefix(64))
        } else {
            throw HTTPError(.badRequest, message: "missing \"payload.messageId\" and \"id\"")
        }
        var to = payload["recipient"] as? String
        if to?.isEmpty == true { to = nil }
        return .message(InboundMessage(source: source, sourceID: key, from: sender, to: to, body: text, receivedAt: receivedAt))
    }
}

extension HTTPField.Name {
    static let smsGatewaySignature = Self("X-Signature")!
    static let smsGatewayTimestamp = Self("X-Timestamp")!
}
