import Crypto
import Foundation

/// Vonage's `sig`: every received parameter but `sig`, keys sorted by code point, concatenated as
/// `&key=value` with `&` and `=` inside values replaced by `_`; then `md5hash` = hex MD5 of that
/// string followed by the secret, or hex HMAC (MD5, SHA-1, SHA-256, SHA-512) of it keyed with the
/// secret. Compared case-insensitively (Vonage writes HMACs in upper case).
public enum VonageSignature {
    public enum Method: String, Sendable, CaseIterable {
        case md5hash, md5, sha1, sha256, sha512
    }

    public static func signedString(_ parameters: [(name: String, value: String)]) -> String {
        parameters.filter { $0.name != "sig" }
            .sorted { Array($0.name.unicodeScalars.map(\.value)).lexicographicallyPrecedes(Array($1.name.unicodeScalars.map(\.value))) }
            .map { "&" + $0.name + "=" + $0.value.replacingOccurrences(of: "&", with: "_").replacingOccurrences(of: "=", with: "_") }
            .joined()
    }

    public static func compute(_ parameters: [(name: String, value: String)], secret: String, method: Method) -> String {
        let text = Array(signedString(parameters).utf8)
        let key = SymmetricKey(data: Array(secret.utf8))
        let digest: [UInt8] = switch method {
        case .md5hash: Array(Insecure.MD5.hash(data: text + Array(secret.utf8)))
        case .md5: Array(HMAC<Insecure.MD5>.authenticationCode(for: text, using: key))
        case .sha1: Array(HMAC<Insecure.SHA1>.authenticationCode(for: text, using: key))
        case .sha256: Array(HMAC<SHA256>.authenticationCode(for: text, using: key))
        case .sha512: Array(HMAC<SHA512>.authenticationCode(for: text, using: key))
        }
        return digest.map { String(format: "%02x", $0) }.joined()
    }

    public static func isValid(sig: String, parameters: [(name: String, value: String)], secret: String, method: Method) -> Bool {
        constantTimeEquals(compute(parameters, secret: secret, method: method), sig.lowercased())
    }
}
