import ArgumentParser
import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldServer
import HeraldSinks
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import UnixSignals

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension HeraldLogHandler.Format: ExpressibleByArgument {}

@main
struct Herald: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herald",
        abstract: "Fan out inbound text messages (MFA codes) to Slack, phones, email and HTTP.",
        subcommands: [Serve.self, Check.self, Route.self, Send.self, Sign.self, Deliveries.self, Retry.self]
    )
}

/// `--config FILE`, defaulting to `$HERALD_CONFIG`, else `./channels.yaml`.
struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "The configuration file (default: $HERALD_CONFIG, else ./channels.yaml).")
    var config: String?

    var path: String { config ?? ConfigLoader.defaultPath() }

    /// Loads the configuration, or prints every problem as `file:line:column: message` and exits 1.
    func load() throws -> HeraldConfig {
        do {
            return try ConfigLoader.load(path: path)
        } catch let errors as ConfigErrors {
            printError(errors.description)
            throw ExitCode(1)
        }
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the service.")

    @OptionGroup var options: ConfigOption

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "Log line format: logfmt or json.")
    var logFormat: HeraldLogHandler.Format = .logfmt

    func run() async throws {
        let level = logLevel
        let format = logFormat
        LoggingSystem.bootstrap { label in
            HeraldLogHandler(label: label, format: format, level: level)
        }
        let logger = Logger(label: "herald")
        // The process owner's choices, made once before any thread starts: a peer closing a
        // socket must never kill the process, and libcurl is set up before the first transfer.
        signal(SIGPIPE, SIG_IGN)
        CurlRuntime.initialize()
        // NIO sizes its event loops by the machine's cores (or a cgroup's CPU quota), not by the
        // CPUs this process may run on (taskset, a cpuset): more loops than usable CPUs only
        // hand work between threads that share a core.
        if let usable = CPUAffinity.usableCount() { NIOSingletons.groupLoopCountSuggestion = usable }
        let config = try options.load()
        // Before the event loops, the task pool's other threads and the database queue start:
        // they inherit it.
        let unscheduled = ThreadScheduling.apply(config.server.cpuScheduling)
        if !unscheduled.isEmpty {
            logger.notice("server.cpu_scheduling could not be applied to every thread; those keep the system's default", metadata: ["threads": "\(unscheduled.count)"])
        }
        // Read before the first await: the parsed options are not touched across a suspension
        // (the debug build crashed releasing them there).
        let configPath = options.path
        for warning in config.warnings {
            logger.warning("\(warning)")
        }
        if config.sources.twilio?.usesDevelopmentToken == true {
            printError("""
                !!! DEVELOPMENT MODE: TWILIO_AUTH_TOKEN is not set. Twilio signatures are checked against
                !!! the development token '\(TwilioSourceConfig.developmentToken)'. Set TWILIO_AUTH_TOKEN for real traffic.
                """)
        }
        let runtime: HeraldRuntime
        do {
            let store = try await HeraldRuntime.openStore(config, serving: true, logger: logger)
            runtime = try HeraldRuntime(config: config, store: store, logger: logger, configPath: configPath)
        } catch {
            printError("herald: \(error)")
            throw ExitCode(1)
        }
        // The shutdown grace bounds the whole shutdown: the server's last answers and the
        // deliveries under way. Past it the group cancels what is left; unfinished deliveries stay
        // in the outbox and the next start resumes them.
        var group = ServiceGroupConfiguration(services: [buildApplication(runtime: runtime)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = config.server.shutdownGrace
        try await ServiceGroup(configuration: group).run()
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate the configuration and summarize it.")

    @OptionGroup var options: ConfigOption

    func run() throws {
        let config = try options.load()
        for warning in config.warnings { print("warning: \(warning)") }
        for warning in HeraldRuntime.retractionWarnings(config, HeraldRuntime.sinkInfos(config, SinkFactory.makeSinks(config))) {
            print("warning: \(warning)")
        }
        print("storage: \(config.storage.shown)")
        if case .postgres = config.storage { print("node id: \(config.server.effectiveNodeID)") }
        print("sinks:")
        for sink in config.sinks {
            let state = sink.disabledReason.map { "disabled: \($0)" } ?? "enabled"
            print("  \(sink.name) (\(sink.type), \(state))")
        }
        print("routes:")
        for route in config.routes {
            print("  \(route.name) -> \(route.deliver.joined(separator: ", "))\(route.continues ? " (continue)" : "")")
        }
        print("\(options.path): OK")
    }
}

/// The message `herald route` and `herald send` work on.
struct MessageOptions: ParsableArguments {
    @Option(help: "The sender's number or name.")
    var from: String

    @Option(help: "The number the message was sent to.")
    var to: String?

    @Option(help: "The message text.")
    var body: String

    @Option(help: "The source: twilio or http.")
    var source: String = "twilio"

    var inbound: InboundMessage {
        InboundMessage(source: source, sourceID: nil, from: from, to: to, body: body)
    }

    /// What the webhook path would make of the message: the same planning function.
    func plan(_ config: HeraldConfig, sinks: [any Sink], at date: Date, eventID: String? = nil) -> DeliveryPlan {
        DeliveryPlan(message: inbound, router: Router(config: config), sinks: HeraldRuntime.sinkInfos(config, sinks), now: date, eventID: eventID)
    }
}

struct Route: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dry run: show where a message would go and what each sink would send. Sends nothing."
    )

    @OptionGroup var options: ConfigOption

    @OptionGroup var message: MessageOptions

    func run() throws {
        let config = try options.load()
        let plan = message.plan(config, sinks: [], at: Date(), eventID: "evt_dry_run")
        let (decision, event) = (plan.decision, plan.event)
        guard decision.isRouted else {
            print("routes: none matched; the event would be stored as unrouted")
            print("code: \(decision.otp ?? "none")\(decision.otpDomain.map { " (origin-bound, for \($0))" } ?? "")")
            return
        }
        print("routes: \(decision.matchedRoutes.joined(separator: ", "))")
        print("code: \(decision.otp ?? "none")\(decision.otpDomain.map { " (origin-bound, for \($0))" } ?? "")")
        for target in decision.targets {
            guard let sink = config.sink(named: target.sink) else { continue }
            let state = sink.disabledReason.map { " — disabled: \($0)" } ?? ""
            print("")
            print("\(sink.name) (\(sink.type), route \(target.route), expires \(target.expireAfter.shortDescription) after receipt)\(state)")
            let preview = sink.preview(event: event, route: target.route, app: target.app)
            print(preview.split(separator: "\n", omittingEmptySubsequences: false).map { "  | " + $0 }.joined(separator: "\n"))
        }
    }
}

