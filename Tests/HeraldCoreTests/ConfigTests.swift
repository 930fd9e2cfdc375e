import Foundation
import HeraldCore
import HeraldSinks
import Testing

@Suite("Configuration")
struct ConfigTests {
    static let env = [
        "TWILIO_AUTH_TOKEN": "twilio-secret-token-0001",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0001/B0001/slack-secret-path",
        "AUDIT_TOKEN": "audit-secret-token-0002",
    ]

    static func fixture(_ name: String) -> String {
        Bundle.module.path(forResource: name, ofType: "yaml", inDirectory: "Fixtures")!
    }

    static func errors(_ name: String, env: [String: String] = env) -> [ConfigError] {
        do {
            _ = try ConfigLoader.load(path: fixture(name), environment: env)
            return []
        } catch let errors as ConfigErrors {
            return errors.errors
        } catch {
            Issue.record("unexpected error \(error)")
            return []
        }
    }

    /// One fixture per rule: the file, the line and column of the problem, and words the message must have.
    static let rules: [(fixture: String, line: Int, column: Int, message: String)] = [
        ("unknown-top-level-key", 3, 1, "unknown key 'rotues' in the top level (did you mean 'routes'?)"),
        ("unknown-sink-key", 4, 5, "unknown key 'webhook_ur' in sinks.team (did you mean 'webhook_url'?)"),
        ("route-unknown-sink", 7, 22, "route 'all' delivers to unknown sink 'team-slak'; defined sinks: inbox"),
        ("duplicate-sink-name", 5, 3, "duplicate key 'inbox'"),
        ("duplicate-route-name", 6, 11, "duplicate route name 'codes' (first used on line 4)"),
        ("bad-regex", 6, 13, "match.body of route 'aws' is not a valid regular expression"),
        ("bad-template", 5, 11, "template sinks.team.text does not compile: a {{#section}} is never closed"),
        ("bad-duration", 2, 17, "bad duration '10 minutes' for defaults.expire_after"),
        ("bad-url", 4, 10, "sinks.audit.url is not a valid URL"),
        ("unset-variable", 4, 18, "environment variable SLACK_WEBHOOK_URL is not set (used by sinks.team.webhook_url)"),
        ("yaml-syntax", 4, 10, "YAML syntax: mapping values are not allowed in this context"),
        ("unknown-sink-type", 3, 11, "unknown sink type 'pager' for sinks.archive; expected one of slack, http, file, twilio, email"),
        ("otp-pattern-groups", 5, 18, "must have exactly one capture group"),
        ("bad-listen", 2, 11, "server.listen must be host:port"),
    ]

    @Test("each broken rule is reported at its place", arguments: rules)
    func brokenRule(_ rule: (fixture: String, line: Int, column: Int, message: String)) {
        let env = rule.fixture == "unset-variable" ? [:] : Self.env
        let errors = Self.errors(rule.fixture, env: env)
        let match = errors.first { $0.message.contains(rule.message) }
        #expect(match != nil, "no error says \(rule.message); got \(errors)")
        #expect(match?.line == rule.line)
        #expect(match?.column == rule.column)
        #expect(match?.description.hasPrefix(Self.fixture(rule.fixture) + ":\(rule.line):\(rule.column): ") == true)
        // A broken sink is reported once, not again by every route that names it.
        #expect(!errors.contains { $0.message.contains("delivers to unknown sink") } || rule.fixture == "route-unknown-sink")
    }

    @Test func validConfigurationIsRead() throws {
        let config = try ConfigLoader.load(path: Self.fixture("valid-full"), environment: Self.env)
        #expect(config.server.host == "127.0.0.1")
        #expect(config.server.port == 9090)
        #expect(config.server.publicURL == "https://herald.example.com")
        #expect(config.sources.twilio?.authToken.value == "twilio-secret-token-0001")
        #expect(config.sources.twilio?.path == "/twilio/sms")
        #expect(config.sources.http?.token.value == "inbound-default")
        #expect(config.defaults.expireAfter == .seconds(300))
        #expect(config.defaults.retry == RetryPolicy(maxAttempts: 4, initialBackoff: .milliseconds(500), maxBackoff: .seconds(30)))
        #expect(config.sinks.map(\.name) == ["team-slack", "audit", "pager", "inbox"])
        let slack = try #require(config.sink(named: "team-slack"))
        #expect(slack.retry.maxAttempts == 3)
        #expect(slack.retry.initialBackoff == .milliseconds(500), "unset retry keys come from defaults.retry")
        guard let audit = config.sink(named: "audit")?.settings as? HTTPSinkSettings else {
            Issue.record("audit is not an http sink")
            return
        }
        #expect(audit.method == "PUT")
        #expect(audit.headers.first?.value.value == "Bearer audit-secret-token-0002")
        #expect(audit.body == nil)
        #expect(audit.signingSecret == nil, "an empty default turns signing off")
        #expect(config.sink(named: "audit")?.timeout == .seconds(2))
        let pager = try #require(config.sink(named: "pager"))
        #expect(pager.disabledReason == "PAGER_WEBHOOK_URL is not set")
        #expect(config.warnings.contains { $0.contains("sink 'pager' is disabled") })
        #expect(config.enabledSinks.map(\.name) == ["team-slack", "audit", "inbox"])
        #expect(config.routes.map(\.name) == ["aws-root", "everything-else"])
        #expect(config.routes[0].match.from == ["+12344567890"])
        #expect(config.routes[0].continues)
        #expect(config.routes[0].expireAfter == .seconds(120))
    }

