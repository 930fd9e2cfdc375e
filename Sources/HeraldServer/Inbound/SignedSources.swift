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

/// What a source type knows: how a request proves itself, and how its body reads.
protocol SourceAdapter: Sendable {
    var name: String { get }
    /// Nil when the request proves itself; else why not (checked over the raw bytes, before any parsing).
    func check(_ request: SourceRequest) -> SourceRefusal?
    func parse(_ request: SourceRequest) throws -> SourceEnvelope
    /// The answer to a stored or duplicate message (default: `200 {"id": …}`).
    func accepted(eventID: String) throws -> Response
    /// How long the parts of a long message wait for each other (types that send parts).
    var multipartWait: Duration { get }
}

extension SourceAdapter {
    var multipartWait: Duration { .seconds(5) }

    func accepted(eventID: String) throws -> Response {
        let answer = try JSONSerialization.data(withJSONObject: ["id": eventID])
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: answer)))
    }
}

/// What a source's check sees: the raw request.
struct SourceRequest {
    var headers: HTTPFields
    var body: [UInt8]
    /// The URL's query parameters (phone apps that cannot set a header put a token there).
    var query: [String: String]
    /// The path and query as received (`/sources/x?tenant=acme`), for schemes that sign the URL.
    var pathAndQuery: String
    var now: Date

    /// `Authorization: Bearer <token>`, Basic auth whose password is the token (apps that put
    /// `user:token@` in the URL), or `?token=` equals `token` (constant time).
    func carries(token: Secret) -> Bool {
        var given: String?
        if let authorization = headers[.authorization], authorization.hasPrefix("Bearer ") {
            given = String(authorization.dropFirst("Bearer ".count))
        } else if let authorization = headers[.authorization], authorization.hasPrefix("Basic "),
                  let decoded = Data(base64Encoded: String(authorization.dropFirst("Basic ".count))).map({ String(decoding: $0, as: UTF8.self) }),
                  let colon = decoded.firstIndex(of: ":") {
            given = String(decoded[decoded.index(after: colon)...])
        } else {
            given = query["token"]
        }
        guard let given else { return false }
        return constantTimeEquals(given, token.value)
    }
}

struct SourceRefusal: Error {
    var status: HTTPResponse.Status
    var message: String
    var outcome: HeraldMetrics.EventOutcome
    /// For the log: what was wrong, without any of the request's values.
    var reason: String
}

enum SourceEnvelope: Equatable {
    case message(InboundMessage)
    /// The sender is alive (a phone's ping); nothing to store.
    case ping
    /// An event of another kind (a delivery report, say): acknowledged, dropped.
    case ignored(String)
    /// One part of a long message, joined with the others before routing.
    case part(MessagePart)
}

struct MessagePart: Equatable, Sendable {
    /// The whole message's dedupe key (sender and the provider's reference).
    var key: String
    var index: Int
    var total: Int
    var text: String
    /// The message the joined text goes into.
    var message: InboundMessage
}

/// Joins the parts of long messages. Each part's request waits (up to `wait` from the first
/// part) until the whole message is stored, and is answered with that outcome — so a part is
/// never acknowledged before its text is in the outbox; the sender resends what was not. Past the
/// wait, what arrived is stored with a mark where parts are missing.
final class PartAssembler: Sendable {
    typealias Outcome = Result<Ingestor.Result, any Error>

    private struct Pending {
        var total: Int
        var message: InboundMessage
        var parts: [Int: String] = [:]
        var waiters: [CheckedContinuation<Outcome, Never>] = []
        var timer: Task<Void, Never>?
    }

    private let pending = Mutex<[String: Pending]>([:])
    private let wait: Duration
    private let ingest: @Sendable (InboundMessage) async -> Outcome

    init(wait: Duration, ingest: @escaping @Sendable (InboundMessage) async -> Outcome) {
        self.wait = wait
        self.ingest = ingest
    }

