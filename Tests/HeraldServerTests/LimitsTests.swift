import AsyncHTTPClient
import Foundation
import HeraldCore
import HeraldTesting
import NIOCore
import NIOHTTP1
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Inbound limits")
struct LimitsTests {
    static func config(_ limits: String, extra: String = "") -> String {
        """
        server: { public_url: "\(TestServer.publicURL)", limits: \(limits)\(extra) }
        sources: { twilio: { auth_token: \(TestServer.twilioToken) } }
        sinks: { inbox: { type: file, path: /dev/null } }
        routes: [ { deliver: [inbox] } ]
        """
    }

    @Test func a65KiBBodyIsRefusedAndStoresNothing() async throws {
        let server = try await TestServer.start(Self.config("{ max_body: 64KiB }"))
        let body = String(repeating: "a", count: 65 * 1024)
        let answer = try await server.request(.POST, "/twilio/sms", headers: [("X-Twilio-Signature", "x")], body: body)
        #expect(answer.status == 413)
        let exact = try await server.request(.POST, "/twilio/sms", headers: [("X-Twilio-Signature", "x")], body: String(repeating: "a", count: 64 * 1024))
        #expect(exact.status == 403, "64 KiB is within the limit; it fails on the signature instead")
        #expect(try await server.allDeliveries().isEmpty)
        await server.stop()
    }

    /// Failed proofs take tokens (and over the limit get 429 instead of 403); the limit is per
    /// client, whatever the path; a correctly signed webhook is never refused by it.
    @Test func aBurstOfBadSignaturesOverThePerClientLimitGets429() async throws {
        let server = try await TestServer.start(Self.config("{ per_client: 1/m, per_client_burst: 3 }"))
        var statuses: [Int] = []
        for i in 0..<5 {
            statuses.append(try await server.postTwilio(sms(sid: "SMburst\(i)"), signature: "bm90LXRoZS1zaWduYXR1cmU=").status)
        }
        #expect(statuses == [403, 403, 403, 429, 429])
        let limited = try await server.request(.GET, "/healthz")
        #expect(limited.status == 429, "the limit is per client address, whatever the path")
        #expect(try await server.postTwilio(sms(sid: "SMburst-good")).status == 200, "a signed webhook proves itself")
        await server.stop()
    }

    @Test func retryAfterTellsWhen() async throws {
        let server = try await TestServer.start(Self.config("{ per_client: 1/m, per_client_burst: 1 }"))
        #expect(try await server.postTwilio(sms(sid: "SMa")).status == 200)
        var request = HTTPClientRequestBuilder(port: server.port)
        #expect(try await request.post("/twilio/sms").0 == 400, "no signature: refused, and it takes the one token")
        let (status, retryAfter) = try await request.post("/twilio/sms")
        #expect(status == 429)
        #expect(retryAfter.flatMap(Int.init).map { (55...60).contains($0) } == true, "Retry-After \(String(describing: retryAfter))")
        await server.stop()
    }

    @Test func aClientTricklingHeadersIsCutOff() async throws {
        let server = try await TestServer.start(Self.config("{ header_timeout: 1s }"))
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(server.port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0)
        let started = ContinuousClock.now
        var cutOff = false
        for byte in Array("POST /twilio/sms HTTP/1.1\r\nHost: herald.test\r\nX-Padding: ".utf8) + Array(repeating: UInt8(ascii: "a"), count: 100) {
            var value = byte
            if send(fd, &value, 1, Int32(MSG_NOSIGNAL)) < 0 { cutOff = true; break }
            try await Task.sleep(for: .milliseconds(200))
            // The server closing the connection shows up as end-of-file on a non-blocking read.
            var buffer = [UInt8](repeating: 0, count: 16)
            if recv(fd, &buffer, 16, Int32(MSG_DONTWAIT)) == 0 { cutOff = true; break }
            if ContinuousClock.now - started > .seconds(10) { break }
        }
        #expect(cutOff, "the connection stayed open")
        #expect(ContinuousClock.now - started < .seconds(5))
        await server.stop()
    }

    /// A raw loopback connection (for clients no HTTP library would be).
    static func connectRaw(_ port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return fd
    }

