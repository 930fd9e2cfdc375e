import Crypto
import Foundation

/// Plivo's `X-Plivo-Signature-V3` (and `-Ma-V3`): base64 HMAC-SHA256, keyed with the auth token,
/// of the URL Plivo called (scheme, host and path), `?` and its query parameters sorted (`k=v`
/// joined with `&`), `.` when there was a query, every POST parameter sorted by name as name then
/// value with no separators, `.` and the nonce (`X-Plivo-Signature-V3-Nonce`). The header may
/// hold several signatures separated by commas; any may match.
public enum PlivoSignature {
    public static func v3(url: String, parameters: [(name: String, value: String)], nonce: String, authToken: String) -> String {
        guard let components = URLComponents(string: url) else { return "" }
        var base = "\(components.scheme ?? "https")://\(components.host ?? "")"
        if let port = components.port { base += ":\(port)" }
        base += components.percentEncodedPath
        var pairs: [(name: String, value: String)] = []
        for item in components.queryItems ?? [] { pairs.append((item.name, item.value ?? "")) }
        let query = sortedPairs(pairs).map { $0.name + "=" + $0.value }.joined(separator: "&")
        var payload = base + "?" + query
        if !query.isEmpty { payload += "." }
        for pair in sortedPairs(parameters) { payload += pair.name + pair.value }
        payload += "." + nonce
        let mac = HMAC<SHA256>.authenticationCode(for: Array(payload.utf8), using: SymmetricKey(data: Array(authToken.utf8)))
        return Data(mac).base64EncodedString()
    }

    static func sortedPairs(_ pairs: [(name: String, value: String)]) -> [(name: String, value: String)] {
        pairs.sorted { a, b in a.name != b.name ? a.name < b.name : a.value < b.value }
    }

    public static func isValid(header: String, url: String, parameters: [(name: String, value: String)], nonce: String, authToken: String) -> Bool {
        let expected = v3(url: url, parameters: parameters, nonce: nonce, authToken: authToken)
        var valid = false
        for candidate in header.split(separator: ",") {
            valid = constantTimeEquals(expected, candidate.trimmingCharacters(in: .whitespaces)) || valid
        }
        return valid
    }
}
