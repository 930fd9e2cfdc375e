import Foundation
import HeraldCore
import Testing

/// Defect 11: the event's `Codable` and its hand-written JSON (the HTTP sink's body, the file
/// sink's line) are two encoders of one contract; they must say the same thing.
@Suite("Event JSON")
struct EventJSONTests {
    static let at = Date(timeIntervalSince1970: 1_800_000_123.5)

    static let events: [Event] = [
        Event(id: "evt_1", source: "twilio", sourceID: "SM0123456789abcdef0123456789abcdef", from: "+15550001111", to: "+15550002222",
              body: "Your code is 123456\n\n@aws.amazon.com #123456", otp: "123456", otpDomain: "aws.amazon.com", app: "AWS", route: "aws-root", receivedAt: at, media: ["https://api.twilio.com/m/1.jpg"]),
        Event(id: "evt_2", source: "http", sourceID: nil, from: "Bank", to: nil, body: "no code here", receivedAt: at),
        Event(id: "evt_3", source: "work-phone", sourceID: "42", from: "+4915112345678", to: nil,
              body: "quote \" backslash \\ slash / tab \t newline \n cr \r bell \u{7} nul \u{0} unit \u{1F} del \u{7F}", otp: nil, receivedAt: at),
        Event(id: "evt_4", source: "twilio", sourceID: "SM2", from: "+8613800138000", to: "+15550002222",
              body: "您的验证码是 370000 🔐 — ¡código! \u{2028}\u{2029}", otp: "370000", app: "微信", route: "cn", receivedAt: at, media: ["a", "b\"c"]),
    ]

    @Test(arguments: events)
    func theHandWrittenJSONSaysWhatCodableSays(_ event: Event) throws {
        let fast = try #require(try JSONSerialization.jsonObject(with: event.jsonData()) as? NSDictionary)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let codable = try #require(try JSONSerialization.jsonObject(with: encoder.encode(event)) as? NSDictionary)
        #expect(fast == codable)
        #expect(fast.allKeys.count == 12, "exactly the documented keys, absent values as null")
        #expect(try JSONDecoder().decode(Event.self, from: event.jsonData()) == event, "it decodes back to the same event")
    }

    @Test func keysAreSortedAndNothingIsLeftOut() throws {
        let text = String(decoding: Self.events[1].jsonData(), as: UTF8.self)
        #expect(text == #"{"app":null,"body":"no code here","from":"Bank","id":"evt_2","media":[],"otp":null,"otp_domain":null,"received_at":"2027-01-15T08:02:03.500Z","route":null,"source":"http","source_id":null,"to":null}"#)
    }
}
