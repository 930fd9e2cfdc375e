/// An origin-bound one-time code (WICG "Origin-bound one-time codes delivered via SMS"): the
/// message's last line is `@example.com #123456`, or `@example.com #123456 @embedded.example`
/// when the code is for a frame embedded in the first site. The code is then known exactly, and
/// bound to the (top-level) domain, whatever else the message says.
public struct OriginBoundCode: Sendable, Equatable {
    /// The top-level host, lower-cased.
    public var domain: String
    /// The embedded host of the second form, lower-cased.
    public var embeddedDomain: String?
    public var code: String

    public init(domain: String, embeddedDomain: String? = nil, code: String) {
        self.domain = domain
        self.embeddedDomain = embeddedDomain
        self.code = code
    }

    /// Reads the last non-empty line of `body`; nil when it is not in the format.
    public static func parse(_ body: String) -> OriginBoundCode? {
        // The last line, without its line break or trailing spaces.
        var scalars = Array(body.unicodeScalars.suffix(512))
        while let last = scalars.last, last == "\n" || last == "\r" || last == " " || last == "\t" { scalars.removeLast() }
        if let breakIndex = scalars.lastIndex(where: { $0 == "\n" || $0 == "\r" }) {
            scalars.removeSubrange(...breakIndex)
        }
        let parts = scalars.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2 || parts.count == 3 else { return nil }
        guard let domain = host(parts[0]), parts[1].first == "#" else { return nil }
        let code = parts[1].dropFirst()
        guard (1...32).contains(code.count), code.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)) }) else { return nil }
        var embedded: String?
        if parts.count == 3 {
            guard let second = host(parts[2]) else { return nil }
            embedded = second
        }
        return OriginBoundCode(domain: domain, embeddedDomain: embedded, code: String(String.UnicodeScalarView(code)))
    }

    /// `@host`: ASCII labels of letters, digits and hyphens, separated by dots.
    private static func host(_ part: ArraySlice<Unicode.Scalar>) -> String? {
        guard part.first == "@" else { return nil }
        let name = part.dropFirst()
        guard (1...253).contains(name.count), name.first != ".", name.last != ".", name.first != "-" else { return nil }
        var previous: Unicode.Scalar = "."
        for scalar in name {
            let allowed = scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "-" || scalar == ".")
            guard allowed, !(scalar == "." && previous == ".") else { return nil }
            previous = scalar
        }
        return String(String.UnicodeScalarView(name)).lowercased()
    }
}
