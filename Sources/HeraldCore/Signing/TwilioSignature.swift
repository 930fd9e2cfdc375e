import Crypto
import Foundation

/// `X-Twilio-Signature`: HMAC-SHA1 over the URL Twilio called followed by every POST parameter
/// (sorted by name in byte order, name then value, repeated names with their distinct values
/// sorted), keyed with the auth token, base64-encoded.
public enum TwilioSignature {
    public static func compute(url: String, parameters: [(name: String, value: String)], authToken: String) -> String {
        let key = SymmetricKey(data: Array(authToken.utf8))
        return signature(url: stripFragment(url), payload: payload(parameters), key: key)
    }

    /// Checks the signature against the URL as given, without its port, and with the default
    /// port added: Twilio's own libraries accept all three. Every comparison is constant-time.
    public static func isValid(
        signature: String, url: String, parameters: [(name: String, value: String)], authToken: String
    ) -> Bool {
        let key = SymmetricKey(data: Array(authToken.utf8))
        let payload = payload(parameters)
        var valid = false
        for candidate in urlVariants(stripFragment(url)) {
            let expected = Self.signature(url: candidate, payload: payload, key: key)
            // No early exit: every variant is always compared.
            valid = constantTimeEquals(expected, signature) || valid
        }
        return valid
    }

    /// The signed bytes after the URL: every parameter sorted by name in byte order, name then
    /// value, repeated names with their distinct values sorted. Built once for all URL variants.
    static func payload(_ parameters: [(name: String, value: String)]) -> [UInt8] {
        var pairs = parameters.map { (name: Array($0.name.utf8), value: Array($0.value.utf8)) }
        pairs.sort { a, b in
            a.name != b.name ? a.name.lexicographicallyPrecedes(b.name) : a.value.lexicographicallyPrecedes(b.value)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(pairs.reduce(0) { $0 + $1.name.count + $1.value.count })
        var previous: (name: [UInt8], value: [UInt8])?
        for pair in pairs {
            if let previous, previous.name == pair.name, previous.value == pair.value { continue }
            bytes += pair.name
            bytes += pair.value
            previous = pair
        }
        return bytes
    }

    private static func signature(url: String, payload: [UInt8], key: SymmetricKey) -> String {
        var hmac = HMAC<Insecure.SHA1>(key: key)
        var url = url
        url.withUTF8 { hmac.update(data: UnsafeRawBufferPointer($0)) }
        payload.withUnsafeBytes { hmac.update(data: $0) }
        return Data(hmac.finalize()).base64EncodedString()
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

    /// Decodes `application/x-www-form-urlencoded` text, keeping order and repeated names.
    public static func parseForm(_ text: String) -> [(name: String, value: String)] {
        var text = text
        return text.withUTF8 { FormDecoding.decode(UnsafeRawBufferPointer($0)) }
    }

    /// The same, straight from the request's bytes.
    public static func parseForm(bytes: UnsafeRawBufferPointer) -> [(name: String, value: String)] {
        FormDecoding.decode(bytes)
    }

    /// A Twilio message id: `SM` (SMS) or `MM` (MMS) and 32 hex digits.
    public static func isMessageSID(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 34, bytes[1] == UInt8(ascii: "M"), bytes[0] == UInt8(ascii: "S") || bytes[0] == UInt8(ascii: "M") else { return false }
        return bytes.dropFirst(2).allSatisfy { byte in
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
                || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
        }
    }
}
