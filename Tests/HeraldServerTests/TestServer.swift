import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldSinks
import HeraldServer
import HeraldTesting
import NIOHTTP1
import ServiceLifecycle
import Logging
import NIOCore
import Synchronization

/// Herald built with `buildApplication` and served on a free loopback port for one test.
struct TestServer {
    static let publicURL = "http://herald.test"
    static let twilioToken = "test-auth-token"
    static let inboundToken = "inbound-token"

    let runtime: HeraldRuntime
    let port: Int
    private let task: Task<Void, any Error>

    var store: any OutboxStore { runtime.store }

    /// `yaml` is a full configuration; `listen` is forced to a free loopback port.
    static func start(_ yaml: String, env: [String: String] = [:], store: (any OutboxStore)? = nil, logger: Logger? = nil,
                      configPath: String? = nil) async throws -> TestServer {
        if let configPath { try yaml.write(toFile: configPath, atomically: true, encoding: .utf8) }
        let asLoaded = try ConfigLoader.parse(yaml, file: configPath ?? "channels.yaml", environment: env)
        var config = asLoaded
        config.server.port = 0
        // Tests keep everything in memory unless they name a store.
        if !yaml.contains("storage:") { config.storage = .memory }
        let logger = logger ?? Logger(label: "herald-test", factory: { _ in SwiftLogNoOpLogHandler() })
        let runtime = try HeraldRuntime(config: config, store: store, logger: logger, configPath: configPath, asLoaded: asLoaded, environment: { env })
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = buildApplication(runtime: runtime) { _, port in
            continuation.yield(port)
            continuation.finish()
        }
        let task = Task { try await app.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestFailure("server did not start") }
        return TestServer(runtime: runtime, port: port, task: task)
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
    }

    struct Answer {
        var status: Int
        var body: String
        var contentType: String?
        var retryAfter: String? = nil
    }

    func request(_ method: HTTPMethod, _ pathAndQuery: String, headers: [(String, String)] = [], body: String? = nil) async throws -> Answer {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(pathAndQuery)")
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let buffer = try await response.body.collect(upTo: 1 << 20)
        return Answer(status: Int(response.status.code), body: String(buffer: buffer), contentType: response.headers.first(name: "Content-Type"),
                      retryAfter: response.headers.first(name: "Retry-After"))
    }

    /// Posts a Twilio webhook signed for `public_url` + path (or with `signature` as given).
    func postTwilio(_ parameters: [(String, String)], path: String = "/twilio/sms", signature: String?? = .none, token: String = twilioToken) async throws -> Answer {
        let computed = TwilioSignature.compute(url: Self.publicURL + path, parameters: parameters.map { (name: $0.0, value: $0.1) }, authToken: token)
        var headers = [("Content-Type", "application/x-www-form-urlencoded")]
        switch signature {
        case .none: headers.append(("X-Twilio-Signature", computed))
        case .some(.some(let given)): headers.append(("X-Twilio-Signature", given))
        case .some(.none): break
        }
        return try await request(.POST, path, headers: headers, body: formEncode(parameters))
    }

    func allDeliveries() async throws -> [Delivery] {
        try await store.deliveries(DeliveryFilter(limit: 10_000))
    }
}

func formEncode(_ parameters: [(String, String)]) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return parameters.map { name, value in
        name.addingPercentEncoding(withAllowedCharacters: allowed)! + "=" + value.addingPercentEncoding(withAllowedCharacters: allowed)!
    }.joined(separator: "&")
}

/// A well-formed Twilio message id (`SM` + 32 hex digits) for a readable test name: the same
/// name always gives the same id; a well-formed id is kept as it is.
func twilioSID(_ name: String) -> String {
    if TwilioSignature.isMessageSID(name) { return name }
    var a: UInt64 = 0xcbf2_9ce4_8422_2325, b: UInt64 = 0x8422_2325_cbf2_9ce4
    for byte in name.utf8 {
        a = (a ^ UInt64(byte)) &* 0x100_0000_01b3
        b = (b ^ UInt64(byte)) &* 0x100_0000_01b3 &+ 1
    }
    return "SM" + String(format: "%016llx%016llx", a, b)
}

func sms(_ body: String = "Your AWS verification code is 482913", sid: String = "SM" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()) -> [(String, String)] {
    [("MessageSid", twilioSID(sid)), ("AccountSid", "AC123"), ("From", "+12344567890"), ("To", "+15005550006"),
     ("Body", body), ("NumMedia", "0"), ("ApiVersion", "2010-04-01"), ("SmsStatus", "received")]
}

private let handedOutPorts = Mutex<Set<Int>>([])

/// A loopback port with nothing listening, taken from below the kernel's ephemeral range
/// (32768 and up) so that no receiver started on port 0 by another test can land on it, and never
/// handed out twice in one run.
func freeLoopbackPort() async throws -> Int {
    while true {
        let candidate = Int.random(in: 20_000..<30_000)
        guard handedOutPorts.withLock({ $0.insert(candidate).inserted }) else { continue }
        // Binding it proves nobody else is listening there.
        guard let receiver = try? await FakeReceiver.start(port: candidate) else { continue }
        await receiver.stop()
        return candidate
    }
}

/// Posts a Twilio webhook, signed for `publicURL` + `/twilio/sms`, to a server on `port`
/// (the real binary in end-to-end tests); returns the status.
func postSignedWebhook(port: Int, publicURL: String, token: String, _ parameters: [(String, String)]) async throws -> Int {
    let signature = TwilioSignature.compute(url: publicURL + "/twilio/sms", parameters: parameters.map { (name: $0.0, value: $0.1) }, authToken: token)
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/twilio/sms")
    request.method = .POST
    request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
    request.headers.add(name: "X-Twilio-Signature", value: signature)
    request.body = .bytes(ByteBuffer(string: formEncode(parameters)))
    return Int(try await HTTPClient.shared.execute(request, timeout: .seconds(10)).status.code)
}