    func add(_ part: MessagePart) async -> Outcome {
        await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
            let complete = pending.withLock { table -> Bool in
                var entry = table[part.key] ?? Pending(total: max(1, min(part.total, 255)), message: part.message)
                entry.parts[part.index] = part.text
                entry.waiters.append(continuation)
                if entry.timer == nil {
                    let wait = wait
                    entry.timer = Task { [weak self] in
                        try? await Task.sleep(for: wait)
                        await self?.flush(part.key)
                    }
                }
                table[part.key] = entry
                return (1...entry.total).allSatisfy { entry.parts[$0] != nil }
            }
            if complete { Task { await self.flush(part.key) } }
        }
    }

    private func flush(_ key: String) async {
        guard let entry = pending.withLock({ $0.removeValue(forKey: key) }) else { return }
        entry.timer?.cancel()
        var message = entry.message
        message.body = (1...entry.total).map { entry.parts[$0] ?? "[…]" }.joined()
        // In a task of its own: the timer that may have called this was just cancelled.
        let ingest = ingest
        let outcome = await Task { await ingest(message) }.value
        for waiter in entry.waiters { waiter.resume(returning: outcome) }
    }
}

/// `POST sources.<name>.path` for the signed source types: the proof is checked over the bytes as
/// received, then the body is read. A message is routed; a ping marks the source alive; any other
/// event is acknowledged and dropped. Every accepted request is answered 2xx — the senders retry
/// anything else — and a retry or a re-sent message is a duplicate, stored once.
struct SignedSourceInbound<Adapter: SourceAdapter>: Sendable {
    let adapter: Adapter
    let maxBody: Int
    let ingestor: Ingestor
    let metrics: HeraldMetrics
    let liveness: SourceLiveness
    let clock: any HeraldClock
    let logger: Logger
    let parts: PartAssembler

    init(adapter: Adapter, maxBody: Int, ingestor: Ingestor, metrics: HeraldMetrics, liveness: SourceLiveness, clock: any HeraldClock, logger: Logger) {
        self.adapter = adapter
        self.maxBody = maxBody
        self.ingestor = ingestor
        self.metrics = metrics
        self.liveness = liveness
        self.clock = clock
        self.logger = logger
        self.parts = PartAssembler(wait: adapter.multipartWait) { message in
            do { return .success(try await ingestor.ingest(message)) } catch { return .failure(error) }
        }
    }

    func handle(_ request: Request, context: some RequestContext) async throws -> Response {
        let source = adapter.name
        let buffer = try await collectBody(request, maxBody: maxBody, source: source, metrics: metrics)
        let body = Array(buffer.readableBytesView)
        let now = clock.now()
        var query: [String: String] = [:]
        for (name, value) in request.uri.queryParameters { query[String(name)] = String(value) }
        let pathAndQuery = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
        let received = SourceRequest(headers: request.headers, body: body, query: query, pathAndQuery: pathAndQuery, now: now)
        if let refusal = adapter.check(received) {
            metrics.eventReceived(source: source, outcome: refusal.outcome)
            logger.notice("request refused: \(refusal.reason)", metadata: ["source.name": "\(source)"])
            throw HTTPError(refusal.status, message: refusal.message)
        }
        let envelope: SourceEnvelope
        do {
            envelope = try adapter.parse(received)
        } catch {
            metrics.eventReceived(source: source, outcome: .invalid)
            throw error
        }
        switch envelope {
        case .ping:
            liveness.ping(source, at: now)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"ok":true}"#)))
        case .ignored(let event):
            logger.debug("event ignored", metadata: ["source.name": "\(source)", "event.type": "\(event)"])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"ignored":true}"#)))
        case .message, .part:
            let result: Ingestor.Result
            do {
                switch envelope {
                case .message(let message): result = try await ingestor.ingest(message)
                case .part(let part): result = try await parts.add(part).get()
                default: throw CancellationError()
                }
                metrics.eventReceived(source: source, outcome: result.duplicate ? .duplicate : .accepted)
            } catch let error as IngestError {
                throw refusal(error, source: source, metrics: metrics)
            } catch {
                logger.error("could not store a message; answering 500 so the sender sends it again", metadata: ["source.name": "\(source)", "error": "\(error)"])
                throw HTTPError(.internalServerError, message: "could not store the message")
            }
            liveness.message(source, at: now)
            return try adapter.accepted(eventID: result.eventID)
        }
    }
}

