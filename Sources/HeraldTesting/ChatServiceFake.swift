import Foundation
import Synchronization

/// Stand-ins for the chat services' APIs (Telegram, Discord, ntfy, Pushover, Matrix, Teams) on a
/// `FakeReceiver`: each request's shape is checked as that service would check it (a request that
/// service would refuse is answered 400 and recorded in `problems`), and the replies are the
/// service's own: success with a message id, its 429, a permanent error, a 5xx.
public final class ChatServiceFake: Sendable {
    public enum Service: String, Sendable, CaseIterable {
        case telegram, discord, ntfy, pushover, matrix, teams
    }

    public enum Play: String, Sendable, CaseIterable {
        case success, rateLimited, permanent, serverError
    }

    public let service: Service
    public let receiver: FakeReceiver
    private let state = Mutex<(script: [Play], problems: [String], count: Int)>(([], [], 0))

    private init(service: Service, receiver: FakeReceiver) {
        self.service = service
        self.receiver = receiver
    }

    public static func start(_ service: Service, script: [Play] = []) async throws -> ChatServiceFake {
        let receiver = try await FakeReceiver.start()
        let fake = ChatServiceFake(service: service, receiver: receiver)
        fake.enqueue(script)
        receiver.setResponder { [fake] request in fake.answer(request) }
        return fake
    }

    public func stop() async { await receiver.stop() }

    public func enqueue(_ plays: [Play]) { state.withLock { $0.script.append(contentsOf: plays) } }

    /// Requests the service would have refused, and why.
    public var problems: [String] { state.withLock { $0.problems } }
    public var requests: [FakeReceiver.Recorded] { receiver.requests }

    /// The base URL a sink's `base_url` / `homeserver` / webhook points at.
    public func url(_ path: String = "") -> String { receiver.url(path) }

