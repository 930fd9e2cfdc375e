import Foundation
import HeraldCore
import HeraldSinks
import Testing

/// A sink type is its folder plus one registry line. This test adds one the way the next sinks
/// will be added: settings that decode and validate themselves, a preview, a sink.
@Suite("The sink seam")
struct SinkSeamTests {
    struct PagerSettings: SinkBuilding {
        static let type = "pager"
        static let defaults = SinkDefaults(rateLimit: 2, burst: 3)
        var service: String
        var text: MessageTemplate

        static func decode(_ section: ConfigSection) -> PagerSettings? {
            let service = section.require("service") ? section.nonEmptyString("service") : nil
            if let service, !service.hasPrefix("P") { section.fail("service", "\(section.keyPath("service")) must start with P") }
            let text = section.has("text") ? section.template("text", escaping: .text) : try? MessageTemplate("{{otp}}", escaping: .text)
            guard let service, let text else { return nil }
            return PagerSettings(service: service, text: text)
        }

        func preview(_ context: TemplateContext, event: Event) -> String { "page \(service): " + text.render(context) }

        func makeSink(_ config: SinkConfig, context: SinkContext) -> any Sink { PagerSink(name: config.name) }
    }

    struct PagerSink: Sink {
        let name: String
        func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome { .delivered(detail: "paged", receipt: "incident-1") }
    }

    static let types = SinkRegistry.settingsTypes + [PagerSettings.self]

    @Test func aNewTypeDecodesWithTheCommonKeysAndItsOwn() throws {
        let config = try ConfigLoader.parse("""
            sinks:
              oncall: { type: pager, service: PABC123, text: "code {{otp}}", timeout: 3s, concurrency: 2 }
            routes: [ { deliver: [oncall] } ]
            """, sinkTypes: Self.types)
        let sink = try #require(config.sink(named: "oncall"))
        #expect(sink.type == "pager")
        #expect(sink.timeout == .seconds(3))
        #expect(sink.concurrency == 2)
        #expect(sink.rateLimit == 2 && sink.burst == 3, "the type's own defaults")
        let event = Event(id: "evt_1", source: "twilio", sourceID: nil, from: "+1", to: nil, body: "code 123456", otp: "123456", receivedAt: Date())
        #expect(sink.preview(event: event, route: "r", app: nil) == "page PABC123: code 123456")
        #expect(SinkFactory.makeSink(sink).name == "oncall")
    }

    @Test func itsErrorsHaveTheirPlaceAndUnknownKeysAreCaughtForIt() {
        do {
            _ = try ConfigLoader.parse("""
                sinks:
                  oncall:
                    type: pager
                    service: XABC
                    txet: "{{otp}}"
                routes: [ { deliver: [oncall] } ]
                """, file: "p.yaml", sinkTypes: Self.types)
            Issue.record("expected errors")
        } catch let errors as ConfigErrors {
            #expect(errors.errors.map(\.description) == [
                "p.yaml:4:14: sinks.oncall.service must start with P",
                "p.yaml:5:5: unknown key 'txet' in sinks.oncall (did you mean 'text'?); allowed: type, optional, timeout, retry, concurrency, rate_limit, burst, service, text",
            ])
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func withoutTheRegistryLineTheTypeIsUnknown() {
        #expect(throws: ConfigErrors.self) {
            try ConfigLoader.parse("sinks: { oncall: { type: pager, service: P1 } }\nroutes: [ { deliver: [oncall] } ]")
        }
    }
}

/// Unknown keys and "did you mean" come from one place for every section, nested ones included.
@Suite("Configuration sections")
struct ConfigSectionTests {
    @Test(arguments: [
        ("server: { limits: { max_bdoy: 1KiB } }", "unknown key 'max_bdoy' in server.limits (did you mean 'max_body'?)"),
        ("defaults: { retry: { max_attempt: 3 } }", "unknown key 'max_attempt' in defaults.retry (did you mean 'max_attempts'?)"),
        ("sources: { twilio: { auth_tokn: x } }", "unknown key 'auth_tokn' in sources.twilio (did you mean 'auth_token'?)"),
        ("sinks: { a: { type: email, url: 'smtp://127.0.0.1:25', from: a@b.c, to: d@e.f, subjetc: x, starttls: none } }", "unknown key 'subjetc' in sinks.a (did you mean 'subject'?)"),
        ("sinks: { a: { type: file, path: x, retry: { initial_backof: 1s } } }", "unknown key 'initial_backof' in sinks.a.retry (did you mean 'initial_backoff'?)"),
        ("routes: [ { deliver: [inbox], match: { form: '+1' } } ]", "unknown key 'form' in match of route 'route-1' (did you mean 'from'?)"),
        ("routes: [ { deliver: [inbox], contine: true } ]", "unknown key 'contine' in routes[0] (did you mean 'continue'?)"),
    ])
    func typosAreCaughtEverywhere(_ extra: String, _ message: String) {
        var yaml = extra
        if !extra.hasPrefix("sinks:") { yaml += "\nsinks: { inbox: { type: file, path: x } }" }
        if !extra.hasPrefix("routes:") { yaml += "\nroutes: [ { deliver: [\(extra.hasPrefix("sinks:") ? "a" : "inbox")] } ]" }
        do {
            _ = try ConfigLoader.parse(yaml)
            Issue.record("no error for \(extra)")
        } catch {
            #expect("\(error)".contains(message), "\(error)")
        }
    }

    @Test("${VAR} is resolved in one place", arguments: [
        ("plain", [:], ConfigString(value: "plain", fromEnvironment: false, missing: [])),
        ("${A}", ["A": "1"], ConfigString(value: "1", fromEnvironment: true, missing: [])),
        ("x-${A:-d}-${B}", ["B": "2"], ConfigString(value: "x-d-2", fromEnvironment: true, missing: [])),
        ("${MISSING}/${ALSO}", [:], ConfigString(value: "/", fromEnvironment: true, missing: ["MISSING", "ALSO"])),
        ("${A:-}", [:], ConfigString(value: "", fromEnvironment: true, missing: [])),
    ] as [(String, [String: String], ConfigString)])
    func interpolation(_ text: String, _ environment: [String: String], _ expected: ConfigString) {
        #expect(ConfigString.interpolate(text, environment: environment) == .success(expected))
    }

    @Test(arguments: [("${A", ConfigString.Problem.unterminated), ("${1A}", .badName("1A")), ("${A-B}", .badName("A-B"))])
    func badInterpolation(_ text: String, _ problem: ConfigString.Problem) {
        #expect(ConfigString.interpolate(text, environment: [:]) == .failure(problem))
    }
}
