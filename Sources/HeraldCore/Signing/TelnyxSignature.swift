import Crypto
import Foundation

/// Telnyx: `telnyx-signature-ed25519` is the base64 Ed25519 signature of `telnyx-timestamp`
/// (Unix seconds), `|`, and the raw body; the public key is the 32-byte key Telnyx shows, base64.
public enum TelnyxSignature {
    public static func isValid(signature: String, timestamp: String, body: some Sequence<UInt8>, publicKey: [UInt8]) -> Bool {
        guard let signatureBytes = Data(base64Encoded: signature), signatureBytes.count == 64,
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else { return false }
        var signed = Array(timestamp.utf8)
        signed.append(UInt8(ascii: "|"))
        signed.append(contentsOf: body)
        return key.isValidSignature(signatureBytes, for: signed)
    }
}
