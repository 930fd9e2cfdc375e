import AsyncHTTPClient
import Foundation
import HeraldCore
import NIOHTTP1

/// Matrix client-server API: `PUT /rooms/{room}/send/m.room.message/{txn}`, and
/// `PUT /rooms/{room}/redact/{event}/{txn}` for a retraction. Both transaction ids are Herald's
/// row ids: the homeserver answers a retransmission with the first answer.
public struct MatrixSink: Sink {
    public let name: String
    let settings: MatrixSinkSettings
    let timeout: Duration
    let transport: HTTPTransport

    public init(name: String, settings: MatrixSinkSettings, timeout: Duration, client: HTTPClient) {
        self.name = name
        self.settings = settings
        self.timeout = timeout
        self.transport = HTTPTransport(client: client)
    }

    public var retraction: RetractionPlan? { settings.retract ? RetractionPlan() : nil }

    var roomURL: String {
        settings.homeserver + "/_matrix/client/v3/rooms/" + URLPath.segment(settings.roomID)
    }

    public func sendURL(for request: DeliveryRequest) -> String {
        roomURL + "/send/m.room.message/" + URLPath.segment(request.delivery.id)
    }

    public func body(for request: DeliveryRequest) -> Data {
        let context = request.templateContext
        var object: [String: Any] = ["msgtype": "m.text", "body": settings.text.render(context)]
        if let html = settings.html {
            object["format"] = "org.matrix.custom.html"
            object["formatted_body"] = html.render(context)
        }
        return ChatJSON.encode(object)
    }

    private var headers: [(String, String)] {
        [("Authorization", "Bearer " + settings.accessToken.value), ("Content-Type", "application/json")]
    }

    public func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome {
        let report = await transport.send(url: sendURL(for: request), method: .PUT, headers: headers, body: body(for: request),
                                          timeout: timeout, keep: MatrixSinkSettings.keptHeaders)
        return Classifier.classify(report, rules: MatrixSinkSettings.rules)
    }

    public func retract(_ request: RetractionRequest) async -> DeliveryOutcome {
        let url = roomURL + "/redact/" + URLPath.segment(request.receipt) + "/" + URLPath.segment(request.retraction.id)
        let report = await transport.send(url: url, method: .PUT, headers: headers, body: ChatJSON.encode(["reason": "The code expired"]),
                                          timeout: timeout, keep: MatrixSinkSettings.keptHeaders)
        if case .http(404, _, let body, _) = report, ChatJSON.object(body)?["errcode"] as? String == "M_NOT_FOUND" {
            return .delivered(detail: "Matrix: the event is gone already")
        }
        if case .http(let status, _, _, _) = report, (200..<300).contains(status) {
            return .delivered(detail: "Matrix event redacted")
        }
        return Classifier.classify(report, rules: MatrixSinkSettings.rules)
    }
}
