import ArgumentParser
import AsyncHTTPClient
import Foundation
import HeraldSinks
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// What the libraries cost per exchange with nothing of Herald's around them, each alone on
/// Herald's CPU: the floor under Herald's CPU per message, which is one webhook in and three
/// requests out.
///
/// - `server`: a bare Hummingbird (same version and trait as Herald's) answering a signed
///   Twilio form with an empty TwiML answer, driven by the closed loop's client;
/// - `ahc`: the sinks' own request path (`HTTPTransport` over `SinkHTTPClient.shared`) sending a
///   Slack-sized JSON body to the fake Slack receiver;
/// - `nio`: the same request on NIO's HTTP/1 coder alone, one connection per caller, no pool:
///   what a request costs below AsyncHTTPClient.
///
/// Each runs as a child process (`taskset -c <herald-cpu> chrt --batch 0`, as `herald serve`
/// runs by default, with one event loop); its CPU time (user + system) is divided by the
/// exchanges it made. The receivers and the load stay in this process, on the other CPU.
extension HeraldBench {
    func libraryFloorBenchmark() async throws {
        let receivers = try await Receivers.start(Behaviour())
        defer { Task { await receivers.stop() } }
        var figures: [String: [Double]] = [:]
        for _ in 0..<3 {
            for role in ["ahc", "nio"] {
                let child = try FloorChild(bench: self, role: role, target: receivers.url(.slack))
                let line = try child.finish()
                guard let (requests, cpu) = FloorChild.parse(line), requests > 0 else { throw ValidationError("\(role): unexpected answer \(line)") }
                figures[role, default: []].append(cpu * 1e6 / Double(requests))
            }
            figures["server", default: []].append(try await serverRound())
        }
        func summary(_ values: [Double]) -> String {
            let sorted = values.sorted()
            return String(format: "%.0f µs (%.0f–%.0f)", sorted[sorted.count / 2], sorted.first!, sorted.last!)
        }
        let median = { (values: [Double]) in values.sorted()[values.count / 2] }
        say("library floor, CPU per exchange on one core (medians of 3, with their range):")
        say("  bare Hummingbird answering a Twilio webhook:        " + summary(figures["server"]!))
        say("  the sinks' AsyncHTTPClient request (HTTPTransport):  " + summary(figures["ahc"]!))
        say("  the same request on NIO's HTTP/1 coder alone:        " + summary(figures["nio"]!))
        say(String(format: "  one webhook + three requests: %.0f µs with AsyncHTTPClient, %.0f µs below it (the target is 300 µs per message)",
                   median(figures["server"]!) + 3 * median(figures["ahc"]!), median(figures["server"]!) + 3 * median(figures["nio"]!)))
    }

