import Crypto
import Foundation

/// "Incoming SMS to URL forwarder": `X-Signature` is the lowercase hex HMAC-SHA256 of the raw
/// body, keyed with the app's secret. There is no timestamp, so a captured request can be sent
/// again; the dedupe key stores it once.
public enum SMSToURLSignature {
    public static func compute(body: some Sequence<UInt8>, secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array(body), using: SymmetricKey(data: Array(secret.utf8)))
        return Data(mac).map { String(format: "%02x", $0) }.joined()
    }

    /// sha256(from ‖ sentStamp ‖ text ‖ sim), hex, as the dedupe key (the app sends no id).
    public static func dedupeKey(from: String, sentStamp: String, text: String, sim: String) -> String {
        let digest = SHA256.hash(data: Array([from, sentStamp, text, sim].joined(separator: "\u{1F}").utf8))
        return "sha256:" + digest.map { String(format: "%02x", $0) }.joined()
    }
}