    @Test func variablesWithDefaults() throws {
        let yaml = """
            sinks:
              inbox: { type: file, path: "${INBOX_DIR:-data}/inbox-${USER_NAME}.jsonl" }
            routes:
              - deliver: [inbox]
            """
        let config = try ConfigLoader.parse(yaml, environment: ["USER_NAME": "ana"])
        guard let file = config.sinks[0].settings as? FileSinkSettings else { throw Failure("not a file sink") }
        #expect(file.path == "data/inbox-ana.jsonl")
    }

    @Test func unterminatedVariableIsAnError() {
        let yaml = """
            sinks:
              inbox: { type: file, path: "${INBOX_DIR" }
            routes:
              - deliver: [inbox]
            """
        #expect(throws: ConfigErrors.self) { try ConfigLoader.parse(yaml) }
    }

    @Test func developmentTokenOnlyOnLoopback() throws {
        let loopback = """
            sources: { twilio: { auth_token: "${TWILIO_AUTH_TOKEN:-}" } }
            sinks: { inbox: { type: file, path: a.jsonl } }
            routes: [ { deliver: [inbox] } ]
            """
        let config = try ConfigLoader.parse(loopback)
        #expect(config.sources.twilio?.usesDevelopmentToken == true)
        #expect(config.sources.twilio?.authToken.value == TwilioSourceConfig.developmentToken)
        #expect(config.warnings.contains { $0.contains("DEVELOPMENT token") })

        let exposed = "server: { listen: 0.0.0.0:8080 }\n" + loopback
        do {
            _ = try ConfigLoader.parse(exposed)
            Issue.record("an empty token on a public address must be refused")
        } catch let errors as ConfigErrors {
            #expect(errors.errors.first?.message.contains("sources.twilio.auth_token is empty") == true)
            #expect(errors.errors.first?.line == 2)
        }
    }

    /// Loopback behind a proxy is reachable too: a public URL or forwarded headers say so.
    @Test(arguments: [
        ("server: { public_url: https://herald.example.com }", "server.public_url names a host others can reach"),
        ("server: { trust_forwarded_headers: true }", "server.trust_forwarded_headers is on"),
    ])
    func developmentTokenNeverBehindAProxy(_ server: String, _ reason: String) throws {
        let yaml = server + "\nsources: { twilio: {} }\nsinks: { inbox: { type: file, path: a.jsonl } }\nroutes: [ { deliver: [inbox] } ]\n"
        do {
            _ = try ConfigLoader.parse(yaml)
            Issue.record("the development token must be refused: \(reason)")
        } catch let errors as ConfigErrors {
            #expect(errors.errors.first?.message.contains(reason) == true, "\(errors)")
        }
        let local = "server: { public_url: http://localhost:8080 }\nsources: { twilio: {} }\nsinks: { inbox: { type: file, path: a.jsonl } }\nroutes: [ { deliver: [inbox] } ]\n"
        #expect(try ConfigLoader.parse(local).sources.twilio?.usesDevelopmentToken == true, "a loopback public URL is still only this machine")
    }

