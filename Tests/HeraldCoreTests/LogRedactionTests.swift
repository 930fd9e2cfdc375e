import Foundation
@testable import HeraldCore
import Testing

/// A receiver's error that echoes the SMS, in whatever syntax it echoes it, leaves no code or text
/// in the log.
@Suite("Log redaction")
struct LogRedactionTests {
    static let event = Event(id: "evt_1", source: "twilio", sourceID: nil, from: "+15551234567", to: "+15005550006",
                             body: "Your \"Acme\" code is 482913\nDon't share it & <never> forward", otp: "482913", receivedAt: Date())

    static let echoes: [(String, String)] = [
        ("as sent", "rejected: Your \"Acme\" code is 482913\nDon't share it & <never> forward"),
        ("JSON-escaped", #"{"error":"bad text: Your \"Acme\" code is 482913\nDon't share it & <never> forward"}"#),
        ("URL-encoded", "invalid Body=Your%20%22Acme%22%20code%20is%20482913%0ADon%27t%20share%20it%20%26%20%3Cnever%3E%20forward"),
        ("form-encoded with +", "invalid Body=Your+%22Acme%22+code+is+482913%0ADon%27t+share+it+%26+%3Cnever%3E+forward"),
        ("HTML-escaped", "<p>Your &quot;Acme&quot; code is 482913\nDon&#39;t share it &amp; &lt;never&gt; forward</p>"),
        ("one line of it", "first line was: Your \"Acme\" code is 482913"),
        ("the code with a dash", "code 482-913 rejected"),
        ("the code with a space", "code 482 913 rejected"),
        ("the code with dots", "code 48.29.13 rejected"),
        ("the from number URL-encoded", "From=%2B15551234567 unknown"),
    ]

    @Test(arguments: echoes.indices)
    func echoesAreRedacted(_ index: Int) {
        let (why, echo) = Self.echoes[index]
        let redacted = LogRedaction.redact(echo, event: Self.event)
        for secret in ["482913", "482-913", "482 913", "48.29.13", "Acme", "share it", "15551234567"] {
            #expect(!redacted.contains(secret), "\(why): \(redacted)")
        }
    }

    @Test func unrelatedTextStays() {
        #expect(LogRedaction.redact("HTTP 500: upstream timeout after 30s", event: Self.event) == "HTTP 500: upstream timeout after 30s")
        #expect(LogRedaction.redactCode("482913", in: "ref 4 8 2 9 1 3, not 48291 or 482  913") == "ref <redacted>, not 48291 or 482  913",
                "one separator between two of its digits, not two")
    }
}
