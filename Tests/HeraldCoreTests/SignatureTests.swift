import Foundation
import HeraldCore
import Testing

@Suite("Twilio and Standard Webhooks signatures")
struct SignatureTests {
    static func params(_ text: String) -> [(name: String, value: String)] {
        text.split(separator: " ").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1)
            return (String(parts[0]), String(parts[1]))
        }
    }

    static let t1Params = params("CallSid=CA1234567890ABCDE Caller=+14158675310 Digits=1234 From=+14158675310 To=+18005551212")
    static let t3Params = params("CallSid=CA1234567890ABCDE Caller=+14158675309 Digits=1234 From=+14158675309 To=+18005551212")
    static let t3URL = "https://mycompany.com/myapp.php?foo=1&bar=2"

    @Test func t1() {
        let url = "https://example.com/myapp.php?foo=1&bar=2"
        #expect(TwilioSignature.compute(url: url, parameters: Self.t1Params, authToken: "12345") == "L/OH5YylLD5NRKLltdqwSvS0BnU=")
        #expect(TwilioSignature.isValid(signature: "L/OH5YylLD5NRKLltdqwSvS0BnU=", url: url, parameters: Self.t1Params, authToken: "12345"))
    }

    @Test func t3() {
        #expect(TwilioSignature.compute(url: Self.t3URL, parameters: Self.t3Params, authToken: "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        #expect(TwilioSignature.isValid(signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=", url: Self.t3URL, parameters: Self.t3Params, authToken: "12345"))
    }

    @Test func t3SignedWithDefaultPortValidatesWithoutPort() {
        #expect(TwilioSignature.isValid(signature: "kvajT1Ptam85bY51eRf/AJRuM3w=", url: Self.t3URL, parameters: Self.t3Params, authToken: "12345"))
    }

    @Test func t3SignedWithoutPortValidatesWhenServerKnowsThePort() {
        let withPort = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
        #expect(TwilioSignature.isValid(signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=", url: withPort, parameters: Self.t3Params, authToken: "12345"))
        #expect(TwilioSignature.isValid(signature: "kvajT1Ptam85bY51eRf/AJRuM3w=", url: withPort, parameters: Self.t3Params, authToken: "12345"))
    }

    @Test func fragmentIsDropped() {
        let url = Self.t3URL + "#rc=3&rp=all"
        #expect(TwilioSignature.isValid(signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=", url: url, parameters: Self.t3Params, authToken: "12345"))
    }

    @Test func t5Get() {
        let url = "https://relay.example.com/twilio/sms?To=%2B15005550006&From=%2B14155550100&Body=hi+there&MessageSid=SM44444444444444444444444444444444"
        #expect(TwilioSignature.compute(url: url, parameters: [], authToken: "12345") == "Y5ar5Af40DxqFcqN56RU2+IN80A=")
        #expect(TwilioSignature.isValid(signature: "Y5ar5Af40DxqFcqN56RU2+IN80A=", url: url, parameters: [], authToken: "12345"))
    }

    @Test func t6RepeatedNames() {
        let parameters = Self.params("Sid=CA123 SidAccount=AC123 Digits=5678 Digits=1234")
        #expect(TwilioSignature.compute(url: Self.t3URL, parameters: parameters, authToken: "12345") == "IK+Dwps556ElfBT0I3Rgjkr1wJU=")
    }

    @Test func t7JSONBodyHash() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        #expect(TwilioSignature.compute(url: url, parameters: [], authToken: "12345") == "a9nBmqA0ju/hNViExpshrM61xv4=")
    }

    @Test func negativeChecks() {
        #expect(!TwilioSignature.isValid(signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=", url: Self.t3URL, parameters: Self.t3Params, authToken: "54321"))
        var changed = Self.t3Params
        changed[2] = ("Digits", "9999")
        #expect(!TwilioSignature.isValid(signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=", url: Self.t3URL, parameters: changed, authToken: "12345"))
        #expect(!TwilioSignature.isValid(signature: "", url: Self.t3URL, parameters: Self.t3Params, authToken: "12345"))
        #expect(!TwilioSignature.isValid(signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=", url: "https://mycompany.com/other.php?foo=1&bar=2", parameters: Self.t3Params, authToken: "12345"))
    }

    @Test func byteOrderSortsUppercaseFirst() {
        // "Zeta" < "alpha" in byte order; a locale-aware sort would put alpha first.
        let a = TwilioSignature.compute(url: "https://x.test/", parameters: [("alpha", "1"), ("Zeta", "2")], authToken: "k")
        let b = TwilioSignature.compute(url: "https://x.test/", parameters: [("Zeta", "2"), ("alpha", "1")], authToken: "k")
        #expect(a == b)
        let manual = TwilioSignature.compute(url: "https://x.test/Zeta2alpha1", parameters: [], authToken: "k")
        #expect(a == manual)
    }

    @Test func formParsingKeepsRepeatedNamesAndDecodes() {
        let form = TwilioSignature.parseForm("Body=Your+code+is+123%20456&From=%2B15551234567&MediaUrl0=a&Digits=1&Digits=2")
        #expect(form.map(\.name) == ["Body", "From", "MediaUrl0", "Digits", "Digits"])
        #expect(form[0].value == "Your code is 123 456")
        #expect(form[1].value == "+15551234567")
    }

    @Test("form decoding over bytes", arguments: [
        ("a=1&b=2", [("a", "1"), ("b", "2")]),
        ("Body=x%3Dy%26z&To=", [("Body", "x=y&z"), ("To", "")]),
        ("a=b=c", [("a", "b=c")]),
        ("flag&x=1", [("flag", ""), ("x", "1")]),
        ("&&a=1&", [("a", "1")]),
        ("p=100%25+sure", [("p", "100% sure")]),
        ("p=50%", [("p", "50%")]),
        ("p=%zz%2", [("p", "%zz%2")]),
        ("p=%E2%9C%88%EF%B8%8F", [("p", "✈️")]),
        ("p=caf%C3%A9", [("p", "café")]),
        ("p=%FF%FE+x", [("p", "%FF%FE x")]),
        ("", []),
    ] as [(String, [(String, String)])])
    func formDecoding(_ text: String, _ expected: [(String, String)]) {
        let decoded = TwilioSignature.parseForm(text)
        #expect(decoded.map(\.name) == expected.map(\.0))
        #expect(decoded.map(\.value) == expected.map(\.1))
    }

    @Test func repeatedIdenticalPairsAreSignedOnce() {
        let once = TwilioSignature.compute(url: "https://x.test/", parameters: [("a", "1"), ("b", "2")], authToken: "t")
        let twice = TwilioSignature.compute(url: "https://x.test/", parameters: [("b", "2"), ("a", "1"), ("a", "1")], authToken: "t")
        #expect(once == twice)
    }

    @Test func standardWebhooksVector() {
        let signature = StandardWebhooks.signature(
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp: 1_614_265_330, body: Data(#"{"test": 2432232314}"#.utf8)
        )
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        #expect(StandardWebhooks.signature(secret: "whsec_!!!", id: "x", timestamp: 1, body: Data()) == nil)
    }

    @Test func constantTimeComparison() {
        #expect(constantTimeEquals("abc", "abc"))
        #expect(!constantTimeEquals("abc", "abd"))
        #expect(!constantTimeEquals("abc", "abcd"))
        #expect(!constantTimeEquals("", "a"))
    }
}