/// `type: sms-gateway`: SMS Gateway for Android (capcom6) on a phone with a real SIM.
/// `X-Signature` is HMAC-SHA256 of the raw body and `X-Timestamp`; `sms:received` is routed,
/// `system:ping` marks the phone alive.
struct SMSGatewayAdapter: SourceAdapter {
    let config: SMSGatewaySourceConfig
    var name: String { config.name }

    func check(_ request: SourceRequest) -> SourceRefusal? {
        let (headers, body, now) = (request.headers, request.body, request.now)
        guard let timestamp = headers[.smsGatewayTimestamp], let signature = headers[.smsGatewaySignature] else {
            return SourceRefusal(status: .unauthorized, message: "missing X-Signature or X-Timestamp: set the signing key in the app's Settings → Webhooks",
                                 outcome: .rejectedAuth, reason: "no X-Signature or X-Timestamp")
        }
        guard SMSGatewaySignature.isValid(signature: signature, body: body, timestamp: timestamp, signingKey: config.signingKey.value) else {
            return SourceRefusal(status: .forbidden, message: "wrong X-Signature (is the signing key the app's?)", outcome: .rejectedSignature, reason: "wrong signature")
        }
        guard isWithin(config.maxSkew, SMSGatewaySignature.timestamp(timestamp), of: now) else {
            return SourceRefusal(status: .forbidden, message: "X-Timestamp is more than \(config.maxSkew.shortDescription) from this server's clock (a replay, or the phone's clock is off)",
                                 outcome: .rejectedSignature, reason: "X-Timestamp outside the window")
        }
        return nil
    }

    func parse(_ request: SourceRequest) throws -> SourceEnvelope {
        try Self.parse(Data(request.body), source: config.name, now: request.now)
    }

    /// The app's JSON (`{"id","webhookId","event","deviceId","payload":{…}}`; absent fields are
    /// left out, never null). The message's dedupe key is the device, the app's message id, the
    /// time and the sender — the same for a retry and for a re-sent export, whose envelope `id` is new.
    static func parse(_ data: Data, source: String, now: Date) throws -> SourceEnvelope {        guard let object = try? JSONSerialization.jsonObject(with: data), let fields = object as? [String: Any] else {
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
        let receivedAt = plausibleTime(receivedText, now: now)
        let device = (fields["deviceId"] as? String) ?? ""
        let key: String
        if let messageID = payload["messageId"] as? String {
            key = [device, messageID, receivedText ?? "", sender].map { String($0.prefix(64)) }.joined(separator: "|")
        } else if let id = fields["id"] as? String {
            key = String(id.prefix(64))
        } else {
            throw HTTPError(.badRequest, message: "missing \"payload.messageId\" and \"id\"")
        }
        // The phone's own number when the app knows it, else which SIM slot received it.
        var to = payload["recipient"] as? String
        if to?.isEmpty == true { to = nil }
        if to == nil, let slot = payload["simNumber"] as? NSNumber { to = "SIM \(slot.intValue)" }
        return .message(InboundMessage(source: source, sourceID: key, from: sender, to: to, body: text, receivedAt: receivedAt))
    }
}

/// Whether a sender's signed time is within `skew` of ours (either way); no time is not.
func isWithin(_ skew: Duration, _ sent: Date?, of now: Date) -> Bool {
    guard let sent else { return false }
    return abs(sent.timeIntervalSince(now)) <= skew.seconds
}

/// Providers that write numbers as digits only (Plivo, Vonage): the `+` of E.164 added.
func plusPrefixed(_ number: String?) -> String? {
    guard let number, !number.isEmpty else { return nil }
    return number.allSatisfy(\.isNumber) ? "+" + number : number
}

/// A sender's claim of when a message arrived, believed only when plausible (within the JSON
/// source's window); else nil, and the server's time is used.
func plausibleTime(_ text: String?, now: Date) -> Date? {
    guard let date = text.flatMap(RFC3339.date(from:)) else { return nil }
    if now.timeIntervalSince(date) > JSONInbound.maximumAge || date.timeIntervalSince(now) > JSONInbound.maximumLead { return nil }
    return date
}

/// `type: telnyx`: a Telnyx number's `message.received` webhooks, Ed25519-signed over
/// `telnyx-timestamp|body`. Other event types (delivery reports) are acknowledged and dropped.
struct TelnyxAdapter: SourceAdapter {
    let config: TelnyxSourceConfig
    var name: String { config.name }

