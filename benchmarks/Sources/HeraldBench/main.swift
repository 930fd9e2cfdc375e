import ArgumentParser
import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldTesting
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Drives the real `herald` binary with signed Twilio webhooks and measures, with 3-way fan-out
/// to fake HTTP sinks on loopback and the SQLite outbox:
/// - end-to-end latency (webhook sent → last sink received) at steady rates,
/// - the highest sustained inbound rate (closed loop),
/// - Herald's peak resident memory,
/// and checks that every message reached every sink.
@main
struct HeraldBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "herald-bench")

    @Option(help: "The herald binary to measure.")
    var herald = ".build/release/herald"

    @Option(help: "Seconds per steady-rate phase.")
    var seconds = 10

    @Option(parsing: .upToNextOption, help: "Steady rates to measure, messages per second.")
    var rates: [Int] = [100, 1000]

    @Option(help: "Seconds of the closed-loop throughput phase.")
    var throughputSeconds = 10

    @Option(help: "Requests in flight during the throughput phase.")
    var concurrency = 64

    @Option(help: "Run herald with `taskset -c CPU` (empty: no pinning).")
    var heraldCPU = "0"

    @Option(help: "Pin this load generator with `taskset -c CPU` is up to the caller; this only labels the output.")
    var label = ""

    @Option(help: "Write herald's log here (default: discarded).")
    var heraldLog: String?

    @Option(help: "Only the code finder's micro-benchmark, over this table (Tests/HeraldCoreTests/Fixtures/otp-table.txt).")
    var otpTable: String?

    @Flag(help: "Only the micro-benchmark of a Twilio webhook's form parsing and signature check.")
    var webhookMicro = false

    func run() async throws {
        if let otpTable {
            try finderBenchmark(otpTable)
            return
        }
        if webhookMicro {
            webhookBenchmark()
            return
        }
        let sinks = try await SinkFarm.start(count: 3)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herald-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let port = try await freePort()
        try """
            server:
              listen: "127.0.0.1:\(port)"
              public_url: "http://bench.test"
              # The load generator is one client: the per-client limit (100/s by default) would
              # measure the limiter, not Herald.
              limits: { per_client: 1000000/s, per_client_burst: 1000000 }
            storage: sqlite:herald.db
            sources: { twilio: { auth_token: bench-token } }
            defaults: { expire_after: 10m, retry: { max_attempts: 10, initial_backoff: 100ms, max_backoff: 2s } }
            sinks:
            \(sinks.urls.enumerated().map { "  s\($0.offset): { type: http, url: \"\($0.element)\", concurrency: 64 }" }.joined(separator: "\n"))
            routes:
              - deliver: [\(sinks.urls.indices.map { "s\($0)" }.joined(separator: ", "))]
            """.write(to: folder.appendingPathComponent("channels.yaml"), atomically: true, encoding: .utf8)

        let process = Process()
        if heraldCPU.isEmpty {
            process.executableURL = URL(fileURLWithPath: herald)
            process.arguments = ["serve", "--log-level", heraldLog == nil ? "error" : "info"]
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
            process.arguments = ["-c", heraldCPU, URL(fileURLWithPath: herald).standardizedFileURL.path, "serve", "--log-level", heraldLog == nil ? "error" : "info"]
        }
        process.currentDirectoryURL = folder
        if let heraldLog {
            _ = FileManager.default.createFile(atPath: heraldLog, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: heraldLog)
        } else {
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        defer { process.terminate() }
        let client = Client(port: port)
        try await client.waitUntilUp()
        let idleRSS = residentKB(process.processIdentifier).current
        say("herald \(herald), 3 HTTP sinks, SQLite outbox (synchronous=FULL), pinned to CPU \(heraldCPU.isEmpty ? "none" : heraldCPU)\(label.isEmpty ? "" : ", \(label)")")
        say(String(format: "idle RSS: %.1f MB", Double(idleRSS) / 1024))

        let floor = try await healthFloor(client: client)
        say(String(format: "floor (GET /healthz at 100/s through the same client): p50 %.2f ms, p99 %.2f ms", floor.p50, floor.p99))
        var sent = 0
        for rate in rates {
            let result = try await steady(rate: rate, client: client, sinks: sinks, first: sent)
            sent += result.count
            let rss = residentKB(process.processIdentifier)
            say(String(format: "%5d msg/s for %ds: last sink received p50 %.2f ms, p99 %.2f ms, max %.2f ms, missing %d; webhook answered p50 %.2f ms, p99 %.2f ms; RSS %.1f MB (peak so far %.1f MB)",
                         rate, seconds, result.p50, result.p99, result.max, result.missing, result.answerP50, result.answerP99, Double(rss.current) / 1024, Double(rss.peak) / 1024))
        }
        let throughput = try await closedLoop(client: client, sinks: sinks, first: sent)
        sent += throughput.sent
        let rss = residentKB(process.processIdentifier)
        say(String(format: "closed loop, %d in flight, %ds: %.0f msg/s accepted, %.0f msg/s delivered to all 3 sinks; RSS %.1f MB, peak %.1f MB",
                     concurrency, throughputSeconds, throughput.accepted, throughput.delivered, Double(rss.current) / 1024, Double(rss.peak) / 1024))
        // Nothing lost: every accepted message reaches every sink.
        let complete = await waitUntil(timeout: 60) { sinks.completeCount() == sent }
        say("delivered to all 3 sinks: \(sinks.completeCount()) of \(sent) accepted\(complete ? "" : " (INCOMPLETE)")")
        await sinks.stop()
        try await client.http.shutdown()
    }

    struct Steady {
        var count: Int
        var p50: Double
        var p99: Double
        var max: Double
        var missing: Int
        /// Webhook sent → Herald's 200 (stored and answered).
        var answerP50: Double
        var answerP99: Double
    }

    /// What the load generator and loopback cost on their own: a request that does no work.
    func healthFloor(client: Client) async throws -> (p50: Double, p99: Double) {
        let times = Locked([Double]())
        let start = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<300 {
                try? await Task.sleep(until: start + .milliseconds(10 * i), clock: .continuous)
                group.addTask {
                    let sent = ContinuousClock.now
                    if (try? await client.health()) == true { times.withLock { $0.append(milliseconds(ContinuousClock.now - sent)) } }
                }
            }
        }
        let all = times.withLock { $0 }
        return (percentile(all, 0.5), percentile(all, 0.99))
    }

    /// Open loop: one webhook every 1/rate s, whatever the answers do.
    func steady(rate: Int, client: Client, sinks: SinkFarm, first: Int) async throws -> Steady {
        let count = rate * seconds
        let sentAt = Locked([Int: ContinuousClock.Instant]())
        let answerTimes = Locked([Double]())
        let start = ContinuousClock.now + .milliseconds(50)
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<count {
                let due = start + .nanoseconds(Int64(i) * 1_000_000_000 / Int64(rate))
                try? await Task.sleep(until: due, clock: .continuous)
                let id = first + i
                group.addTask {
                    let start = ContinuousClock.now
                    sentAt.withLock { $0[id] = start }
                    _ = try? await client.send(id)
                    let took = milliseconds(ContinuousClock.now - start)
                    answerTimes.withLock { $0.append(took) }
                }
            }
        }
        _ = await waitUntil(timeout: 30) { sinks.completeCount() >= first + count }
        let sent = sentAt.withLock { $0 }
        var latencies: [Double] = []
        var missing = 0
        for (id, at) in sent {
            guard let last = sinks.lastArrival(id) else { missing += 1; continue }
            latencies.append(milliseconds(last - at))
        }
        let answers = answerTimes.withLock { $0 }
        return Steady(count: count, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: latencies.max() ?? .nan,
                      missing: missing, answerP50: percentile(answers, 0.5), answerP99: percentile(answers, 0.99))
    }

    /// Closed loop: `concurrency` senders, each sending its next webhook as soon as the last is answered.
    func closedLoop(client: Client, sinks: SinkFarm, first: Int) async throws -> (sent: Int, accepted: Double, delivered: Double) {
        let next = Locked(first)
        let accepted = Locked(0)
        let deadline = ContinuousClock.now + .seconds(throughputSeconds)
        let started = ContinuousClock.now
        let deliveredBefore = sinks.completeCount()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    while ContinuousClock.now < deadline {
                        let id = next.withLock { value -> Int in defer { value += 1 }; return value }
                        if (try? await client.send(id)) == 200 { accepted.withLock { $0 += 1 } }
                    }
                }
            }
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let delivered = sinks.completeCount() - deliveredBefore
        return (next.withLock { $0 } - first, Double(accepted.withLock { $0 }) / seconds, Double(delivered) / seconds)
    }
}

