import Crypto
import Foundation

/// SMS Gateway for Android (capcom6): `X-Signature` is the lowercase hex HMAC-SHA256, keyed with
/// the signing key, of the raw body followed by `X-Timestamp` (Unix seconds, as sent), with no
/// separator. Checked over the bytes as received, before any JSON parsing.
public enum SMSGatewaySignature {
    public static func compute(body: some Sequence<UInt8>, timestamp: String, signingKey: String) -> String {
        var hmac = HMAC<SHA256>(key: SymmetricKey(data: Array(signingKey.utf8)))
        hmac.update(data: Array(body))
        hmac.update(data: Array(timestamp.utf8))
        return Data(hmac.finalize()).map { String(format: "%02x", $0) }.joined()
    }

    /// Constant-time; a signature in upper case is accepted too (hex is hex).
    public static func isValid(signature: String, body: some Sequence<UInt8>, timestamp: String, signingKey: String) -> Bool {
        constantTimeEquals(compute(body: body, timestamp: timestamp, signingKey: signingKey), signature.lowercased())
    }

    /// `X-Timestamp` as whole Unix seconds, or nil when it is not one.
    public static func timestamp(_ text: String) -> Date? {
        guard !text.isEmpty, text.count <= 12, text.allSatisfy(\.isASCII), let seconds = Int64(text), seconds > 0 else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(seconds))
    }
}
