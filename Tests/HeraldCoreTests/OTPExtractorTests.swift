import Foundation
import HeraldCore
import HeraldTesting
import Testing

extension OTPTableRow: CustomTestStringConvertible {
    public var testDescription: String { description }

    static let table: [OTPTableRow] = {
        let path = Bundle.module.path(forResource: "otp-table", ofType: "txt", inDirectory: "Fixtures")!
        return OTPTableRow.parse((try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
    }()
}

@Suite("OTP extraction")
struct OTPExtractorTests {
    @Test("the code a person types", arguments: OTPTableRow.table)
    func extract(_ row: OTPTableRow) {
        #expect(OTPExtractor.extract(from: row.message) == row.otp, "\(row.message)")
    }

    @Test func theTableCoversWhatItMust() {
        let table = OTPTableRow.table
        #expect(table.count >= 250)
        #expect(Set(table.map(\.language)).count >= 25)
        #expect(table.filter { $0.otp == nil }.count >= 60, "messages with numbers that are not codes")
        // The eleven failure classes the finder was rebuilt for.
        for message in [
            "Happy birthday from all of us at Starbucks! Enjoy a free drink on us through 2025.",
            "Sua fatura de R$ 1.329,90 vence em 10/12. Pague pelo app ou ligue 4004-0001.",
            "Ved afbud: tlf. 35303960", "Mit nummer er skiftet til 3432343",
            "Your Signal verification code: 337-1337", "123456 - Welcome to V2EX, this code is valid for 20 minutes",
            "您正在向www（尾号4832）转账，验证码370000，100元。", "Vas overovaci kod do SPARTA iD je RW9X0E.",
            "You can also tap on this link to verify your phone: v.whatsapp.com/696948",
            "meet me at 6353 Juan Tabo, Apt. 6", "Woordle 1027 4/6",
        ] {
            #expect(table.contains { $0.message == message }, "\(message)")
        }
        #expect(table.contains { $0.message.contains("Endziffer-0000") && $0.otp == "222222" })
        #expect(table.contains { $0.message.hasPrefix("(Zalo) 8568") && $0.otp == "8568" })
    }
}

/// The finder reads only the first `OTPExtractor.scanLimit` (2,000) scalars of a message: a code
/// further down is not found, by design (codes stand at the start; the rest only costs time).
@Suite("OTP extraction on long bodies")
struct OTPLongBodyTests {
    static let filler = String(repeating: "lorem ipsum 2026 order 5555 ", count: 2500)

    @Test func aCodeAtTheStartOfALongBodyIsFound() {
        #expect(OTPExtractor.extract(from: "Your code is 918273. " + Self.filler) == "918273")
    }

    @Test func aCodeAfterTheFirst2000ScalarsIsNot() {
        #expect(OTPExtractor.extract(from: Self.filler + " Your code is 918273.") == nil)
    }

    @Test func aCodeJustInsideTheLimitIsFound() {
        let padding = String(repeating: "a", count: OTPExtractor.scanLimit - 40)
        #expect(OTPExtractor.extract(from: padding + " Your code is 918273.") == "918273")
    }

    @Test func anOriginBoundCodeOnTheLastLineOfALongBodyIsFound() {
        #expect(OTPExtractor.extract(from: Self.filler + "\n@example.com #918273") == "918273")
    }
}
