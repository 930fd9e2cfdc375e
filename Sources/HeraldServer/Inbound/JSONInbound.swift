import Foundation
import HTTPTypes
import HeraldCore
import Hummingbird
import Logging

/// `POST sources.http.path`: the generic JSON source, for other providers and phones.
/// `{ "from", "to"?, "body", "id"?, "received_at"?, "media"? }` with `Authorization: Bearer <token>`.
struct JSONInbound: Sendable {
    let config: HTTPSourceConfig
    let maxBody: Int
    let ingestor: Ingestor
    let metrics: HeraldMetrics
    let logger: Logger

    func handle(_ request: Request, context: some RequestContext) async throws -> Response {
        guard request.hasBearerToken(config.token) else {
            metrics.eventReceived(source: config.name, outcome: .rejectedAuth)
            logger.notice("JSON event refused: missing or wrong bearer token")
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "missing or wrong bearer token")
        }
        let buffer = try await collectBody(request, maxBody: maxBody, source: config.name, metrics: metrics)
        let message: InboundMessage
        do {
            message = try Self.parse(Data(buffer.readableBytesView), source: config.name)
        } catch {
            metrics.eventReceived(source: config.name, outcome: .invalid)
            throw error
        }
        let result: Ingestor.Result
        do {
            result = try await ingestor.ingest(message)
            metrics.eventReceived(source: config.name, outcome: result.duplicate ? .duplicate : .accepted)
        } catch let error as IngestError {
            throw refusal(error, source: config.name, metrics: metrics)
        } catch {
            logger.error("could not store a JSON event", metadata: ["error": "\(error)"])
            throw HTTPError(.internalServerError, message: "could not store the event")
        }
        let body = try JSONSerialization.data(withJSONObject: ["id": result.eventID])
        return Response(status: .accepted, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// Reads the request, with a reason a person can act on for every way it can be wrong.
    /// How old, and how far ahead, a `received_at` may be.
    static let maximumAge: TimeInterval = 7 * 86400
    static let maximumLead: TimeInterval = 300

    static func parse(_ data: Data, source: String = "http", now: Date = Date()) throws -> InboundMessage {
        guard let object = try? JSONSerialization.jsonObject(with: data) else {
            throw HTTPError(.badRequest, message: "the body is not valid JSON")
        }
        guard let fields = object as? [String: Any] else {
            throw HTTPError(.badRequest, message: "the body must be a JSON object")
        }
        func string(_ key: String, required: Bool) throws -> String? {
            switch fields[key] {
            case nil, is NSNull:
                if required { throw HTTPError(.badRequest, message: "missing \"\(key)\"") }
                return nil
            case let value as String:
                return value
            default:
                throw HTTPError(.badRequest, message: "\"\(key)\" must be a string")
            }
        }
        let from = try string("from", required: true)!
        guard !from.trimmingCharacters(in: .whitespaces).isEmpty else { throw HTTPError(.badRequest, message: "\"from\" must not be empty") }
        let body = try string("body", required: true)!
        let to = try string("to", required: false)
        let id = try string("id", required: false)
        var receivedAt: Date?
        if let text = try string("received_at", required: false) {
            guard let date = RFC3339.date(from: text) else {
                throw HTTPError(.badRequest, message: "\"received_at\" must be an RFC 3339 time, like 2026-11-29T05:00:00Z")
            }
            // A time centuries away is a bug or an attack, and would overflow every duration
            // computed from it later.
            let age = now.timeIntervalSince(date)
            guard age <= maximumAge, age >= -maximumLead else {
                throw HTTPError(.badRequest, message: "\"received_at\" must be within the last 7 days and at most 5 minutes ahead of this server's clock")
            }
            receivedAt = date
        }
        var media: [String] = []
        if let value = fields["media"], !(value is NSNull) {
            guard let list = value as? [String] else { throw HTTPError(.badRequest, message: "\"media\" must be a list of URLs") }
            media = list
        }
        let known: Set = ["from", "to", "body", "id", "received_at", "media"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw HTTPError(.badRequest, message: "unknown field \"\(unknown)\"; expected from, to, body, id, received_at, media")
        }
        return InboundMessage(source: source, sourceID: id, from: from, to: to, body: body, media: media, receivedAt: receivedAt)
    }
}

/// The inbound decoders, for the fuzz targets (and anything else that must read untrusted bytes
/// the way the server does).
public enum InboundDecoding {
    /// The JSON source's body: an event, or an `HTTPError` with the reason.
    public static func json(_ data: Data) throws -> InboundMessage {
        try JSONInbound.parse(data)
    }
}
