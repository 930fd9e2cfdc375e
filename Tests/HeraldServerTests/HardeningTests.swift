import Foundation
import HeraldCore
import HeraldSinks
import HeraldTesting
import NIOHTTP1
import Testing

/// What an attacker (or a bad day) tried, and what Herald does instead (issue: hardening).
@Suite("Hardening: inbound")
struct InboundHardeningTests {
    static func config(_ server: String = "", limits: String = "{ per_client: 1/m, per_client_burst: 3 }") -> String {
        """
        server: { public_url: "\(TestServer.publicURL)", limits: \(limits)\(server) }
        sources: { twilio: { auth_token: \(TestServer.twilioToken) } }
        sinks: { inbox: { type: file, path: /dev/null } }
        routes: [ { deliver: [inbox] } ]
        """
    }

    /// Behind a proxy every client has the proxy's address: a dozen unauthenticated requests must
    /// not make the next correctly signed Twilio webhook a 429 (Twilio would not retry it).
    @Test func unauthenticatedTrafficCannotLockTwilioOut() async throws {
        let server = try await TestServer.start(Self.config())
        var health: [Int] = []
        for _ in 0..<12 { health.append(try await server.request(.GET, "/healthz").status) }
        #expect(health.contains(429), "the unauthenticated requests themselves are limited: \(health)")
        for index in 0..<5 {
            #expect(try await server.postTwilio(sms("code \(100_000 + index)", sid: "SMlocked\(index)")).status == 200)
        }
        #expect(try await server.store.events(EventFilter(limit: 10)).count == 5)
        await server.stop()
    }

    /// From a trusted proxy (loopback by default) the client is the right-most hop the proxy
    /// appended; rotating what the client itself wrote to the left gains nothing.
    @Test func aClientCannotPickItsOwnKey() async throws {
        let server = try await TestServer.start(Self.config())
        var statuses: [Int] = []
        for index in 0..<6 {
            statuses.append(try await server.request(.GET, "/healthz", headers: [("X-Forwarded-For", "10.9.\(index).1, 203.0.113.9")]).status)
        }
        #expect(statuses == [200, 200, 200, 429, 429, 429], "one bucket for 203.0.113.9: \(statuses)")
        let other = try await server.request(.GET, "/healthz", headers: [("X-Forwarded-For", "203.0.113.9, 198.51.100.7")])
        #expect(other.status == 200, "naming someone else on the left does not drain their bucket: it is 198.51.100.7's")
        await server.stop()
    }

    /// A peer that is not a trusted proxy is keyed by its own address, whatever it writes.
    @Test func forwardedForFromAnUntrustedPeerIsIgnored() async throws {
        let server = try await TestServer.start(Self.config(", trusted_proxies: [10.0.0.0/8]"))
        var statuses: [Int] = []
        for index in 0..<5 {
            statuses.append(try await server.request(.GET, "/healthz", headers: [("X-Forwarded-For", "198.51.100.\(index)")]).status)
        }
        #expect(statuses == [200, 200, 200, 429, 429], "\(statuses)")
        await server.stop()
    }

    /// The published development token only works for a Herald nobody else can reach.
    @Test func theDevelopmentTokenIsRefusedThroughAProxy() async throws {
        let server = try await TestServer.start("""
            server: { listen: "127.0.0.1:0" }
            sources: { twilio: {} }
            sinks: { inbox: { type: file, path: /dev/null } }
            routes: [ { deliver: [inbox] } ]
            """)
        let parameters = sms("forged 123456", sid: "SMforged")
        let url = "http://127.0.0.1:\(server.port)/twilio/sms"
        let signature = TwilioSignature.compute(url: url, parameters: parameters.map { (name: $0.0, value: $0.1) }, authToken: TwilioSourceConfig.developmentToken)
        let headers = [("Content-Type", "application/x-www-form-urlencoded"), ("X-Twilio-Signature", signature)]
        let proxied = try await server.request(.POST, "/twilio/sms", headers: headers + [("X-Forwarded-For", "203.0.113.9")], body: formEncode(parameters))
        #expect(proxied.status == 403)
        #expect(try await server.store.events(EventFilter(limit: 10)).isEmpty)
        let direct = try await server.request(.POST, "/twilio/sms", headers: headers, body: formEncode(parameters))
        #expect(direct.status == 200, "on loopback, with nothing in front, `make run` keeps working")
        await server.stop()
    }