/// Signed webhooks to Herald.
struct Client: Sendable {
    let port: Int
    let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 256
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    func send(_ id: Int) async throws -> Int {
        let parameters = [("MessageSid", "SM\(id)"), ("From", "+15551234567"), ("To", "+15005550006"), ("Body", "Your verification code is \(100_000 + id % 900_000)")]
        let signature = TwilioSignature.compute(url: "http://bench.test/twilio/sms", parameters: parameters.map { (name: $0.0, value: $0.1) }, authToken: "bench-token")
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/twilio/sms")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "X-Twilio-Signature", value: signature)
        let body = parameters.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&")
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await http.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 4096)
        return Int(response.status.code)
    }

    func health() async throws -> Bool {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/healthz")
        request.method = .GET
        let response = try await http.execute(request, timeout: .seconds(5))
        _ = try await response.body.collect(upTo: 1024)
        return response.status == .ok
    }

    func waitUntilUp() async throws {
        for _ in 0..<200 {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/healthz")
            request.method = .GET
            if let response = try? await http.execute(request, timeout: .seconds(1)), response.status == .ok { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ValidationError("herald did not start")
    }
}

/// When each message (by its `MessageSid` number) reached how many sinks, and the last arrival.
final class Arrivals: Sendable {
    private let storage = Mutex<[Int: (count: Int, last: ContinuousClock.Instant)]>([:])

    func record(_ id: Int) {
        let now = ContinuousClock.now
        storage.withLock { table in
            let previous = table[id]?.count ?? 0
            table[id] = (previous + 1, now)
        }
    }

    func last(_ id: Int, sinks: Int) -> ContinuousClock.Instant? {
        storage.withLock { $0[id].flatMap { $0.count >= sinks ? $0.last : nil } }
    }

    func complete(sinks: Int) -> Int {
        storage.withLock { $0.values.reduce(0) { $0 + ($1.count >= sinks ? 1 : 0) } }
    }
}

/// Fake HTTP sinks on loopback.
final class SinkFarm: Sendable {
    let urls: [String]
    let arrivals: Arrivals
    private let tasks: [Task<Void, any Error>]

    private init(urls: [String], arrivals: Arrivals, tasks: [Task<Void, any Error>]) {
        self.urls = urls
        self.arrivals = arrivals
        self.tasks = tasks
    }

    static func start(count: Int) async throws -> SinkFarm {
        let arrivals = Arrivals()
        var urls: [String] = []
        var tasks: [Task<Void, any Error>] = []
        for index in 0..<count {
            let router = Router()
            router.post("/sink") { request, _ -> HTTPResponse.Status in
                let buffer = try await request.body.collect(upTo: 65536)
                let text = String(buffer: buffer)
                if let range = text.range(of: #""source_id":"SM"#) {
                    let digits = text[range.upperBound...].prefix { $0.isNumber }
                    if let id = Int(digits) { arrivals.record(id) }
                }
                return .ok
            }
            let (ports, continuation) = AsyncStream<Int>.makeStream()
            let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
                                  onServerRunning: { continuation.yield($0.localAddress?.port ?? 0); continuation.finish() },
                                  logger: Logger(label: "sink\(index)", factory: { _ in SwiftLogNoOpLogHandler() }))
            tasks.append(Task { try await app.run() })
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw ValidationError("sink did not start") }
            urls.append("http://127.0.0.1:\(port)/sink")
        }
        return SinkFarm(urls: urls, arrivals: arrivals, tasks: tasks)
    }

    func lastArrival(_ id: Int) -> ContinuousClock.Instant? { arrivals.last(id, sinks: urls.count) }

    /// Messages that reached every sink.
    func completeCount() -> Int { arrivals.complete(sinks: urls.count) }

    func stop() async {
        for task in tasks { task.cancel() }
    }
}