struct Sign: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print what makes a request valid for a source, for testing with curl.",
        discussion: """
            Twilio (the default): the X-Twilio-Signature for --url and the form parameters (Name=value; for a GET, \
            put them in --url). Without --token, the configuration's Twilio auth token is used.
            --source NAME: what makes a request valid for that source — sms-gateway: X-Timestamp and X-Signature for \
            --body-file (send it unchanged: curl --data-binary @FILE); httpsms: the bearer token; sms-to-url: \
            X-Signature for --body-file; smsforwarder: the timestamp and sign fields; plivo: the V3 signature and nonce \
            for --url and the form as Name=value; vonage: sig for the parameters as Name=value. Telnyx requests cannot be \
            signed here (only Telnyx holds its key).
            """
    )

    @OptionGroup var options: ConfigOption

    @Option(help: "A source of the configuration (default: twilio).")
    var source: String?

    @Option(help: "Twilio: the full URL Twilio calls, e.g. http://127.0.0.1:8080/twilio/sms")
    var url: String?

    @Option(help: "Twilio: the auth token.")
    var token: String?

    @Option(help: "sms-gateway: the file holding the exact request body.")
    var bodyFile: String?

    @Option(help: "sms-gateway: the Unix time to sign with (default: now).")
    var timestamp: Int?

    @Argument(help: "Twilio: form parameters, as Name=value.")
    var parameters: [String] = []

    func run() throws {
        if let source, source != "twilio" {
            let config = try options.load()
            guard let named = config.sources.named.first(where: { $0.name == source }) else {
                let known = config.sources.names.joined(separator: ", ")
                throw ValidationError("no source '\(source)' (sources: \(known.isEmpty ? "none" : known))")
            }
            let time = timestamp ?? Int(Date().timeIntervalSince1970)
            func body() throws -> Data {
                guard let bodyFile else { throw ValidationError("sources.\(source) is a \(named.type) source: pass --body-file with the exact body to send") }
                guard let data = FileManager.default.contents(atPath: bodyFile) else { throw ValidationError("cannot read \(bodyFile)") }
                return data
            }
            switch named {
            case .smsGateway(let gateway):
                let data = try body()
                print("X-Timestamp: \(time)")
                print("X-Signature: \(SMSGatewaySignature.compute(body: data, timestamp: "\(time)", signingKey: gateway.signingKey.value))")
            case .httpSMS(let httpSMS):
                print("Authorization: Bearer \(HTTPSMSToken.make(signingKey: httpSMS.signingKey.value, audience: httpSMS.audience, now: Date(timeIntervalSince1970: TimeInterval(time))))")
            case .smsToURL(let smsToURL):
                if let key = smsToURL.signingKey { print("X-Signature: \(SMSToURLSignature.compute(body: try body(), secret: key.value))") }
                if smsToURL.token != nil { print("Authorization: Bearer <sources.\(source).token>   (or ?token=… in the URL)") }
            case .smsForwarder(let forwarder):
                let milliseconds = "\(Int64(time) * 1000)"
                print("form fields: timestamp=\(milliseconds)&sign=\(SmsForwarderSignature.compute(timestamp: milliseconds, secret: forwarder.secret.value).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")")
                print("query: ?token=<sources.\(source).token>")
            case .plivo(let plivo):
                guard let url else { throw ValidationError("pass --url: the URL Plivo calls (\(plivo.publicURL)\(plivo.path)…), and the form as Name=value") }
                let nonce = "\(UInt64.random(in: 1...UInt64.max))"
                print("X-Plivo-Signature-V3: \(PlivoSignature.v3(url: url, parameters: try pairs(), nonce: nonce, authToken: plivo.authToken.value))")
                print("X-Plivo-Signature-V3-Nonce: \(nonce)")
            case .vonage(let vonage):
                guard let secret = vonage.signatureSecret, let method = VonageSignature.Method(rawValue: vonage.signatureMethod) else {
                    print("query: ?token=<sources.\(source).token>   (no signature_secret: Vonage does not sign)")
                    return
                }
                print("sig=\(VonageSignature.compute(try pairs(), secret: secret.value, method: method))   (add it to the parameters given as Name=value)")
            case .twilio(let twilio):
                guard let url else { throw ValidationError("pass --url: the full URL Twilio calls (…\(twilio.path))") }
                print(TwilioSignature.compute(url: url, parameters: try pairs(), authToken: token ?? twilio.authToken.value))
            case .http:
                print("Authorization: Bearer <sources.\(source).token>")
            case .telnyx:
                throw ValidationError("Telnyx signs with its private key, which only Telnyx holds: a request for sources.\(source) cannot be made here (use Telnyx's portal to send a test message)")
            }
            return
        }
        guard let url else { throw ValidationError("pass --url: the full URL Twilio calls") }
        let pairs = try pairs()
        let authToken: String
        if let token {
            authToken = token
        } else {
            guard let twilio = try options.load().sources.twilio else {
                throw ValidationError("the configuration has no sources.twilio; pass --token")
            }
            authToken = twilio.authToken.value
        }
        print(TwilioSignature.compute(url: url, parameters: pairs, authToken: authToken))
    }

    private func pairs() throws -> [(name: String, value: String)] {
        var pairs: [(name: String, value: String)] = []
        for parameter in parameters {
            guard let equals = parameter.firstIndex(of: "=") else {
                throw ValidationError("'\(parameter)' is not Name=value")
            }
            pairs.append((String(parameter[..<equals]), String(parameter[parameter.index(after: equals)...])))
        }
        return pairs
    }
}