    /// CPU µs per webhook of a bare Hummingbird child, over `throughputSeconds` after one
    /// second's warm-up, answering this process's closed loop of signed Twilio webhooks.
    private func serverRound() async throws -> Double {
        let server = try FloorChild(bench: self, role: "server", target: "")
        defer { server.stop() }
        guard let port = Int(try server.firstLine().dropFirst("port ".count)) else { throw ValidationError("server: no port") }
        let client = Client(port: port)
        defer { Task { try? await client.http.shutdown() } }
        try await client.waitUntilUp(path: "/healthz")
        let answered = Locked(0)
        let warm = ContinuousClock.now + .seconds(1), deadline = warm + .seconds(throughputSeconds)
        var cpuBefore = 0.0, counted = 0
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var id = worker
                    while ContinuousClock.now < deadline {
                        let counts = ContinuousClock.now >= warm
                        if (try? await client.send(id)) == 200, counts { answered.withLock { $0 += 1 } }
                        id += concurrency
                    }
                }
            }
            // The CPU count starts with the counting, after the warm-up.
            try? await Task.sleep(until: warm)
            cpuBefore = processCPUSeconds(server.pid)
            counted = answered.withLock { $0 }
            await group.waitForAll()
        }
        let cpu = processCPUSeconds(server.pid) - cpuBefore
        return cpu * 1e6 / Double(max(1, answered.withLock { $0 } - counted))
    }

    /// The child's side: `server` runs until it is stopped; `ahc` and `nio` run a closed loop of
    /// `concurrency` callers for `throughputSeconds` (after one second's warm-up) and print
    /// `requests N cpu S`.
    func runFloorRole(_ role: String, target: String) async throws {
        NIOSingletons.groupLoopCountSuggestion = 1
        switch role {
        case "server":
            let router = Router()
            router.get("/healthz") { _, _ in HTTPResponse.Status.ok }
            router.post("/twilio/sms") { request, _ -> Response in
                _ = try await request.body.collect(upTo: 65536)
                return Response(status: .ok, headers: [.contentType: "text/xml"], body: .init(byteBuffer: ByteBuffer(string: "<Response/>")))
            }
            let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
                                  onServerRunning: { FileHandle.standardOutput.write(Data("port \($0.localAddress?.port ?? 0)\n".utf8)) },
                                  logger: Logger(label: "floor", factory: { _ in SwiftLogNoOpLogHandler() }))
            try await app.run()
        case "ahc", "nio":
            let body = Data(#"{"text":"Your verification code is 482913. Don't share it.","username":"Herald","icon_emoji":":key:"}"#.utf8)
            let send: @Sendable (Int) async throws -> Bool
            if role == "ahc" {
                let transport = HTTPTransport(client: SinkHTTPClient.shared)
                send = { _ in
                    let report = await transport.send(url: target, method: .POST, headers: [("Content-Type", "application/json")], body: body, timeout: .seconds(10))
                    if case .http(status: 200, _, _, _) = report { return true }
                    return false
                }
            } else {
                guard let url = URL(string: target), let host = url.host, let port = url.port else { throw ValidationError("bad target \(target)") }
                var connections: [BareConnection] = []
                for _ in 0..<concurrency { connections.append(try await BareConnection.connect(host: host, port: port)) }
                let pool = connections
                var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: url.path)
                head.headers.add(name: "Host", value: "\(host):\(port)")
                head.headers.add(name: "Content-Type", value: "application/json")
                head.headers.add(name: "Content-Length", value: String(body.count))
                let fixedHead = head, buffer = ByteBuffer(bytes: body)
                send = { worker in try await pool[worker].send(head: fixedHead, body: buffer) == 200 }
            }
            let done = Locked(0)
            let warm = ContinuousClock.now + .seconds(1), deadline = warm + .seconds(throughputSeconds)
            var cpuBefore = 0.0, counted = 0
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<concurrency {
                    group.addTask {
                        while ContinuousClock.now < deadline {
                            guard try await send(worker) else { throw ValidationError("\(role): a request failed") }
                            done.withLock { $0 += 1 }
                        }
                    }
                }
                try await Task.sleep(until: warm)
                cpuBefore = Self.ownCPUSeconds()
                counted = done.withLock { $0 }
                try await group.waitForAll()
            }
            FileHandle.standardOutput.write(Data("requests \(done.withLock { $0 } - counted) cpu \(Self.ownCPUSeconds() - cpuBefore)\n".utf8))
        default:
            throw ValidationError("unknown floor role \(role)")
        }
    }
}

/// A child `herald-bench` in one floor role, pinned to Herald's CPU.
struct FloorChild {
    let process = Process()
    let output = Pipe()
    var pid: Int32 { process.processIdentifier }

    init(bench: HeraldBench, role: String, target: String) throws {
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let arguments = ["chrt", "--batch", "0", me, "--floor-role", role, "--floor-target", target,
                         "--concurrency", String(bench.concurrency), "--throughput-seconds", String(bench.throughputSeconds)]
        process.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
        process.arguments = ["-c", bench.heraldCPU.isEmpty ? "0" : bench.heraldCPU] + arguments
        process.standardOutput = output
        try process.run()
    }

    /// The first line the child prints (the server's port), while it goes on running.
    func firstLine() throws -> String {
        var text = Data()
        while !text.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw ValidationError("the floor child ended early") }
            text.append(chunk)
        }
        return String(decoding: text.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
    }

    /// Waits for a client child and returns what it printed.
    func finish() throws -> String {
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ValidationError("the floor child failed (\(process.terminationStatus))") }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }

    /// `requests N cpu S` → (N, S).
    static func parse(_ line: String) -> (Int, Double)? {
        let parts = line.split(separator: " ")
        guard parts.count == 4, parts[0] == "requests", parts[2] == "cpu", let requests = Int(parts[1]), let cpu = Double(parts[3]) else { return nil }
        return (requests, cpu)
    }
}

/// One HTTP/1.1 keep-alive connection carrying one request at a time through NIO's own HTTP/1
/// coder, with nothing above it. Its state is touched only on the channel's event loop.
final class BareConnection: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private var channel: (any Channel)?
    private var pending: EventLoopPromise<Int>?
    private var status = 0

    static func connect(host: String, port: Int) async throws -> BareConnection {
        let connection = BareConnection()
        connection.channel = try await ClientBootstrap(group: NIOSingletons.posixEventLoopGroup)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(connection)
                }
            }
            .connect(host: host, port: port).get()
        return connection
    }

    func send(head: HTTPRequestHead, body: ByteBuffer) async throws -> Int {
        guard let channel else { throw ValidationError("not connected") }
        let promise = channel.eventLoop.makePromise(of: Int.self)
        channel.eventLoop.execute {
            self.pending = promise
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }
        return try await promise.futureResult.get()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): status = Int(head.status.code)
        case .body: break
        case .end:
            let promise = pending
            pending = nil
            promise?.succeed(status)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        pending?.fail(error)
        pending = nil
        context.close(promise: nil)
    }
}