    private func answer(_ request: FakeReceiver.Recorded) -> FakeReceiver.Reply {
        let problems = Self.check(service, request)
        let (play, n) = state.withLock { state -> (Play, Int) in
            state.count += 1
            state.problems += problems
            return (state.script.isEmpty ? .success : state.script.removeFirst(), state.count)
        }
        if !problems.isEmpty { return .status(400, #"{"error":"bad request shape"}"#) }
        return Self.reply(service, play, request: request, n: n)
    }

    // MARK: Shapes

    static func check(_ service: Service, _ r: FakeReceiver.Recorded) -> [String] {
        var problems: [String] = []
        func need(_ ok: Bool, _ what: String) { if !ok { problems.append("\(service): \(what)") } }
        let json = r.json
        switch service {
        case .telegram:
            need(r.method == "POST", "method \(r.method)")
            need(r.header("Content-Type")?.hasPrefix("application/json") == true, "content type")
            if r.path.hasSuffix("/sendMessage") {
                need(r.path.hasPrefix("/bot") && r.path.contains(":"), "path \(r.path)")
                need(json?["chat_id"] != nil, "chat_id")
                need((json?["text"] as? String).map { !$0.isEmpty && $0.count <= 4096 } == true, "text")
                need(json?["parse_mode"] as? String == "HTML", "parse_mode")
            } else if r.path.hasSuffix("/deleteMessage") {
                need(json?["chat_id"] != nil && json?["message_id"] is NSNumber, "chat_id and message_id")
            } else {
                need(false, "unknown method \(r.path)")
            }
        case .discord:
            if r.method == "POST" {
                need(r.path.hasSuffix("?wait=true"), "wait=true")
                need((json?["content"] as? String).map { $0.count <= 2000 } == true, "content")
                need(((json?["allowed_mentions"] as? [String: Any])?["parse"] as? [Any])?.isEmpty == true, "allowed_mentions.parse []")
            } else {
                need(r.method == "DELETE" && r.path.range(of: #"/messages/[0-9]+$"#, options: .regularExpression) != nil, "delete path \(r.method) \(r.path)")
            }
        case .ntfy:
            need(r.method == "POST" && r.path == "/", "publish to the root: \(r.method) \(r.path)")
            need(json?["topic"] is String && json?["message"] is String, "topic and message")
            if let priority = json?["priority"] as? Int { need((1...5).contains(priority), "priority") }
        case .pushover:
            let form = Dictionary(r.form, uniquingKeysWith: { a, _ in a })
            need(r.method == "POST" && r.path == "/1/messages.json", "path \(r.path)")
            need(form["token"]?.count == 30 && form["user"]?.count == 30, "token and user")
            need(form["message"].map { !$0.isEmpty && $0.count <= 1024 } == true, "message")
            need(form["ttl"].flatMap(Int.init).map { $0 > 0 } == true, "ttl")
        case .matrix:
            need(r.method == "PUT", "method \(r.method)")
            need(r.header("Authorization")?.hasPrefix("Bearer ") == true, "bearer token")
            if r.path.contains("/send/m.room.message/") {
                need(r.path.hasPrefix("/_matrix/client/v3/rooms/%21"), "room id encoded: \(r.path)")
                need(json?["msgtype"] as? String == "m.text" && json?["body"] is String, "m.text body")
            } else {
                need(r.path.contains("/redact/"), "path \(r.path)")
            }
        case .teams:
            need(r.method == "POST", "method")
            let attachment = (json?["attachments"] as? [[String: Any]])?.first
            need(json?["type"] as? String == "message", "type message")
            need(attachment?["contentType"] as? String == "application/vnd.microsoft.card.adaptive", "adaptive card")
            need((attachment?["content"] as? [String: Any])?["type"] as? String == "AdaptiveCard", "AdaptiveCard")
        }
        return problems
    }

    // MARK: Replies

    static func reply(_ service: Service, _ play: Play, request r: FakeReceiver.Recorded, n: Int) -> FakeReceiver.Reply {
        switch (service, play) {
        case (.telegram, .success):
            if r.path.hasSuffix("/deleteMessage") { return .status(200, #"{"ok":true,"result":true}"#) }
            let chat = r.json?["chat_id"].map { "\($0)" } ?? "0"
            let chatJSON = Int64(chat) != nil ? chat : "-1001"
            return .status(200, #"{"ok":true,"result":{"message_id":\#(100 + n),"date":1700000000,"chat":{"id":\#(chatJSON),"type":"private"},"text":"…"}}"#)
        case (.telegram, .rateLimited):
            return .status(429, #"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#, headers: ["Retry-After": "3"])
        case (.telegram, .permanent):
            return .status(403, #"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#)
        case (.telegram, .serverError):
            return .status(500, #"{"ok":false,"error_code":500,"description":"Internal Server Error"}"#)

        case (.discord, .success):
            if r.method == "DELETE" { return .status(204, "") }
            return .status(200, #"{"id":"12000000000000\#(1000 + n)","type":0,"content":"…","channel_id":"11"}"#,
                           headers: ["X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4", "X-RateLimit-Reset-After": "0.4"])
        case (.discord, .rateLimited):
            return .status(429, #"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#,
                           headers: ["Retry-After": "2", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "1.5", "X-RateLimit-Scope": "shared"])
        case (.discord, .permanent):
            return .status(404, #"{"message":"Unknown Webhook","code":10015}"#)
        case (.discord, .serverError):
            return .status(502, #"{"message":"502 Bad Gateway","code":0}"#)

        case (.ntfy, .success):
            return .status(200, #"{"id":"nt\#(n)abcDEF","time":1700000000,"expires":1700043200,"event":"message","topic":"codes"}"#)
        case (.ntfy, .rateLimited):
            return .status(429, #"{"code":42901,"http":429,"error":"limit reached: too many requests","link":"https://ntfy.sh/docs/publish/#limitations"}"#)
        case (.ntfy, .permanent):
            return .status(401, #"{"code":40101,"http":401,"error":"unauthorized"}"#)
        case (.ntfy, .serverError):
            return .status(500, #"{"code":50001,"http":500,"error":"internal server error"}"#)

        case (.pushover, .success):
            return .status(200, #"{"status":1,"request":"5042853c-402d-4a18-abcb-168734a801d\#(n % 10)"}"#,
                           headers: ["X-Limit-App-Limit": "10000", "X-Limit-App-Remaining": "9000", "X-Limit-App-Reset": "1893456000"])
        case (.pushover, .rateLimited):
            let reset = Int(Date().timeIntervalSince1970) + 2
            return .status(429, #"{"status":0,"errors":["application has exceeded its monthly message limit"],"request":"x"}"#,
                           headers: ["X-Limit-App-Remaining": "0", "X-Limit-App-Reset": "\(reset)"])
        case (.pushover, .permanent):
            return .status(400, #"{"user":"invalid","errors":["user identifier is not a valid user, group, or subscribed user key"],"status":0,"request":"y"}"#)
        case (.pushover, .serverError):
            return .status(500, "<html>error</html>")

        case (.matrix, .success):
            return .status(200, #"{"event_id":"$ev\#(n)xyz:example.org"}"#)
        case (.matrix, .rateLimited):
            return .status(429, #"{"errcode":"M_LIMIT_EXCEEDED","error":"Too Many Requests","retry_after_ms":1500}"#)
        case (.matrix, .permanent):
            return .status(403, #"{"errcode":"M_FORBIDDEN","error":"User @herald:example.org not in room"}"#)
        case (.matrix, .serverError):
            return .status(500, #"{"errcode":"M_UNKNOWN","error":"Internal server error"}"#)

        case (.teams, .success):
            return .status(202, "")
        case (.teams, .rateLimited):
            return .status(429, #"{"error":{"code":"WorkflowTriggeredTooManyTimes","message":"Rate limit is exceeded."}}"#, headers: ["Retry-After": "2"])
        case (.teams, .permanent):
            return .status(400, #"{"error":{"code":"TriggerInputSchemaMismatch","message":"The input body for trigger 'manual' of type 'Request' did not match its schema definition."}}"#)
        case (.teams, .serverError):
            return .status(500, #"{"error":{"code":"InternalServerError","message":"Internal error"}}"#)
        }
    }
}