    /// Twilio signs names and values run together: `MessageSidS=Mx…` signs what
    /// `MessageSid=SMx…` does. The renamed copy verifies, but carries no well-formed id.
    @Test func aRenamedIdIsNotASecondMessage() async throws {
        let server = try await TestServer.start(Self.config(limits: "{}"))
        let sid = twilioSID("SMreplay")
        let original = [("MessageSid", sid), ("From", "+15551234567"), ("Body", "code 482913")]
        #expect(try await server.postTwilio(original).status == 200)
        let renamed = [("MessageSidS", String(sid.dropFirst(1))), ("From", "+15551234567"), ("Body", "code 482913")]
        let original64 = TwilioSignature.compute(url: TestServer.publicURL + "/twilio/sms", parameters: original.map { (name: $0.0, value: $0.1) }, authToken: TestServer.twilioToken)
        let renamed64 = TwilioSignature.compute(url: TestServer.publicURL + "/twilio/sms", parameters: renamed.map { (name: $0.0, value: $0.1) }, authToken: TestServer.twilioToken)
        #expect(original64 == renamed64, "the scheme itself cannot tell them apart")
        let replay = try await server.postTwilio(renamed)
        #expect(replay.status == 400)
        #expect(replay.body.contains("MessageSid"))
        #expect(try await server.postTwilio([("MessageSid", "SM123"), ("From", "+15551234567"), ("Body", "x")]).status == 400, "too short")
        #expect(try await server.postTwilio([("From", "+15551234567"), ("Body", "x")]).status == 400, "missing")
        #expect(try await server.store.events(EventFilter(limit: 10)).count == 1)
        await server.stop()
    }

    @Test(arguments: [
        ("SM0123456789abcdef0123456789abcdef", true), ("MM0123456789abcdef0123456789ABCDEF", true),
        ("SM0123456789abcdef0123456789abcde", false), ("SMx123456789abcdef0123456789abcdef", false),
        ("XM0123456789abcdef0123456789abcdef", false), ("sm0123456789abcdef0123456789abcdef", false), ("", false),
    ])
    func messageSIDs(_ text: String, _ valid: Bool) {
        #expect(TwilioSignature.isMessageSID(text) == valid)
    }
}

@Suite("Hardening: trusted proxies")
struct TrustedProxiesTests {
    static let rows: [(peer: String?, forwarded: [String], client: String, why: String)] = [
        ("203.0.113.5", ["1.2.3.4"], "203.0.113.5", "an untrusted peer is itself"),
        ("127.0.0.1", [], "127.0.0.1", "a trusted peer without the header"),
        ("127.0.0.1", ["1.2.3.4, 203.0.113.9"], "203.0.113.9", "the right-most hop the proxy appended"),
        ("127.0.0.1", ["1.2.3.4", "203.0.113.9"], "203.0.113.9", "several header lines read as one list"),
        ("127.0.0.1", ["203.0.113.9, 127.0.0.1"], "203.0.113.9", "trusted hops are skipped from the right"),
        ("127.0.0.1", ["127.0.0.2, 127.0.0.1"], "127.0.0.2", "all trusted: the left-most"),
        ("::1", [" 2001:db8::7 "], "2001:db8::7", "IPv6 and spaces"),
        ("127.0.0.1", ["\t198.51.100.2\t, \t , 127.0.0.1"], "198.51.100.2", "tabs, and a blank hop skipped"),
        ("127.0.0.1:9000", ["198.51.100.3"], "198.51.100.3", "a trusted peer with its port"),
        ("[::1]:8443", ["198.51.100.4"], "198.51.100.4", "a bracketed IPv6 peer with its port"),
        ("[::1", ["198.51.100.5"], "[::1", "an unclosed bracket is not an address, so not trusted"),
        ("::ffff:127.0.0.1", ["198.51.100.1"], "198.51.100.1", "an IPv4-mapped loopback peer is loopback"),
        (nil, ["1.2.3.4"], "unknown", "no peer address"),
    ]

    @Test(arguments: rows.indices)
    func theClientIsTheRightMostUntrustedHop(_ index: Int) {
        let row = Self.rows[index]
        #expect(TrustedProxies.loopback.client(peer: row.peer, forwardedFor: row.forwarded) == row.client, "\(row.why)")
    }

    @Test func rangesParseAndMatch() throws {
        let proxies = TrustedProxies(try ["10.0.0.0/8", "192.168.1.10", "fd00::/8"].map { try #require(TrustedProxies.Range($0)) })
        #expect(proxies.contains("10.200.3.4"))
        #expect(!proxies.contains("11.0.0.1"))
        #expect(proxies.contains("192.168.1.10") && !proxies.contains("192.168.1.11"))
        #expect(proxies.contains("fd12::1") && !proxies.contains("fe80::1"))
        #expect(proxies.contains("10.1.1.1:443"), "a peer with its port")
        for bad in ["10.0.0.0/33", "300.1.1.1", "proxy.example.com", "::1/129", ""] {
            #expect(TrustedProxies.Range(bad) == nil, "\(bad)")
        }
    }

    @Test func aBadEntryIsAConfigErrorAtItsPlace() {
        let yaml = "server: { trusted_proxies: [10.0.0.0/8, my-proxy] }\nsinks: { a: { type: file, path: x } }\nroutes: [ { deliver: [a] } ]\n"
        do {
            _ = try ConfigLoader.parse(yaml)
            Issue.record("accepted")
        } catch {
            #expect("\(error)".contains("channels.yaml:1:"), "\(error)")
            #expect("\(error)".contains("'my-proxy' is not an IP address or a CIDR block"), "\(error)")
        }
    }
}
