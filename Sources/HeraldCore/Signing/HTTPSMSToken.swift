import Crypto
import Foundation

/// httpSMS signs its webhooks with `Authorization: Bearer <JWT>`: HS256 keyed with the webhook's
/// signing key, `iss` `api.httpsms.com`, `aud` the exact webhook URL (a list), `exp`/`nbf` ±10 min.
/// The token does not cover the body. Only HS256 is accepted (never `none` or another algorithm),
/// and the signature is compared as the canonical base64url string.
public enum HTTPSMSToken {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case malformed, algorithm, signature, issuer, audience, expired, notYetValid

        public var description: String {
            switch self {
            case .malformed: "the bearer token is not a JWT"
            case .algorithm: "the token is not HS256"
            case .signature: "wrong token signature (is signing_key the webhook's?)"
            case .issuer: "the token was not issued by api.httpsms.com"
            case .audience: "the token is for another URL (its audience must be this source's public URL)"
            case .expired: "the token has expired"
            case .notYetValid: "the token is not valid yet"
            }
        }
    }

    /// Nil when the token is good for `audience` at `now` (with `leeway` on exp and nbf).
    public static func check(_ token: String, signingKey: String, audience: String, now: Date, leeway: TimeInterval = 60) -> Failure? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerData = base64URLDecode(parts[0]), let claimsData = base64URLDecode(parts[1]),
              let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any],
              let claims = (try? JSONSerialization.jsonObject(with: claimsData)) as? [String: Any] else { return .malformed }
        guard header["alg"] as? String == "HS256" else { return .algorithm }
        let signed = Array("\(parts[0]).\(parts[1])".utf8)
        let mac = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: Array(signingKey.utf8)))
        guard constantTimeEquals(base64URLEncode(Data(mac)), String(parts[2])) else { return .signature }
        guard claims["iss"] as? String == "api.httpsms.com" else { return .issuer }
        let audiences: [String] = (claims["aud"] as? [String]) ?? ((claims["aud"] as? String).map { [$0] } ?? [])
        guard audiences.contains(audience) else { return .audience }
        guard let exp = (claims["exp"] as? NSNumber)?.doubleValue, now.timeIntervalSince1970 <= exp + leeway else { return .expired }
        if let nbf = (claims["nbf"] as? NSNumber)?.doubleValue, now.timeIntervalSince1970 + leeway < nbf { return .notYetValid }
        return nil
    }

    /// A token as httpSMS makes one (for tests and `herald sign`).
    public static func make(signingKey: String, audience: String, subject: String = "herald-test", now: Date) -> String {
        let issued = Int(now.timeIntervalSince1970)
        let header = base64URLEncode(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let claims = base64URLEncode(Data(#"{"iss":"api.httpsms.com","sub":"\#(subject)","aud":["\#(audience)"],"exp":\#(issued + 600),"nbf":\#(issued - 600),"iat":\#(issued)}"#.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(header).\(claims)".utf8), using: SymmetricKey(data: Array(signingKey.utf8)))
        return "\(header).\(claims).\(base64URLEncode(Data(mac)))"
    }

    static func base64URLEncode(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func base64URLDecode(_ text: Substring) -> Data? {
        guard !text.contains("="), text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}
