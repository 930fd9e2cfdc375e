import Crypto
import Foundation

/// Standard Webhooks signatures for outbound HTTP deliveries: `webhook-signature: v1,<base64>`,
/// HMAC-SHA256 over `{id}.{timestamp}.{body}` with the base64-decoded secret (`whsec_` dropped).
public enum StandardWebhooks {
    public static func key(fromSecret secret: String) -> SymmetricKey? {
        let encoded = secret.hasPrefix("whsec_") ? String(secret.dropFirst(6)) : secret
        guard let data = Data(base64Encoded: encoded), !data.isEmpty else { return nil }
        return SymmetricKey(data: data)
    }

    public static func signature(secret: String, id: String, timestamp: Int, body: Data) -> String? {
        guard let key = key(fromSecret: secret) else { return nil }
        var payload = Data("\(id).\(timestamp).".utf8)
        payload.append(body)
        let mac = HMAC<SHA256>.authenticationCode(for: payload, using: key)
        return "v1," + Data(mac).base64EncodedString()
    }
}