/// Opens the configured store for the commands that read it while the server may be running,
/// runs `body` with it, and closes it.
func withStore<T>(_ config: HeraldConfig, _ body: (any OutboxStore) async throws -> T) async throws -> T {
    if case .memory = config.storage {
        printError("herald: storage is memory; only the running server can see its deliveries (use the admin API)")
        throw ExitCode(1)
    }
    let store: any OutboxStore
    do {
        store = try await HeraldRuntime.openStore(config, logger: Logger(label: "herald", factory: { _ in SwiftLogNoOpLogHandler() }))
    } catch {
        printError("herald: \(error)")
        throw ExitCode(1)
    }
    do {
        let result = try await body(store)
        await HeraldRuntime.close(store)
        return result
    } catch let exit as ExitCode {
        await HeraldRuntime.close(store)
        throw exit
    } catch {
        await HeraldRuntime.close(store)
        printError("herald: \(HeraldRuntime.describe(storeError: error))")
        throw ExitCode(1)
    }
}

struct Deliveries: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List deliveries in the outbox, newest first.")

    @OptionGroup var options: ConfigOption

    @Option(help: "Only this state: \(DeliveryState.allCases.map(\.rawValue).joined(separator: ", ")).")
    var state: DeliveryState?

    @Option(help: "Only this sink.")
    var sink: String?

    @Option(help: "At most this many.")
    var limit: Int = 50

    func run() async throws {
        let config = try options.load()
        let list = try await withStore(config) { store in try await store.deliveries(DeliveryFilter(state: state, sink: sink, limit: limit)) }
        if list.isEmpty {
            print("no deliveries\(state.map { " in state \($0.rawValue)" } ?? "")")
            return
        }
        for d in list {
            var line = "\(d.id)  \(d.state.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0))  \(d.sink)"
            if let recipient = d.recipient { line += " → \(PhoneNumber.masked(recipient))" }
            if let target = d.retracts { line += "  retracts \(target)" }
            line += "  attempts \(d.attempts)  event \(d.eventID)  created \(RFC3339.string(from: d.createdAt))"
            if d.state == .pending { line += "  next \(RFC3339.string(from: d.nextAttemptAt))" }
            if let error = d.lastError { line += "  last error: \(error)" }
            print(line)
        }
    }
}

