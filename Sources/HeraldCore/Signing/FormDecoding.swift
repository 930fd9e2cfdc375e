/// `application/x-www-form-urlencoded` over bytes: `+` is a space, `%XX` a byte, pairs split on
/// `&` and `=`. A component whose decoded bytes are not UTF-8 is kept as it was written.
enum FormDecoding {
    static func decode(_ bytes: UnsafeRawBufferPointer) -> [(name: String, value: String)] {
        var result: [(name: String, value: String)] = []
        var scratch: [UInt8] = []
        scratch.reserveCapacity(bytes.count)
        var start = 0
        while start <= bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "&") { end += 1 }
            if end > start {
                var equals = start
                while equals < end, bytes[equals] != UInt8(ascii: "=") { equals += 1 }
                let name = component(bytes, start, equals, &scratch)
                let value = equals < end ? component(bytes, equals + 1, end, &scratch) : ""
                result.append((name, value))
            }
            start = end + 1
        }
        return result
    }

    private static func component(_ bytes: UnsafeRawBufferPointer, _ from: Int, _ to: Int, _ scratch: inout [UInt8]) -> String {
        scratch.removeAll(keepingCapacity: true)
        var i = from
        var plain = true
        while i < to {
            let byte = bytes[i]
            if byte == UInt8(ascii: "+") {
                scratch.append(0x20)
                plain = false
            } else if byte == UInt8(ascii: "%"), let high = hex(bytes, i + 1, to), let low = hex(bytes, i + 2, to) {
                scratch.append(high << 4 | low)
                plain = false
                i += 2
            } else {
                scratch.append(byte)
            }
            i += 1
        }
        if plain { return String(decoding: scratch, as: UTF8.self) }
        if let text = String(validating: scratch, as: UTF8.self) { return text }
        // Not UTF-8 once decoded: the text as it was sent, with `+` read as a space.
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[from..<to]), as: UTF8.self).replacing("+", with: " ")
    }

    private static func hex(_ bytes: UnsafeRawBufferPointer, _ i: Int, _ to: Int) -> UInt8? {
        guard i < to else { return nil }
        switch bytes[i] {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return bytes[i] - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return bytes[i] - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return bytes[i] - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
