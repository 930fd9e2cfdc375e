import Foundation

/// Time-ordered identifiers: a prefix, 12 hex digits of Unix milliseconds, then 16 random hex
/// digits. They sort by creation time, which keeps "newest first" listings cheap in any store.
public enum Identifier {
    public static func make(_ prefix: String, at date: Date = Date()) -> String {
        let millis = UInt64(min(max(0, date.timeIntervalSince1970 * 1000), 2.8e14))
        let time = String(millis, radix: 16)
        let padded = String(repeating: "0", count: max(0, 12 - time.count)) + time
        let random = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        return prefix + "_" + padded + String(repeating: "0", count: 16 - random.count) + random
    }
}
