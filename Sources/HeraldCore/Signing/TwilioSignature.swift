import Crypto
import Foundation

/// `X-Twilio-Signature`: HMAC-SHA1 over the URL Twilio called followed by every POST parameter
/// (sorted by name in byte order, name then value, repeated names with their distinct values
/// sorted), keyed with the auth token, base64-encoded.
public enum TwilioSignature {
    public static func compute(url: String, parameters: [(name: String, value: String)], authToken: String) -> String {
        var payload = stripFragment(url)
        let grouped = Dictionary(grouping: parameters, by: \.name)
        for name in grouped.keys.sorted(by: byteOrder) {
            let values = Set(grouped[name]!.map(\.value)).sorted(by: byteOrder)
            for value in values {
                payload += name + value
            }
        }
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Data(payload.utf8), using: SymmetricKey(data: Data(authToken.utf8)))
        return Data(mac).base64EncodedString()
    }

    /// Checks the signature against the URL as given, without its port, and with the default
    /// port added: Twilio's own libraries accept all three. Every comparison is constant-time.
    public static func isValid(
        signature: String, url: String, parameters: [(name: String, value: String)], authToken: String
    ) -> Bool {
        var valid = false
        for candidate in urlVariants(stripFragment(url)) {
            let expected = compute(url: candidate, parameters: parameters, authToken: authToken)
            // No early exit: every variant is always compared.
            valid = constantTimeEquals(expected, signature) || valid
        }
        return valid
    }

    static func stripFragment(_ url: String) -> String {
        url.firstIndex(of: "#").map { String(url[..<$0]) } ?? url
    }

    /// The URL itself, then with the port removed, then with the scheme's default port added.
    static func urlVariants(_ url: String) -> [String] {
        guard let schemeEnd = url.range(of: "://") else { return [url] }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        let tail = rest[authorityEnd...]
        let prefix = String(url[..<schemeEnd.upperBound])
        // Split host and port, minding IPv6 literals like [::1]:8080.
        var host = authority
        var hasPort = false
        if let colon = authority.lastIndex(of: ":"), !authority[colon...].contains("]"),
           authority[authority.index(after: colon)...].allSatisfy(\.isNumber) {
            host = authority[..<colon]
            hasPort = true
        }
        let defaultPort = scheme == "https" ? "443" : scheme == "http" ? "80" : nil
        var variants = [url]
        if hasPort {
            variants.append(prefix + String(host) + String(tail))
        } else if let defaultPort {
            variants.append(prefix + String(host) + ":" + defaultPort + String(tail))
        }
        return variants
    }

    private static func byteOrder(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// Decodes `application/x-www-form-urlencoded` text, keeping order and repeated names.
    public static func parseForm(_ text: String) -> [(name: String, value: String)] {
        text.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = formDecode(parts[0])
            let value = parts.count > 1 ? formDecode(parts[1]) : ""
            return (name, value)
        }
    }

    static func formDecode(_ text: Substring) -> String {
        let spaced = text.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }
}
