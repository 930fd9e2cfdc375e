import Foundation
import HeraldCore
import HeraldSinks
import Testing

/// Origin-bound codes (`@example.com #123456` on the last line): taken exactly, with their domain.
@Suite("Origin-bound codes")
struct OriginBoundCodeTests {
    static let rows: [(String, String, OriginBoundCode?)] = [
        ("the plain form", "Your Example code is 123456.\n\n@example.com #123456", OriginBoundCode(domain: "example.com", code: "123456")),
        ("the embedded form names the top-level site first", "747723 is your ExampleCo code.\n@example.com #747723 @ecommerce.example",
         OriginBoundCode(domain: "example.com", embeddedDomain: "ecommerce.example", code: "747723")),
        ("the host is compared lower-cased", "Code for login\n@Login.Example.COM #9921", OriginBoundCode(domain: "login.example.com", code: "9921")),
        ("a trailing line break or space does not matter", "Your code: 1\n@example.com #445566\n", OriginBoundCode(domain: "example.com", code: "445566")),
        ("CRLF line endings", "Your code\r\n@example.com #778899  ", OriginBoundCode(domain: "example.com", code: "778899")),
        ("an alphanumeric code as written", "Sign-in code\n@auth.example.net #K7Q2ZP", OriginBoundCode(domain: "auth.example.net", code: "K7Q2ZP")),
        ("the whole message may be the binding", "@example.com #123456", OriginBoundCode(domain: "example.com", code: "123456")),
        ("not on the last line", "@example.com #123456\nThanks for signing in.", nil),
        ("no # before the code", "Your code\n@example.com 123456", nil),
        ("no @ before the host", "Your code\nexample.com #123456", nil),
        ("a space inside the host", "Your code\n@ example.com #123456", nil),
        ("an empty label", "Your code\n@example..com #123456", nil),
        ("punctuation inside the code", "Your code\n@example.com #123-456", nil),
        ("the order reversed", "Your code\n#123456 @example.com", nil),
        ("more than three parts", "Your code\n@example.com #123456 @a.example @b.example", nil),
        ("a host alone", "Your code 123456\n@example.com", nil),
        ("a non-ASCII host", "Your code\n@exämple.com #123456", nil),
        // Found by `make fuzz` (the finder target): a binding's code may be up to 32 letters
        // and digits, longer than any code the finder takes from the text.
        ("a long code as written", "48913 is your code\n\n@eFloate.com #4829UnsafeRa13", OriginBoundCode(domain: "efloate.com", code: "4829UnsafeRa13")),
        ("a code of 33 is too long", "Your code\n@example.com #" + String(repeating: "7", count: 33), nil),
    ]

    @Test(arguments: rows)
    func parse(_ why: String, _ body: String, _ expected: OriginBoundCode?) {
        #expect(OriginBoundCode.parse(body) == expected, "\(why)")
    }

    static let router = { () -> Router in
        let config = try! ConfigLoader.parse("""
            sinks: { inbox: { type: file, path: x }, gh: { type: file, path: y } }
            routes:
              - name: github
                match: { otp_domain: [github.com, "@GitLab.com"] }
                otp_pattern: "code (\\\\d+)"
                deliver: [gh]
              - name: rest
                deliver: [inbox]
            """)
        return Router(config: config)
    }()

    @Test func theBindingWinsOverTheFinderAndTheRoutesPattern() {
        let decision = Self.router.route(source: "twilio", from: "+1", to: nil, body: "Your code 111111 expires at 10:30. Call 555-0100.\n@github.com #482913")
        #expect(decision.route == "github")
        #expect(decision.otp == "482913")
        #expect(decision.otpDomain == "github.com")
    }

    @Test(arguments: [
        ("x\n@github.com #1", "github"), ("x\n@GITLAB.COM #1", "github"), ("x\n@example.com #1", "rest"), ("code 123456", "rest"),
    ])
    func routesMatchTheDomainExactlyAndCaseInsensitively(_ body: String, _ route: String) {
        #expect(Self.router.route(source: "twilio", from: "+1", to: nil, body: body).route == route)
    }

    @Test func templatesAndTheEventCarryTheDomain() throws {
        let message = InboundMessage(source: "twilio", sourceID: "SM1", from: "+15550001111", to: nil, body: "Your code\n@github.com #482913")
        let plan = DeliveryPlan(message: message, router: Self.router, sinks: ["gh": .init()], now: Date())
        #expect(plan.event.otp == "482913")
        #expect(plan.event.otpDomain == "github.com")
        let template = try MessageTemplate("{{otp}}{{#otp_domain}} for {{otp_domain}}{{/otp_domain}}", escaping: .text)
        #expect(template.render(TemplateContext(event: plan.event)) == "482913 for github.com")
        let json = try #require(try JSONSerialization.jsonObject(with: plan.event.jsonData()) as? [String: Any])
        #expect(json["otp_domain"] as? String == "github.com")
    }
}
