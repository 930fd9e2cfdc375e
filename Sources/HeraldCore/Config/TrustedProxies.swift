#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `server.trusted_proxies`: the proxies whose `X-Forwarded-*` headers are believed. A client is
/// keyed by the right-most `X-Forwarded-For` hop that is not a trusted proxy, so a client cannot
/// pick its own key by writing the header itself: whatever it wrote sits to the left of what the
/// proxy appended.
public struct TrustedProxies: Sendable, Equatable {
    /// An address or a CIDR block, IPv4 or IPv6.
    public struct Range: Sendable, Equatable, CustomStringConvertible {
        let bytes: [UInt8]
        let prefix: Int
        public let description: String

        /// `10.0.0.0/8`, `192.168.1.10`, `::1`, `fd00::/8`; nil when it is not one of those.
        public init?(_ text: String) {
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let bytes = TrustedProxies.parseAddress(String(parts[0])) else { return nil }
            var prefix = bytes.count * 8
            if parts.count == 2 {
                guard let value = Int(parts[1]), (0...prefix).contains(value) else { return nil }
                prefix = value
            }
            self.bytes = bytes
            self.prefix = prefix
            self.description = text
        }

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == bytes.count else { return false }
            var remaining = prefix
            for index in bytes.indices where remaining > 0 {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if address[index] & mask != bytes[index] & mask { return false }
                remaining -= bits
            }
            return true
        }
    }

    public var ranges: [Range]

    public init(_ ranges: [Range]) {
        self.ranges = ranges
    }

    /// The default: a proxy on the same host.
    public static let loopback = TrustedProxies([Range("127.0.0.0/8")!, Range("::1")!])

    public func contains(_ address: String) -> Bool {
        guard let bytes = Self.parseAddress(address) else { return false }
        return ranges.contains { $0.contains(bytes) }
    }

    /// Whom a request comes from: its peer, unless the peer is a trusted proxy; then the
    /// right-most hop of `X-Forwarded-For` (all of its lines) that is not one, or the left-most
    /// hop when every one is trusted.
    public func client(peer: String?, forwardedFor: [String]) -> String {
        guard let peer else { return "unknown" }
        guard contains(peer) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { String(Self.trim($0)) }.filter { !$0.isEmpty }
        guard !hops.isEmpty else { return peer }
        for hop in hops.reversed() where !contains(hop) {
            return hop
        }
        return hops[0]
    }

    /// The address a peer or a forwarded hop names: `1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`, `::1`.
    static func parseAddress(_ text: String) -> [UInt8]? {
        var host = trim(Substring(text))
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            host = host[host.index(after: host.startIndex)..<close]
        } else if let colon = host.utf8.firstIndex(of: UInt8(ascii: ":")),
                  !host.utf8[host.utf8.index(after: colon)...].contains(UInt8(ascii: ":")) {
            host = host[..<colon]
        }
        let text = String(host)
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            let bytes = withUnsafeBytes(of: &v6) { Array($0) }
            // An IPv4-mapped address (::ffff:a.b.c.d) is that IPv4 address.
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF { return Array(bytes[12...]) }
            return bytes
        }
        return nil
    }

    /// Without the spaces and tabs around it (over UTF-8: this runs for every request).
    private static func trim(_ text: Substring) -> Substring {
        let blank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        guard let first = text.utf8.firstIndex(where: { !blank($0) }), let last = text.utf8.lastIndex(where: { !blank($0) }) else { return "" }
        return text[first...last]
    }
}
