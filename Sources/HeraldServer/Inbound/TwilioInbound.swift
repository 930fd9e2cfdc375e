import Foundation
import HTTPTypes
import HeraldCore
import Hummingbird
import Logging
import NIOCore

/// `POST`/`GET sources.twilio.path`: Twilio's inbound SMS webhook.
///
/// The signature is checked before anything is stored: missing → 400, wrong → 403. The answer
/// (`200` TwiML) goes out only after the event and its deliveries are in the store; a repeated
/// `MessageSid` gets the same answer and creates nothing.
struct TwilioInbound: Sendable {
    static let twiml = #"<?xml version="1.0" encoding="UTF-8"?><Response/>"#

    let config: TwilioSourceConfig
    let publicURL: String?
    let trustForwarded: Bool
    let proxies: TrustedProxies
    let maxBody: Int
    let ingestor: Ingestor
    let metrics: HeraldMetrics
    let logger: Logger

    func handle(_ request: Request, context: some RequestContext & RemoteAddressRequestContext) async throws -> Response {
        if config.usesDevelopmentToken, request.headers[.xForwardedFor] != nil || request.headers[.forwarded] != nil || request.headers[.xForwardedHost] != nil {
            // A proxy in front means someone else can reach this Herald: the published
            // development token would let anyone forge messages.
            metrics.eventReceived(source: config.name, outcome: .rejectedSignature)
            logger.warning("Twilio webhook refused: it came through a proxy, and the development token is only for a Herald nobody else can reach; set TWILIO_AUTH_TOKEN")
            throw HTTPError(.forbidden, message: "the development token is not accepted through a proxy; set sources.twilio.auth_token")
        }
        let parameters: [(name: String, value: String)]
        if request.method == .get {
            parameters = TwilioSignature.parseForm(request.uri.query ?? "")
        } else {
            let buffer = try await collectBody(request, maxBody: maxBody, source: config.name, metrics: metrics)
            parameters = buffer.withUnsafeReadableBytes { TwilioSignature.parseForm(bytes: $0) }
        }
        if config.verifySignature {
            guard let signature = request.headers[.twilioSignature], !signature.isEmpty else {
                metrics.eventReceived(source: config.name, outcome: .rejectedSignature)
                logger.notice("Twilio webhook refused: no X-Twilio-Signature header")
                throw HTTPError(.badRequest, message: "missing X-Twilio-Signature header")
            }
            // For a GET the parameters are in the URL, which is signed as a whole.
            let signed = request.method == .get ? [] : parameters
            let url = signedURL(request, peer: context.remoteAddress?.ipAddress)
            guard TwilioSignature.isValid(signature: signature, url: url, parameters: signed, authToken: config.authToken.value) else {
                metrics.eventReceived(source: config.name, outcome: .rejectedSignature)
                logger.notice("Twilio webhook refused: signature does not match", metadata: ["http.path": "\(request.uri.path)"])
                throw HTTPError(.forbidden, message: "X-Twilio-Signature does not match")
            }
        }
        let values = Dictionary(parameters, uniquingKeysWith: { first, _ in first })
        // Twilio signs names and values run together, so `MessageSidS=Mx…` signs what
        // `MessageSid=SMx…` does: a renamed copy would verify. Every message Twilio sends has a
        // well-formed id, and it is the key a replay is caught by.
        guard let sid = values["MessageSid"], TwilioSignature.isMessageSID(sid) else {
            metrics.eventReceived(source: config.name, outcome: .invalid)
            logger.notice("Twilio webhook refused: no well-formed MessageSid")
            throw HTTPError(.badRequest, message: "missing or malformed MessageSid (SM or MM and 32 hex digits)")
        }
        guard let from = values["From"], !from.isEmpty else {
            metrics.eventReceived(source: config.name, outcome: .invalid)
            throw HTTPError(.badRequest, message: "missing From parameter")
        }
        // `MediaUrl0`, `MediaUrl1`, … in their number's order (one pass, no lookups by made-up names).
        let media = parameters.compactMap { pair -> (Int, String)? in
            guard pair.name.hasPrefix("MediaUrl"), let index = Int(pair.name.dropFirst(8)), (0..<100).contains(index) else { return nil }
            return (index, pair.value)
        }.sorted { $0.0 < $1.0 }.map(\.1)
        let message = InboundMessage(
            source: config.name, sourceID: sid,
            from: from, to: values["To"], body: values["Body"] ?? "", media: media
        )
        do {
            let result = try await ingestor.ingest(message)
            metrics.eventReceived(source: config.name, outcome: result.duplicate ? .duplicate : .accepted)
        } catch let error as IngestError {
            throw refusal(error, source: config.name, metrics: metrics)
        } catch {
            logger.error("could not store a Twilio message; answering 500 so Twilio reports it", metadata: ["error": "\(error)"])
            throw HTTPError(.internalServerError, message: "could not store the message")
        }
        return Response(
            status: .ok, headers: [.contentType: "text/xml"],
            body: .init(byteBuffer: ByteBuffer(string: Self.twiml))
        )
    }

    /// The URL Twilio called: `server.public_url` + path and query as received; without a public
    /// URL, the `X-Forwarded-Proto`/`-Host` a trusted proxy set, else `http://` + the Host header.
    func signedURL(_ request: Request, peer: @autoclosure () -> String?) -> String {
        let pathAndQuery = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
        if let publicURL { return publicURL + pathAndQuery }
        if trustForwarded, let peer = peer(), proxies.contains(peer), let host = request.headers[.xForwardedHost] {
            let scheme = request.headers[.xForwardedProto]?.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? "https"
            return scheme + "://" + host + pathAndQuery
        }
        let host = request.head.authority ?? "localhost"
        return "http://" + host + pathAndQuery
    }
}

/// The answer to a message the ingest path refused: 503 with `Retry-After`, counted as
/// `refused_overloaded`. (Twilio does not retry it: its fallback URL, if set, gets the message.)
func refusal(_ error: IngestError, source: String, metrics: HeraldMetrics) -> HTTPError {
    switch error {
    case .overloaded(let retryAfter):
        metrics.eventReceived(source: source, outcome: .refusedOverloaded)
        return HTTPError(.serviceUnavailable, headers: [.retryAfter: "\(Int(retryAfter.seconds))"],
                         message: "overloaded: the deliveries already queued could not start before this message's code expires")
    }
}

/// Reads a request body up to `maxBody`; a larger one is counted as `too_large` and refused (413).
func collectBody(_ request: Request, maxBody: Int, source: String, metrics: HeraldMetrics) async throws -> ByteBuffer {
    do {
        return try await request.body.collect(upTo: maxBody)
    } catch is NIOTooManyBytesError {
        metrics.eventReceived(source: source, outcome: .tooLarge)
        throw HTTPError(.contentTooLarge, message: "the body is larger than \(maxBody / 1024) KiB")
    }
}

extension HTTPField.Name {
    static let twilioSignature = Self("X-Twilio-Signature")!
}