    func check(_ request: SourceRequest) -> SourceRefusal? {
        let (headers, body, now) = (request.headers, request.body, request.now)
        guard let timestamp = headers[.telnyxTimestamp], let signature = headers[.telnyxSignature] else {
            return SourceRefusal(status: .unauthorized, message: "missing telnyx-signature-ed25519 or telnyx-timestamp", outcome: .rejectedAuth,
                                 reason: "no telnyx-signature-ed25519 or telnyx-timestamp")
        }
        guard TelnyxSignature.isValid(signature: signature, timestamp: timestamp, body: body, publicKey: config.publicKey) else {
            return SourceRefusal(status: .forbidden, message: "wrong telnyx-signature-ed25519 (is public_key this account's?)", outcome: .rejectedSignature,
                                 reason: "wrong signature")
        }
        guard isWithin(config.maxSkew, SMSGatewaySignature.timestamp(timestamp), of: now) else {
            return SourceRefusal(status: .forbidden, message: "telnyx-timestamp is more than \(config.maxSkew.shortDescription) from this server's clock",
                                 outcome: .rejectedSignature, reason: "telnyx-timestamp outside the window")
        }
        return nil
    }

    func parse(_ request: SourceRequest) throws -> SourceEnvelope {
        try Self.parse(Data(request.body), source: config.name, now: request.now)
    }

