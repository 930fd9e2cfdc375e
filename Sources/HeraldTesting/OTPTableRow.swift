import Foundation

/// One row of the code finder's table (`Tests/HeraldCoreTests/Fixtures/otp-table.txt`), shared by
/// its tests and its micro-benchmark: `language | message | code ("-": none) | why`.
public struct OTPTableRow: Sendable, Equatable, CustomStringConvertible {
    public var language: String
    public var message: String
    public var otp: String?
    public var why: String

    /// Rows of the file's text; `#` lines and blank lines are skipped. `\n` in a message is a line break.
    public static func parse(_ text: String) -> [OTPTableRow] {
        text.split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), !line.allSatisfy(\.isWhitespace) else { return nil }
            let fields = line.split(separator: "|", maxSplits: 3, omittingEmptySubsequences: false).map { String($0) }
            guard fields.count == 4 else { return nil }
            let otp = fields[2].trimmingCharacters(in: .whitespaces)
            return OTPTableRow(
                language: fields[0].trimmingCharacters(in: .whitespaces),
                message: fields[1].replacingOccurrences(of: "\\n", with: "\n"),
                otp: otp == "-" ? nil : otp,
                why: fields[3].trimmingCharacters(in: .whitespaces)
            )
        }
    }

    public var description: String { "[\(language)] \(why)" }
}
