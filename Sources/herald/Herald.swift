import ArgumentParser
import Foundation
import HeraldCore
import HeraldServer
import Hummingbird
import Logging

extension Logger.Level: @retroactive ExpressibleByArgument {}

@main
struct Herald: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herald",
        abstract: "Fan out inbound text messages (MFA codes) to Slack, phones, email and HTTP.",
        subcommands: [Serve.self, Check.self, Route.self, Sign.self]
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

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "herald")
        let config = try options.load()
        for warning in config.warnings {
            logger.warning("\(warning)")
        }
        if config.sources.twilio?.usesDevelopmentToken == true {
            printError("""
                !!! DEVELOPMENT MODE: TWILIO_AUTH_TOKEN is not set. Twilio signatures are checked against
                !!! the development token '\(TwilioSourceConfig.developmentToken)'. Set TWILIO_AUTH_TOKEN for real traffic.
                """)
        }
        let app = buildApplication(config: config, logger: logger)
        try await app.runService()
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate the configuration and summarize it.")

    @OptionGroup var options: ConfigOption

    func run() throws {
        let config = try options.load()
        for warning in config.warnings { print("warning: \(warning)") }
        print("sinks:")
        for sink in config.sinks {
            let state = sink.disabledReason.map { "disabled: \($0)" } ?? "enabled"
            print("  \(sink.name) (\(sink.kind.rawValue), \(state))")
        }
        print("routes:")
        for route in config.routes {
            print("  \(route.name) -> \(route.deliver.joined(separator: ", "))\(route.continues ? " (continue)" : "")")
        }
        print("\(options.path): OK")
    }
}

struct Route: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dry run: show where a message would go and what each sink would send. Sends nothing."
    )

    @OptionGroup var options: ConfigOption

    @Option(help: "The sender's number or name.")
    var from: String

    @Option(help: "The number the message was sent to.")
    var to: String?

    @Option(help: "The message text.")
    var body: String

    @Option(help: "The source: twilio or http.")
    var source: String = "twilio"

    func run() throws {
        let config = try options.load()
        let decision = Router(config: config).route(source: source, from: from, to: to, body: body)
        let event = Event(
            id: "evt_dry_run", source: source, sourceID: nil, from: from, to: to, body: body,
            otp: decision.otp, app: decision.app, route: decision.route, receivedAt: Date()
        )
        guard decision.isRouted else {
            print("routes: none matched; the event would be stored as unrouted")
            print("code: \(decision.otp ?? "none")")
            return
        }
        print("routes: \(decision.matchedRoutes.joined(separator: ", "))")
        print("code: \(decision.otp ?? "none")")
        for target in decision.targets {
            guard let sink = config.sink(named: target.sink) else { continue }
            let state = sink.disabledReason.map { " — disabled: \($0)" } ?? ""
            print("")
            print("\(sink.name) (\(sink.kind.rawValue), route \(target.route), expires \(target.expireAfter.shortDescription) after receipt)\(state)")
            let preview = sink.preview(event: event, route: target.route, app: target.app)
            print(preview.split(separator: "\n", omittingEmptySubsequences: false).map { "  | " + $0 }.joined(separator: "\n"))
        }
    }
}

struct Sign: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the X-Twilio-Signature for a request, for testing with curl.",
        discussion: """
            For a POST, pass the form parameters as Name=value. For a GET, put them in --url and pass none.
            Without --token, the configuration's Twilio auth token is used (the development token when \
            TWILIO_AUTH_TOKEN is unset).
            """
    )

    @OptionGroup var options: ConfigOption

    @Option(help: "The full URL Twilio calls, e.g. http://127.0.0.1:8080/twilio/sms")
    var url: String

    @Option(help: "The Twilio auth token.")
    var token: String?

    @Argument(help: "Form parameters, as Name=value.")
    var parameters: [String] = []

    func run() throws {
        var pairs: [(name: String, value: String)] = []
        for parameter in parameters {
            guard let equals = parameter.firstIndex(of: "=") else {
                throw ValidationError("'\(parameter)' is not Name=value")
            }
            pairs.append((String(parameter[..<equals]), String(parameter[parameter.index(after: equals)...])))
        }
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
}