/// Resident memory of a process in KiB: now and the peak (VmHWM).
func residentKB(_ pid: Int32) -> (current: Int, peak: Int) {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
    func field(_ name: String) -> Int {
        status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
            .flatMap { Int($0.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") } ?? 0
    }
    return (field("VmRSS"), field("VmHWM"))
}

func waitUntil(timeout seconds: Double, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

/// A loopback port nobody listens on right now.
func freePort() async throws -> Int {
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    let app = Application(router: Router(), configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
                          onServerRunning: { continuation.yield($0.localAddress?.port ?? 0); continuation.finish() },
                          logger: Logger(label: "port", factory: { _ in SwiftLogNoOpLogHandler() }))
    let task = Task { try await app.run() }
    var iterator = ports.makeAsyncIterator()
    let port = await iterator.next() ?? 0
    task.cancel()
    _ = try? await task.value
    return port
}

/// A value behind a lock that closures can share.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) {
        mutex = Mutex(value)
    }

    func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T {
        mutex.withLock { body(&$0) }
    }
}

/// Unbuffered, so progress shows even when the output is a pipe.
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

extension HeraldBench {
    /// The code finder alone: every message of its table, many times over, in five rounds; the
    /// cost per message is the median round's time divided by the messages it handled.
    func finderBenchmark(_ path: String) throws {
        let rows = OTPTableRow.parse(try String(contentsOfFile: path, encoding: .utf8))
        let wrong = rows.filter { OTPExtractor.extract(from: $0.message) != $0.otp }
        guard wrong.isEmpty, !rows.isEmpty else {
            say("the finder disagrees with its table on \(wrong.count) of \(rows.count) rows; run make test")
            throw ExitCode(1)
        }
        let passes = 400
        var found = 0
        for row in rows { if OTPExtractor.extract(from: row.message) != nil { found += 1 } }
        var perMessage: [Double] = []
        for _ in 0..<5 {
            let start = ContinuousClock.now
            for _ in 0..<passes {
                for row in rows where OTPExtractor.extract(from: row.message) != nil { found &+= 1 }
            }
            let elapsed = ContinuousClock.now - start
            perMessage.append(Double(elapsed.components.attoseconds) / 1e9 / Double(passes * rows.count) + Double(elapsed.components.seconds) * 1e9 / Double(passes * rows.count))
        }
        perMessage.sort()
        let bytes = rows.reduce(0) { $0 + $1.message.utf8.count } / rows.count
        say(String(format: "code finder: %d messages (%d bytes on average) × %d passes × 5 rounds: median %.2f µs a message (rounds %.2f–%.2f µs)",
                   rows.count, bytes, passes, perMessage[2] / 1000, perMessage[0] / 1000, perMessage[4] / 1000))
        if found == 0 { say("") }
    }
}

extension HeraldBench {
    /// What the Twilio handler does before routing: decode a typical inbound SMS form and check its
    /// signature (which tries the URL as given and with the default port).
    func webhookBenchmark() {
        let url = "https://herald.example.com/twilio/sms"
        let fields: [(name: String, value: String)] = [
            ("ToCountry", "US"), ("ToState", "CA"), ("SmsMessageSid", "SM0123456789abcdef0123456789abcdef"), ("NumMedia", "0"),
            ("ToCity", "SAN FRANCISCO"), ("FromZip", "94105"), ("SmsSid", "SM0123456789abcdef0123456789abcdef"), ("FromState", "CA"),
            ("SmsStatus", "received"), ("FromCity", "SAN FRANCISCO"), ("Body", "Your Amazon verification code is: 482913. Don't share it."),
            ("FromCountry", "US"), ("To", "+15005550006"), ("ToZip", "94105"), ("NumSegments", "1"),
            ("MessageSid", "SM0123456789abcdef0123456789abcdef"), ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("From", "+15551234567"), ("ApiVersion", "2010-04-01"),
        ]
        let body = fields.map { "\($0.name)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&")
        let signature = TwilioSignature.compute(url: url, parameters: fields, authToken: "bench-token")
        let iterations = 20_000
        var rounds: [Double] = []
        var valid = 0
        for _ in 0..<5 {
            let start = ContinuousClock.now
            for _ in 0..<iterations {
                let parameters = TwilioSignature.parseForm(body)
                if TwilioSignature.isValid(signature: signature, url: url, parameters: parameters, authToken: "bench-token") { valid += 1 }
            }
            let elapsed = ContinuousClock.now - start
            rounds.append((Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12) / Double(iterations))
        }
        rounds.sort()
        say(String(format: "webhook form + signature (%d fields, %d bytes): median %.2f µs (rounds %.2f–%.2f µs)%@",
                   fields.count, body.utf8.count, rounds[2], rounds[0], rounds[4], valid == 5 * iterations ? "" : " — SIGNATURE FAILED"))
    }
}