    /// The file is read without YAML's tag resolution: a value that YAML 1.1 would type as a
    /// number, a date, a boolean or null is the text written, typed only where Herald expects a type.
    @Test func scalarsAreReadAsWritten() throws {
        let yaml = """
        storage: sqlite:data/herald.db
        sinks:
          "123": { type: file, path: data/a.jsonl }
          yes: { type: file, path: data/b.jsonl, optional: on }
          2026-01-01: { type: file, path: "~" }
        routes:
          - name: off
            match: { from: [+15550001111], body: 1e3 }
            deliver: [123, yes, 2026-01-01]
        """
        let config = try ConfigLoader.parse(yaml, file: "odd.yaml")
        #expect(config.sinks.map(\.name) == ["123", "yes", "2026-01-01"])
        #expect(config.routes.map(\.name) == ["off"])
        #expect(config.routes.first?.deliver == ["123", "yes", "2026-01-01"])
        #expect(config.routes.first?.match.body?.source == "1e3")
        #expect(config.routes.first?.match.from == ["+15550001111"])

        let broken = """
        storage: sqlite:data/herald.db
        defaults:
          retry: &r { max_attempts: 0x10 }
        sinks:
          a: { type: file, path: ~ }
        routes:
          - name: null
            <<: *r
            deliver: [a]
        """
        do {
            _ = try ConfigLoader.parse(broken, file: "odd.yaml")
            Issue.record("expected errors")
        } catch let errors as ConfigErrors {
            #expect(errors.errors.map { "\($0.line):\($0.column): \($0.message)" } == [
                "3:29: defaults.retry.max_attempts must be a whole number from 1 to 1000, not '0x10'",
                "5:26: sinks.a.path must be a string",
                "7:11: routes[0].name must be a string",
                "8:5: unknown key '<<' in routes[0]; allowed: name, match, app, deliver, continue, otp_pattern, expire_after",
            ])
        }
    }

    @Test func emptyFileIsAnError() {
        do {
            _ = try ConfigLoader.parse("# nothing here\n", file: "empty.yaml")
            Issue.record("expected an error")
        } catch let errors as ConfigErrors {
            #expect(errors.description == "empty.yaml:1:1: the configuration is empty: it needs at least `sinks` and `routes`")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func missingFileIsAnError() {
        do {
            _ = try ConfigLoader.load(path: "/nonexistent/channels.yaml", environment: [:])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)" == "/nonexistent/channels.yaml:1:1: cannot read the configuration file: no such file")
        }
    }

    /// Secrets arrive through variables; whatever goes wrong, no message may show them.
    @Test func errorsNeverShowSecrets() {
        let secretURL = "not a url but a secret: hooks-secret-path-777"
        let yaml = """
            server: { listen: 0.0.0.0:8080, public_url: "${PUBLIC_URL}" }
            sources:
              twilio: { auth_token: "${TWILIO_AUTH_TOKEN}", verify_signature: "${TWILIO_AUTH_TOKEN}" }
              http: { token: "${HERALD_INBOUND_TOKEN}", path: "${HERALD_INBOUND_TOKEN}" }
            sinks:
              team: { type: slack, webhook_url: "${SLACK_WEBHOOK_URL}" }
              audit:
                type: http
                url: "${SLACK_WEBHOOK_URL}"
                headers: { Authorization: "Bearer ${AUDIT_TOKEN}\\n" }
                signing_secret: "${AUDIT_TOKEN}"
            routes:
              - deliver: [team, audit]
            """
        let env = [
            "PUBLIC_URL": secretURL, "SLACK_WEBHOOK_URL": secretURL, "TWILIO_AUTH_TOKEN": "twilio-secret-888",
            "HERALD_INBOUND_TOKEN": "inbound-secret-999", "AUDIT_TOKEN": "audit-secret-@@@",
        ]
        do {
            _ = try ConfigLoader.parse(yaml, environment: env)
            Issue.record("expected errors")
        } catch {
            let text = "\(error)"
            #expect(text.split(separator: "\n").count >= 5, "expected several errors, got: \(text)")
            for secret in ["hooks-secret-path-777", "twilio-secret-888", "inbound-secret-999", "audit-secret-@@@"] {
                #expect(!text.contains(secret), "an error shows a secret: \(text)")
            }
        }
    }

    @Test func secretsPrintAsPlaceholders() throws {
        let config = try ConfigLoader.load(path: Self.fixture("valid-full"), environment: Self.env)
        let dump = "\(config)"
        #expect(!dump.contains("twilio-secret-token-0001"))
        #expect(!dump.contains("slack-secret-path"))
        #expect(!dump.contains("audit-secret-token-0002"))
        #expect(dump.contains("<secret>"))
    }

    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)), ("30s", .seconds(30)), ("10m", .seconds(600)),
        ("2h", .seconds(7200)), ("7d", .seconds(604_800)), ("1.5s", .milliseconds(1500)),
    ])
    func durations(_ text: String, _ expected: Duration) {
        #expect(Duration.parse(text) == expected)
    }

    @Test(arguments: ["10", "ten m", "-1s", "5 min", "s", "1.2.3s", "", "99999999999999999999d", "36501d", "9999999999999999999999999ms"])
    func badDurations(_ text: String) {
        #expect(Duration.parse(text) == nil)
    }

    /// Times from outside (a `Retry-After`, a `received_at`, a stored row) saturate instead of
    /// trapping when they are turned into durations.
    @Test func conversionsSaturate() {
        #expect(Duration.milliseconds(saturating: .nan) == .zero)
        #expect(Duration.milliseconds(saturating: -5) == .zero)
        #expect(Duration.milliseconds(saturating: 1e300) == .milliseconds(1_000_000_000_000_000))
        #expect(Duration.milliseconds(saturating: .infinity) == .milliseconds(1_000_000_000_000_000))
        #expect(Duration.milliseconds(saturating: 1234.4) == .milliseconds(1234))
    }
}

struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
