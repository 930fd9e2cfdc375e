import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Synchronization

/// A stand-in for Slack, Twilio or any webhook receiver: a real HTTP server on a loopback port
/// that records every request and answers from a script (`429` with `Retry-After`, `500`, a hang,
/// then `200`). Start it with `FakeReceiver.start`, stop it with `stop()`.
public final class FakeReceiver: Sendable {
    public struct Reply: Sendable {
        public var status: Int
        public var body: String
        public var headers: [String: String]
        /// Wait this long before answering; `nil` with `hang` set waits until `stop()`.
        public var delay: Duration?
        public var hang: Bool

        public init(status: Int = 200, body: String = "ok", headers: [String: String] = [:], delay: Duration? = nil, hang: Bool = false) {
            self.status = status
            self.body = body
            self.headers = headers
            self.delay = delay
            self.hang = hang
        }

        public static let ok = Reply()
        public static func status(_ code: Int, _ body: String = "", headers: [String: String] = [:]) -> Reply {
            Reply(status: code, body: body, headers: headers)
        }
        public static let hang = Reply(hang: true)
    }

    public struct Recorded: Sendable {
        public var method: String
        public var path: String
        public var headers: [String: String]
        public var body: String
        public var receivedAt: Date

        public func header(_ name: String) -> String? {
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }

        /// The body as a JSON object.
        public var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
        }

        /// The body as form fields (repeated names kept).
        public var form: [(String, String)] {
            body.split(separator: "&").map { pair in
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map {
                    $0.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
                }
                return (parts[0], parts.count > 1 ? parts[1] : "")
            }
        }
    }

    private let script: Mutex<[Reply]>
    private let responder = Mutex<(@Sendable (Recorded) -> Reply?)?>(nil)
    private let fallback: Mutex<Reply>
    private let recorded = Mutex<[Recorded]>([])
    private let task: Mutex<Task<Void, any Error>?> = Mutex(nil)
    private let hangRelease = Mutex<[CheckedContinuation<Void, Never>]>([])
    private let released = Mutex(false)
    public let port: Int

    private init(script: [Reply], fallback: Reply, port: Int) {
        self.script = Mutex(script)
        self.fallback = Mutex(fallback)
        self.port = port
    }

    /// `http://127.0.0.1:PORT`, plus `path`.
    public func url(_ path: String = "/") -> String { "http://127.0.0.1:\(port)\(path)" }

    public var requests: [Recorded] { recorded.withLock { $0 } }

    /// Replies to use, in order, before falling back to the default one.
    public func enqueue(_ replies: Reply...) {
        script.withLock { $0.append(contentsOf: replies) }
    }

    /// Chooses a reply from the request (e.g. by recipient); nil falls through to the script.
    public func setResponder(_ responder: @escaping @Sendable (Recorded) -> Reply?) {
        self.responder.withLock { $0 = responder }
    }

    public func setFallback(_ reply: Reply) {
        fallback.withLock { $0 = reply }
    }

    /// Waits (real time) until at least `count` requests arrived.
    @discardableResult
    public func waitForRequests(_ count: Int, timeout: Duration = .seconds(10)) async -> [Recorded] {
        _ = await eventually(timeout: timeout) { requests.count >= count }
        return requests
    }

    /// - Parameter port: 0 for a free port; a fixed one to bring a "down" receiver back where it was.
    public static func start(script: [Reply] = [], fallback: Reply = .ok, port requestedPort: Int = 0) async throws -> FakeReceiver {
        let portBox = Mutex<Int?>(nil)
        let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
        let handlerBox = HandlerBox()
        let router = Router()
        router.on("**", method: .post) { request, _ in try await handlerBox.handle(request) }
        router.on("**", method: .put) { request, _ in try await handlerBox.handle(request) }
        router.on("**", method: .get) { request, _ in try await handlerBox.handle(request) }
        router.on("**", method: .delete) { request, _ in try await handlerBox.handle(request) }
        router.on("**", method: .patch) { request, _ in try await handlerBox.handle(request) }
        // `**` does not match the root (ntfy publishes JSON there).
        router.on("/", method: .post) { request, _ in try await handlerBox.handle(request) }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: requestedPort), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                portBox.withLock { $0 = port }
                portContinuation.yield(port)
                portContinuation.finish()
            },
            logger: Logger(label: "fake-receiver", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        let task = Task {
            do {
                try await app.run()
            } catch {
                portContinuation.finish()
                throw error
            }
        }
        var iterator = portStream.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await task.value  // rethrows why the server did not start (port in use)
            throw CancellationError()
        }
        let receiver = FakeReceiver(script: script, fallback: fallback, port: port)
        receiver.task.withLock { $0 = task }
        handlerBox.receiver.withLock { $0 = receiver }
        return receiver
    }

    /// Releases hanging replies and stops the server.
    public func stop() async {
        released.withLock { $0 = true }
        for waiter in hangRelease.withLock({ list in defer { list.removeAll() }; return list }) { waiter.resume() }
        let task = self.task.withLock { $0 }
        task?.cancel()
        _ = try? await task?.value
    }

    fileprivate func handle(_ request: Request) async throws -> Response {
        let buffer = try await request.body.collect(upTo: 10 * 1024 * 1024)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let path = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
        let record = Recorded(method: request.method.rawValue, path: path, headers: headers, body: String(buffer: buffer), receivedAt: Date())
        recorded.withLock { $0.append(record) }
        let chosen = responder.withLock { $0 }?(record)
        let reply = chosen ?? script.withLock { $0.isEmpty ? nil : $0.removeFirst() } ?? fallback.withLock { $0 }
        if reply.hang {
            await withCheckedContinuation { continuation in
                let done = released.withLock { $0 }
                if done { continuation.resume() } else { hangRelease.withLock { $0.append(continuation) } }
            }
        } else if let delay = reply.delay {
            try await Task.sleep(for: delay)
        }
        var fields = HTTPFields()
        for (name, value) in reply.headers {
            if let field = HTTPField.Name(name) { fields[field] = value }
        }
        return Response(status: .init(code: reply.status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: reply.body)))
    }
}

private final class HandlerBox: Sendable {
    let receiver = Mutex<FakeReceiver?>(nil)

    func handle(_ request: Request) async throws -> Response {
        guard let receiver = receiver.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
        return try await receiver.handle(request)
    }
}