extension DeliveryState: ExpressibleByArgument {}

struct Retry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send a failed or expired delivery again.",
        discussion: """
            With server.admin_token set and the server running, the server sends it at once. Otherwise the \
            store is changed directly: a running server picks it up within 10 seconds, a stopped one when it starts.
            """
    )

    @OptionGroup var options: ConfigOption

    @Argument(help: "The delivery id (dlv_…).")
    var id: String

    func run() async throws {
        let config = try options.load()
        if let token = config.server.adminToken, try await retryThroughServer(config, token: token) {
            return
        }
        let id = self.id
        try await withStore(config) { store in
            if let delivery = try await store.retry(deliveryID: id, expiresIn: config.defaults.expireAfter) {
                print("\(delivery.id) is pending again (sink \(delivery.sink)); a running Herald sends it within 10 seconds, a stopped one when it starts")
            } else if try await store.delivery(id: id) != nil {
                printError("herald: \(id) is neither failed nor expired")
                throw ExitCode(1)
            } else {
                printError("herald: no delivery \(id)")
                throw ExitCode(1)
            }
        }
    }

    /// True when the running server took the retry; false when no server answered.
    private func retryThroughServer(_ config: HeraldConfig, token: Secret) async throws -> Bool {
        do {
            let delivery = try await AdminClient(config: config, token: token).retry(deliveryID: id)
            print("\(delivery.id) is being sent again by the running server (sink \(delivery.sink))")
            return true
        } catch AdminClient.Failure.unreachable {
            return false
        } catch AdminClient.Failure.refused(let status, let message) where status == 404 || status == 409 {
            printError("herald: \(message)")
            throw ExitCode(1)
        } catch {
            // Another server on that port, or a wrong token: change the store directly.
            return false
        }
    }
}

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Push one message through the routes and the real sinks now, once, and print each outcome.",
        discussion: "Nothing is stored and nothing is retried. Exits 1 when any delivery did not succeed."
    )

    @OptionGroup var options: ConfigOption

    @OptionGroup var message: MessageOptions

    func run() async throws {
        let config = try options.load()
        signal(SIGPIPE, SIG_IGN)
        CurlRuntime.initialize()
        let now = Date()
        let sinks = SinkFactory.makeSinks(config)
        let plan = message.plan(config, sinks: sinks, at: now)
        guard plan.decision.isRouted else {
            print("no route matched; nothing sent")
            return
        }
        let byName = Dictionary(uniqueKeysWithValues: sinks.map { ($0.name, $0) })
        var failures = 0
        if plan.deliveries.contains(where: \.isRetraction) {
            print("note: herald send stores nothing, so what it sends is not retracted when the code expires")
        }
        for var delivery in plan.sends {
            let label = delivery.sink + (delivery.recipient.map { " → \(PhoneNumber.masked($0))" } ?? "")
            guard delivery.state == .pending, let sink = byName[delivery.sink] else {
                let reason = (delivery.lastError ?? "").replacingOccurrences(of: "sink disabled: ", with: "")
                print("\(label): skipped (disabled: \(reason))")
                continue
            }
            delivery.state = .inFlight
            delivery.attempts = 1
            let outcome = await sink.deliver(DeliveryRequest(event: plan.event, delivery: delivery))
            switch outcome {
            case .delivered(let detail, _, _):
                print("\(label): delivered\(detail.map { " (\($0))" } ?? "")")
            case .skipped(let reason):
                print("\(label): skipped (\(reason))")
            case .permanent(let reason):
                failures += 1
                print("\(label): failed: \(reason)")
            case .retry(_, let reason):
                failures += 1
                print("\(label): failed, would be retried: \(reason)")
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}