    /// Whether the server closed the connection (end-of-file on a non-blocking read).
    static func closedByServer(_ fd: Int32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    /// Sends `GET /healthz` on a kept-alive connection and waits up to 5 s for a `200`.
    static func answersHealthz(_ fd: Int32) async -> Bool {
        let request = Array("GET /healthz HTTP/1.1\r\nHost: herald.test\r\n\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return false }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        return await eventually(timeout: .seconds(5), interval: .milliseconds(20)) {
            while true {
                let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if n <= 0 { break }
                received += buffer[0..<n]
            }
            return String(decoding: received, as: UTF8.self).hasPrefix("HTTP/1.1 200")
        }
    }

    /// Headers at once, then one body byte every 300 ms: cut off at `body_timeout`.
    @Test func aClientTricklingItsBodyIsCutOff() async throws {
        let server = try await TestServer.start(Self.config("{ body_timeout: 1s }"))
        let fd = Self.connectRaw(server.port)
        defer { close(fd) }
        let head = Array("POST /twilio/sms HTTP/1.1\r\nHost: herald.test\r\nContent-Length: 100\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n".utf8)
        #expect(send(fd, head, head.count, Int32(MSG_NOSIGNAL)) == head.count)
        let started = ContinuousClock.now
        var cutOff = false
        for _ in 0..<40 {
            var byte = UInt8(ascii: "a")
            if send(fd, &byte, 1, Int32(MSG_NOSIGNAL)) < 0 || Self.closedByServer(fd) { cutOff = true; break }
            try await Task.sleep(for: .milliseconds(300))
        }
        #expect(cutOff, "the connection stayed open")
        #expect(ContinuousClock.now - started < .seconds(4))
        await server.stop()
    }

    /// A kept-alive connection with nothing more to say is closed at `idle_timeout`.
    @Test func anIdleKeptAliveConnectionIsClosed() async throws {
        let server = try await TestServer.start(Self.config("{ idle_timeout: 1s }"))
        let fd = Self.connectRaw(server.port)
        defer { close(fd) }
        let request = Array("GET /healthz HTTP/1.1\r\nHost: herald.test\r\n\r\n".utf8)
        #expect(send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count)
        try await Task.sleep(for: .milliseconds(300))
        #expect(!Self.closedByServer(fd), "answered and kept alive")
        let closed = await eventually(timeout: .seconds(4), interval: .milliseconds(100)) { Self.closedByServer(fd) }
        #expect(closed)
        await server.stop()
    }

    /// One connection over `max_connections` is closed as it opens; the others keep working.
    @Test func connectionsOverTheCapAreClosedAtOnce() async throws {
        let server = try await TestServer.start(Self.config("{ max_connections: 2 }"))
        let first = Self.connectRaw(server.port), second = Self.connectRaw(server.port)
        defer { close(second) }
        // Both are counted before the third opens: each is answered. (A fixed pause was not
        // enough: under load, two connections set up on different event loops were counted in
        // the other order, and the second was the one refused.)
        #expect(await Self.answersHealthz(first))
        #expect(await Self.answersHealthz(second))
        let third = Self.connectRaw(server.port)
        defer { close(third) }
        #expect(await eventually(timeout: .seconds(2), interval: .milliseconds(20)) { Self.closedByServer(third) }, "the third is refused")
        #expect(!Self.closedByServer(first) && !Self.closedByServer(second))
        close(first)
        // The server notices the close on its own schedule (under the whole suite's load, later
        // than 200 ms once in CI): until then a new connection is still over the cap and reset.
        let retaken = await eventually(timeout: .seconds(5), interval: .milliseconds(100)) {
            (try? await server.request(.GET, "/healthz").status) == 200
        }
        #expect(retaken, "a freed place is taken again")
        await server.stop()
    }

    /// Defect 8: the timer re-armed when a request ended, so an answer slower than
    /// `header_timeout` was cut off mid-response.
    @Test func anAnswerSlowerThanTheHeaderTimeoutIsNotCutOff() async throws {
        let store = HookedStore(beforeInsert: { try await Task.sleep(for: .milliseconds(1600)) })
        let server = try await TestServer.start("""
            server: { limits: { header_timeout: 1s } }
            sources: { http: { token: \(TestServer.inboundToken) } }
            sinks: { inbox: { type: file, path: /dev/null } }
            routes: [ { deliver: [inbox] } ]
            """, store: store)
        let answer = try await server.request(.POST, "/events", headers: [
            ("Authorization", "Bearer \(TestServer.inboundToken)"), ("Content-Type", "application/json"),
        ], body: #"{"from": "+15550001111", "body": "code 424242"}"#)
        #expect(answer.status == 202)
        #expect(await store.inner.allEvents().count == 1)
        await server.stop()
    }

    @Test func forwardedHeadersAreUsedOnlyWhenTrusted() async throws {
        for trusted in [true, false] {
            let server = try await TestServer.start("""
                server: { trust_forwarded_headers: \(trusted) }
                sources: { twilio: { auth_token: \(TestServer.twilioToken) } }
                sinks: { inbox: { type: file, path: /dev/null } }
                routes: [ { deliver: [inbox] } ]
                """)
            let parameters = sms(sid: "SMfwd")
            let signature = TwilioSignature.compute(url: "https://public.example.com/twilio/sms", parameters: parameters.map { (name: $0.0, value: $0.1) }, authToken: TestServer.twilioToken)
            let answer = try await server.request(.POST, "/twilio/sms", headers: [
                ("X-Twilio-Signature", signature), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "public.example.com"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ], body: formEncode(parameters))
            #expect(answer.status == (trusted ? 200 : 403), "trusted: \(trusted)")
            await server.stop()
        }
    }
}

/// A bare POST that reports the status and `Retry-After`.
struct HTTPClientRequestBuilder {
    let port: Int

    mutating func post(_ path: String) async throws -> (Int, String?) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = .POST
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
        return (Int(response.status.code), response.headers.first(name: "Retry-After"))
    }
}
