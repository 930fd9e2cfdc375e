import Crypto
import Foundation

/// SmsForwarder (pppscn): `sign` is base64(HMAC-SHA256(secret, "<timestamp>\n<secret>")), then
/// URL-encoded — and in the app's default form mode encoded twice. Only the timestamp (in
/// milliseconds) is signed, never the body, so a valid pair is a short-lived bearer token: Herald
/// also requires a `token`, and the timestamp window.
public enum SmsForwarderSignature {
    public static func compute(timestamp: String, secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(timestamp)\n\(secret)".utf8), using: SymmetricKey(data: Array(secret.utf8)))
        return Data(mac).base64EncodedString()
    }

    /// `sign` as received (after ordinary form or query decoding), percent-decoded until no `%`
    /// is left (base64 has none), compared in constant time.
    public static func isValid(sign: String, timestamp: String, secret: String) -> Bool {
        var decoded = sign
        for _ in 0..<3 where decoded.contains("%") {
            guard let once = decoded.removingPercentEncoding else { return false }
            decoded = once
        }
        return constantTimeEquals(compute(timestamp: timestamp, secret: secret), decoded)
    }
}
