import Foundation
import HeraldCore
import HeraldSinks
import Testing

@Suite("Router")
struct RouterTests {
    static let yaml = """
        sinks:
          slack: { type: file, path: a.jsonl }
          phones: { type: file, path: b.jsonl }
          archive: { type: file, path: c.jsonl }
          audit: { type: file, path: d.jsonl }
        routes:
          - name: aws-root
            match: { from: ["+1 (234) 456-7890", "+1 999 000 1111"], body: "(?i)aws|amazon" }
            app: AWS
            expire_after: 2m
            deliver: [slack, phones]
            continue: true
          - name: to-work-number
            match: { to: "+44 20 7946 0000" }
            app: Work
            deliver: [phones, archive]
          - name: http-only
            match: { source: http }
            deliver: [audit]
          - name: bank
            match: { from: BANK }
            otp_pattern: "ref (\\\\d{4})"
            deliver: [archive]
          - name: archive-all
            deliver: [archive]
        """

    let router: Router

    init() throws {
        router = Router(config: try ConfigLoader.parse(Self.yaml))
    }

    @Test func matchesFromAfterNormalizingAndBody() {
        let decision = router.route(source: "twilio", from: "+12344567890", to: nil, body: "Your AWS code is 123456")
        // continue: true lets archive-all match too; phones is named once.
        #expect(decision.matchedRoutes == ["aws-root", "archive-all"])
        #expect(decision.targets.map(\.sink) == ["slack", "phones", "archive"])
        #expect(decision.targets.map(\.route) == ["aws-root", "aws-root", "archive-all"])
        #expect(decision.targets[0].expireAfter == .seconds(120))
        #expect(decision.targets[2].expireAfter == .seconds(600))
        #expect(decision.app == "AWS")
        #expect(decision.route == "aws-root")
        #expect(decision.otp == "123456")
    }

    @Test func fromListIsOr() {
        let decision = router.route(source: "twilio", from: "+1-999-000-1111", to: nil, body: "amazon: 4821 is your code")
        #expect(decision.matchedRoutes.first == "aws-root")
    }

    @Test func allMatchKeysMustHold() {
        let decision = router.route(source: "twilio", from: "+12344567890", to: nil, body: "Your GitHub code is 123456")
        #expect(decision.matchedRoutes == ["archive-all"])
    }

    @Test func routeStopsUnlessContinue() {
        let decision = router.route(source: "twilio", from: "+15550000000", to: "+442079460000", body: "hi")
        #expect(decision.matchedRoutes == ["to-work-number"])
        #expect(decision.targets.map(\.sink) == ["phones", "archive"])
        #expect(decision.app == "Work")
    }

    @Test func toRequiresARecipient() {
        let decision = router.route(source: "twilio", from: "+15550000000", to: nil, body: "hi")
        #expect(decision.matchedRoutes == ["archive-all"])
    }

    @Test func sourceMatch() {
        #expect(router.route(source: "http", from: "+15550000000", to: nil, body: "hi").matchedRoutes == ["http-only"])
    }

    @Test func otpPatternOverrides() {
        let decision = router.route(source: "twilio", from: "BANK", to: nil, body: "Your code is 999999, ref 4321")
        #expect(decision.otp == "4321")
        let none = router.route(source: "twilio", from: "BANK", to: nil, body: "Your code is 999999")
        #expect(none.otp == nil, "a route's otp_pattern replaces the built-in extraction")
    }

    @Test func unmatchedEventIsUnrouted() throws {
        let config = try ConfigLoader.parse("""
            sinks: { a: { type: file, path: a.jsonl } }
            routes: [ { match: { from: "+1" }, deliver: [a] } ]
            """)
        let decision = Router(config: config).route(source: "twilio", from: "+2", to: nil, body: "code 1234")
        #expect(!decision.isRouted)
        #expect(decision.targets.isEmpty)
        #expect(decision.otp == "1234")
    }
}
