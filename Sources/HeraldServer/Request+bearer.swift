import Foundation
import HTTPTypes
import HeraldCore
import Hummingbird

extension Request {
    /// True when `Authorization: Bearer <token>` carries `token` (compared in constant time).
    func hasBearerToken(_ token: Secret) -> Bool {
        guard let value = headers[.authorization], value.lowercased().hasPrefix("bearer ") else { return false }
        return constantTimeEquals(String(value.dropFirst(7)).trimmingCharacters(in: .whitespaces), token.value)
    }
}