    /// `{"data":{"event_type","id","payload":{"id","from":{"phone_number"},"to":[{"phone_number"}],"text","media":[{"url"}],"received_at"}}}`.
    /// The message id (`data.payload.id`) is the dedupe key: Telnyx may send an event twice.
    static func parse(_ body: Data, source: String, now: Date) throws -> SourceEnvelope {
        guard let object = try? JSONSerialization.jsonObject(with: body), let root = object as? [String: Any],
              let data = root["data"] as? [String: Any] else {
            throw HTTPError(.badRequest, message: "the body is not a Telnyx webhook (no \"data\" object)")
        }
        guard let type = data["event_type"] as? String else { throw HTTPError(.badRequest, message: "missing \"data.event_type\"") }
        guard type == "message.received" else { return .ignored(String(type.prefix(40))) }
        guard let payload = data["payload"] as? [String: Any] else { throw HTTPError(.badRequest, message: "missing \"data.payload\"") }
        guard let id = payload["id"] as? String, !id.isEmpty else { throw HTTPError(.badRequest, message: "missing \"data.payload.id\"") }
        guard let from = (payload["from"] as? [String: Any])?["phone_number"] as? String, !from.isEmpty else {
            throw HTTPError(.badRequest, message: "missing \"data.payload.from.phone_number\"")
        }
        let to = ((payload["to"] as? [[String: Any]])?.first?["phone_number"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        let text = payload["text"] as? String ?? ""
        let media = (payload["media"] as? [[String: Any]] ?? []).compactMap { $0["url"] as? String }
        return .message(InboundMessage(source: source, sourceID: String(id.prefix(64)), from: from, to: to, body: text, media: media,
                                       receivedAt: plausibleTime(payload["received_at"] as? String, now: now)))
    }
}

/// `type: httpsms`: httpSMS's CloudEvents. `Authorization: Bearer <JWT>` (HS256, audience this
/// source's public URL, ±10 min) proves the sender; it does not cover the body.
struct HTTPSMSAdapter: SourceAdapter {
    let config: HTTPSMSSourceConfig
    var name: String { config.name }

    func check(_ request: SourceRequest) -> SourceRefusal? {
        let (headers, now) = (request.headers, request.now)
        guard let authorization = headers[.authorization], authorization.hasPrefix("Bearer ") else {
            return SourceRefusal(status: .unauthorized, message: "missing the bearer token: set a signing key on the webhook in httpSMS",
                                 outcome: .rejectedAuth, reason: "no bearer token")
        }
        if let failure = HTTPSMSToken.check(String(authorization.dropFirst("Bearer ".count)), signingKey: config.signingKey.value, audience: config.audience, now: now) {
            return SourceRefusal(status: failure == .malformed ? .unauthorized : .forbidden, message: failure.description,
                                 outcome: .rejectedSignature, reason: failure.description)
        }
        return nil
    }

    func parse(_ request: SourceRequest) throws -> SourceEnvelope {
        try Self.parse(Data(request.body), source: config.name, now: request.now)
    }

    /// `{"specversion","id","type":"message.phone.received","data":{"message_id","owner","contact","content","timestamp","encrypted","attachments"}}`.
    /// The message id is the dedupe key (the event id changes when httpSMS sends it again).
    static func parse(_ body: Data, source: String, now: Date) throws -> SourceEnvelope {
        guard let object = try? JSONSerialization.jsonObject(with: body), let event = object as? [String: Any] else {
            throw HTTPError(.badRequest, message: "the body is not a JSON object")
        }
        guard let type = event["type"] as? String else { throw HTTPError(.badRequest, message: "missing \"type\"") }
        guard type == "message.phone.received" else { return .ignored(String(type.prefix(40))) }
        guard let data = event["data"] as? [String: Any] else { throw HTTPError(.badRequest, message: "missing \"data\"") }
        if data["encrypted"] as? Bool == true {
            throw HTTPError(.unprocessableContent, message: "the message is end-to-end encrypted in httpSMS; Herald cannot read it (turn encryption off for this phone)")
        }
        guard let sender = data["contact"] as? String, !sender.isEmpty else { throw HTTPError(.badRequest, message: "missing \"data.contact\"") }
        guard let text = data["content"] as? String else { throw HTTPError(.badRequest, message: "missing \"data.content\"") }
        guard let id = (data["message_id"] as? String) ?? (event["id"] as? String), !id.isEmpty else {
            throw HTTPError(.badRequest, message: "missing \"data.message_id\"")
        }
        let owner = (data["owner"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        let media = data["attachments"] as? [String] ?? []
        return .message(InboundMessage(source: source, sourceID: String(id.prefix(64)), from: sender, to: owner, body: text, media: media,
                                       receivedAt: plausibleTime(data["timestamp"] as? String, now: now)))
    }
}

/// `type: sms-to-url`: "Incoming SMS to URL forwarder". Its signature (newer versions) is the
/// lowercase hex HMAC-SHA256 of the body in `X-Signature`, with no timestamp; older versions do not
/// sign, so a `token` (bearer or `?token=`) is the proof. With both set, both are required.
struct SMSToURLAdapter: SourceAdapter {
    let config: SMSToURLSourceConfig
    var name: String { config.name }

    func check(_ request: SourceRequest) -> SourceRefusal? {
        if let token = config.token, !request.carries(token: token) {
            return SourceRefusal(status: .unauthorized, message: "missing or wrong token (Authorization: Bearer, or ?token= in the URL)", outcome: .rejectedAuth,
                                 reason: "missing or wrong token")
        }
        if let key = config.signingKey {
            guard let signature = request.headers[.smsGatewaySignature] else {
                return SourceRefusal(status: .unauthorized, message: "missing X-Signature: set the same secret in the app", outcome: .rejectedAuth, reason: "no X-Signature")
            }
            let expected = SMSToURLSignature.compute(body: request.body, secret: key.value)
            guard constantTimeEquals(expected, signature.lowercased()) else {
                return SourceRefusal(status: .forbidden, message: "wrong X-Signature (is the secret the app's?)", outcome: .rejectedSignature, reason: "wrong signature")
            }
        }
        return nil
    }

    func parse(_ request: SourceRequest) throws -> SourceEnvelope {
        try Self.parse(Data(request.body), source: config.name, now: request.now)
    }

    /// The app's default template: `{"from","text","sentStamp","receivedStamp","sim"}` (stamps in
    /// milliseconds). No id: the dedupe key is a hash of sender, sent time, text and SIM, the same
    /// for every retry (the app sends identical bytes).
    static func parse(_ body: Data, source: String, now: Date) throws -> SourceEnvelope {
        guard let object = try? JSONSerialization.jsonObject(with: body), let fields = object as? [String: Any] else {
            throw HTTPError(.badRequest, message: "the body is not a JSON object (the app's template must stay JSON)")
        }
        guard let from = fields["from"] as? String, !from.isEmpty else { throw HTTPError(.badRequest, message: "missing \"from\"") }
        guard let text = fields["text"] as? String else { throw HTTPError(.badRequest, message: "missing \"text\"") }
        let sent = (fields["sentStamp"] as? NSNumber)?.doubleValue
        let sim = fields["sim"] as? String ?? ""
        var receivedAt = sent.map { Date(timeIntervalSince1970: $0 / 1000) }
        if let date = receivedAt, now.timeIntervalSince(date) > JSONInbound.maximumAge || date.timeIntervalSince(now) > JSONInbound.maximumLead { receivedAt = nil }
        let key = SMSToURLSignature.dedupeKey(from: from, sentStamp: sent.map { String(Int64($0)) } ?? "", text: text, sim: sim)
        // No recipient number: which SIM (`sim1`, `sim2`) received it, when the app could tell.
        let slot = sim.isEmpty || sim == "undetected" ? nil : sim
        return .message(InboundMessage(source: source, sourceID: key, from: from, to: slot, body: text, receivedAt: receivedAt))
    }
}

/// `type: smsforwarder`: SmsForwarder's webhook sender, as a form (its default) or a JSON
/// template. The `token` proves the sender and `sign` (over the timestamp only) the freshness.
struct SmsForwarderAdapter: SourceAdapter {
    let config: SmsForwarderSourceConfig
    var name: String { config.name }

    func check(_ request: SourceRequest) -> SourceRefusal? {
        guard request.carries(token: config.token) else {
            return SourceRefusal(status: .unauthorized, message: "missing or wrong token (?token= in the app's URL, Basic auth, or a bearer token)",
                                 outcome: .rejectedAuth, reason: "missing or wrong token")
        }
        let fields = Self.fields(request.body, contentType: request.headers[.contentType])
        guard let timestamp = fields["timestamp"], let sign = fields["sign"] else {
            return SourceRefusal(status: .unauthorized, message: "missing timestamp or sign: set the secret in the app's webhook sender",
                                 outcome: .rejectedAuth, reason: "no timestamp or sign")
        }
        guard SmsForwarderSignature.isValid(sign: sign, timestamp: timestamp, secret: config.secret.value) else {
            return SourceRefusal(status: .forbidden, message: "wrong sign (is the secret the app's?)", outcome: .rejectedSignature, reason: "wrong sign")
        }
        guard isWithin(config.maxSkew, Int64(timestamp).map { Date(timeIntervalSince1970: Double($0) / 1000) }, of: request.now) else {
            return SourceRefusal(status: .forbidden, message: "timestamp is more than \(config.maxSkew.shortDescription) from this server's clock (a replay, or the phone's clock is off)",
                                 outcome: .rejectedSignature, reason: "timestamp outside the window")
        }
        return nil
    }

    func parse(_ request: SourceRequest) throws -> SourceEnvelope {
        let fields = Self.fields(request.body, contentType: request.headers[.contentType])
        guard let from = fields["from"], !from.isEmpty else { throw HTTPError(.badRequest, message: "missing \"from\"") }
        // The raw SMS: `[org_content]` in a template; the default `content` is the app's own
        // template around it (sender, text, SIM, time), which still carries the code.
        guard let text = fields["text"] ?? fields["org_content"] ?? fields["msg"] ?? fields["content"] else {
            throw HTTPError(.badRequest, message: "missing the text (\"text\" or \"org_content\" in the template, or the default \"content\")")
        }
        // No id: the sender, the text and when the phone received it (the default content holds that time).
        let key = SMSToURLSignature.dedupeKey(from: from, sentStamp: fields["receive_time"] ?? "", text: fields["content"] ?? text, sim: fields["card_slot"] ?? "")
        // No recipient number: the SIM slot (`SIM1_<label>`) says which line received it.
        let slot = fields["card_slot"].flatMap { $0.isEmpty ? nil : $0 }
        return .message(InboundMessage(source: config.name, sourceID: key, from: from, to: slot, body: text))
    }

    /// The fields of a form body or of a flat JSON object (numbers as their text).
    static func fields(_ body: [UInt8], contentType: String?) -> [String: String] {
        let isJSON = contentType?.lowercased().contains("json") == true || body.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) == UInt8(ascii: "{")
        var fields: [String: String] = [:]
        if isJSON {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else { return [:] }
            for (key, value) in object {
                if let text = value as? String { fields[key] = text } else if let number = value as? NSNumber { fields[key] = number.stringValue }
            }
        } else {
            for (name, value) in TwilioSignature.parseForm(String(decoding: body, as: UTF8.self)) where fields[name] == nil { fields[name] = value }
        }
        return fields
    }
}

/// `type: plivo`: a Plivo number's inbound SMS, a form signed with `X-Plivo-Signature-V3` (or
/// `-Ma-V3`) over the public URL, the form and the nonce. V2 alone is refused: it signs neither
/// the form nor the query, so it proves nothing about the message.
struct PlivoAdapter: SourceAdapter {
    let config: PlivoSourceConfig
    var name: String { config.name }

    func check(_ request: SourceRequest) -> SourceRefusal? {
        guard let nonce = request.headers[.plivoNonceV3], request.headers[.plivoSignatureV3] != nil || request.headers[.plivoSignatureMaV3] != nil else {
            let v2Only = request.headers[.plivoSignatureV2] != nil
            return SourceRefusal(status: v2Only ? .forbidden : .unauthorized,
                                 message: v2Only ? "only X-Plivo-Signature-V2, which does not sign the message: Herald needs V3" : "missing X-Plivo-Signature-V3 and its nonce",
                                 outcome: v2Only ? .rejectedSignature : .rejectedAuth, reason: v2Only ? "V2 signature only" : "no V3 signature")
        }
        let parameters = TwilioSignature.parseForm(String(decoding: request.body, as: UTF8.self))
        let url = config.publicURL + request.pathAndQuery
        let valid = [request.headers[.plivoSignatureV3], request.headers[.plivoSignatureMaV3]].compactMap { $0 }.contains {
            PlivoSignature.isValid(header: $0, url: url, parameters: parameters, nonce: nonce, authToken: config.authToken.value)
        }
        guard valid else {
            return SourceRefusal(status: .forbidden, message: "wrong X-Plivo-Signature-V3 (is auth_token the account's, and server.public_url the URL Plivo calls?)",
                                 outcome: .rejectedSignature, reason: "wrong signature")
        }
        return nil
    }

    func parse(_ request: SourceRequest) throws -> SourceEnvelope {
        var fields: [String: String] = [:]
        for (name, value) in TwilioSignature.parseForm(String(decoding: request.body, as: UTF8.self)) where fields[name] == nil { fields[name] = value }
        guard let id = fields["MessageUUID"], !id.isEmpty else { throw HTTPError(.badRequest, message: "missing MessageUUID") }
        guard let from = fields["From"], !from.isEmpty else { throw HTTPError(.badRequest, message: "missing From") }
        let text = fields["Text"] ?? fields["Body"] ?? ""
        return .message(InboundMessage(source: config.name, sourceID: String(id.prefix(64)), from: plusPrefixed(from) ?? from, to: plusPrefixed(fields["To"]), body: text))
    }

    /// Plivo reads the answer as Message XML: an empty one sends nothing back.
    func accepted(eventID: String) throws -> Response {
        Response(status: .ok, headers: [.contentType: "application/xml"], body: .init(byteBuffer: ByteBuffer(string: "<Response></Response>")))
    }
}

/// `type: vonage`: a Vonage number's inbound SMS, as a GET query, a POST form or JSON. `sig`
/// (when Vonage signs, on request to its support) and/or the URL's `token` prove it. Parts of a
/// long message (`concat`) are joined before routing; `messageId` (or the concat reference) is
/// the dedupe key. Vonage's retries are not known to be re-signed with a fresh timestamp, so no
/// window is enforced: dedupe stores a replay once.
struct VonageAdapter: SourceAdapter {
    let config: VonageSourceConfig
    var name: String { config.name }
    var multipartWait: Duration { config.multipartWait }

    func check(_ request: SourceRequest) -> SourceRefusal? {
        if let token = config.token, !request.carries(token: token) {
            return SourceRefusal(status: .unauthorized, message: "missing or wrong token (?token= in the inbound URL)", outcome: .rejectedAuth, reason: "missing or wrong token")
        }
        if let secret = config.signatureSecret, let method = VonageSignature.Method(rawValue: config.signatureMethod) {
            let parameters = Self.parameters(request)
            guard let sig = parameters.first(where: { $0.name == "sig" })?.value else {
                return SourceRefusal(status: .unauthorized, message: "missing sig: the signature Vonage adds once signing is on", outcome: .rejectedAuth, reason: "no sig")
            }
            guard VonageSignature.isValid(sig: sig, parameters: parameters, secret: secret.value, method: method) else {
                return SourceRefusal(status: .forbidden, message: "wrong sig (is the signature secret and method the account's?)", outcome: .rejectedSignature, reason: "wrong sig")
            }
        }
        return nil
    }

    /// The query's parameters and the body's (form or JSON), as received.
    static func parameters(_ request: SourceRequest) -> [(name: String, value: String)] {
        var all = request.query.map { (name: $0.key, value: $0.value) }.filter { $0.name != "token" }
        all += bodyParameters(request.body)
        return all
    }

    static func bodyParameters(_ body: [UInt8]) -> [(name: String, value: String)] {
        guard !body.isEmpty else { return [] }
        if body.first == UInt8(ascii: "{"), let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] {
            return object.compactMap { key, value in
                if let text = value as? String { return (key, text) }
                if let number = value as? NSNumber { return (key, String(cString: number.objCType) == "c" ? (number.boolValue ? "true" : "false") : number.stringValue) }
                return nil
            }
        }
        return TwilioSignature.parseForm(String(decoding: body, as: UTF8.self))
    }

    func parse(_ request: SourceRequest) throws -> SourceEnvelope {
        var fields: [String: String] = [:]
        for (name, value) in Self.parameters(request) where fields[name] == nil { fields[name] = value }
        let type = fields["type"] ?? "text"
        guard type == "text" || type == "unicode" else { return .ignored("type \(type.prefix(20))") }
        guard let from = fields["msisdn"], !from.isEmpty else { throw HTTPError(.badRequest, message: "missing msisdn") }
        guard let id = fields["messageId"], !id.isEmpty else { throw HTTPError(.badRequest, message: "missing messageId") }
        let text = fields["text"] ?? ""
        let message = InboundMessage(source: config.name, sourceID: String(id.prefix(64)), from: plusPrefixed(from) ?? from, to: plusPrefixed(fields["to"]), body: text)
        if fields["concat"] == "true", let ref = fields["concat-ref"], let total = Int(fields["concat-total"] ?? ""), let index = Int(fields["concat-part"] ?? ""),
           total > 1, (1...total).contains(index) {
            var whole = message
            whole.sourceID = String("\(from):concat:\(ref)".prefix(64))
            return .part(MessagePart(key: whole.sourceID!, index: index, total: total, text: text, message: whole))
        }
        return .message(message)
    }
}

extension HTTPField.Name {
    static let plivoSignatureV3 = Self("X-Plivo-Signature-V3")!
    static let plivoSignatureMaV3 = Self("X-Plivo-Signature-Ma-V3")!
    static let plivoNonceV3 = Self("X-Plivo-Signature-V3-Nonce")!
    static let plivoSignatureV2 = Self("X-Plivo-Signature-V2")!
    static let telnyxSignature = Self("telnyx-signature-ed25519")!
    static let telnyxTimestamp = Self("telnyx-timestamp")!
    static let smsGatewaySignature = Self("X-Signature")!
    static let smsGatewayTimestamp = Self("X-Timestamp")!
}
