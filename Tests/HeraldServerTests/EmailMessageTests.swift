import Foundation
import HeraldSinks
import Testing

/// Header lines within RFC 5322's limits (998, and 78 where the text allows) and RFC 2047's
/// (75 per encoded word), whatever the SMS put in the subject: strict servers refuse a message
/// that breaks them with 5xx, which is permanent — the archive copy would be lost.
@Suite("Email message headers")
struct EmailMessageTests {
    static func headers(subject: String, to: [String] = ["archive@example.com"]) -> [String] {
        let data = EmailMessage.build(from: "Herald <herald@example.com>", to: to, subject: subject, body: "x", messageID: "m1@herald", date: Date())
        let text = String(decoding: data, as: UTF8.self)
        return text.components(separatedBy: "\r\n\r\n")[0].components(separatedBy: "\r\n")
    }

    /// The Subject header unfolded (continuation lines joined) and its encoded words decoded.
    static func subject(_ lines: [String]) -> String {
        var value = ""
        var inSubject = false
        for line in lines {
            if line.hasPrefix("Subject: ") { inSubject = true; value = String(line.dropFirst(9)); continue }
            if inSubject, line.hasPrefix(" ") { value += line; continue }
            inSubject = false
        }
        guard value.contains("=?UTF-8?B?") else { return value }
        var bytes = Data()
        for word in value.split(separator: " ") {
            let payload = word.dropFirst("=?UTF-8?B?".count).dropLast(2)
            bytes += Data(base64Encoded: String(payload)) ?? Data()
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static let subjects: [(String, String)] = [
        ("long ASCII with spaces", (0..<120).map { "word\($0)" }.joined(separator: " ")),
        ("long ASCII without a space", String(repeating: "a1", count: 800)),
        ("long non-ASCII", String(repeating: "Código de verificación 482913 — ", count: 40)),
        ("long emoji sequences", String(repeating: "👨‍👩‍👧‍👦👩🏽‍🚀", count: 60)),
    ]

    @Test(arguments: subjects.indices)
    func headerLinesStayWithinTheLimits(_ index: Int) {
        let (why, subject) = Self.subjects[index]
        let lines = Self.headers(subject: subject)
        for line in lines {
            #expect(line.utf8.count <= 78, "\(why): a line of \(line.utf8.count) octets")
        }
        for word in lines.joined(separator: " ").split(separator: " ") where word.hasPrefix("=?") {
            #expect(word.count <= 75, "\(why): an encoded word of \(word.count)")
        }
        #expect(Self.subject(lines) == subject, "\(why): the subject reads back the same")
    }

    @Test func manyRecipientsFoldToo() {
        let to = (0..<60).map { "person\($0)@example.com" }
        for line in Self.headers(subject: "s", to: to) {
            #expect(line.utf8.count <= 998)
        }
    }
}
