import Foundation
import HeraldCore
import HeraldSinks
import Testing

@Suite("Named sources: signatures (PROTOCOLS vectors) and configuration")
struct SourceSignatureTests {
    /// PROTOCOLS.md A1's vector: the body as the app sends it (Gson escapes the apostrophe).
    static let body = #"{"id":"Ey6ECgOkVVFjz3CL48B8C","webhookId":"LreFUt-Z3sSq0JufY9uWB","event":"sms:received","deviceId":"ffffffffceb0b1db0000018e937c815b","payload":{"message":"Your code is 123456. Don\u0027t share it.","receivedAt":"2024-06-22T15:46:11.000+07:00","messageId":"7c2a91f0","sender":"+15551234567","recipient":"+15557654321","simNumber":1,"phoneNumber":"+15551234567"}}"#
    static let signature = "a4ac07f21c686f7d76753178246026117a9253bd4ab785f921d433654dd2419f"

    @Test func theAppsVectorAndItsNegatives() {
        let body = Array(Self.body.utf8)
        #expect(SMSGatewaySignature.compute(body: body, timestamp: "1719046000", signingKey: "kY3pZ9qR") == Self.signature)
        #expect(SMSGatewaySignature.isValid(signature: Self.signature, body: body, timestamp: "1719046000", signingKey: "kY3pZ9qR"))
        #expect(SMSGatewaySignature.isValid(signature: Self.signature.uppercased(), body: body, timestamp: "1719046000", signingKey: "kY3pZ9qR"))
        let changed = Array(Self.body.replacingOccurrences(of: "123456", with: "123457").utf8)
        #expect(!SMSGatewaySignature.isValid(signature: Self.signature, body: changed, timestamp: "1719046000", signingKey: "kY3pZ9qR"), "body changed")
        #expect(!SMSGatewaySignature.isValid(signature: Self.signature, body: body, timestamp: "1719046001", signingKey: "kY3pZ9qR"), "timestamp changed")
        #expect(!SMSGatewaySignature.isValid(signature: Self.signature, body: body, timestamp: "1719046000", signingKey: "kY3pZ9qS"), "another key")
        #expect(!SMSGatewaySignature.isValid(signature: "", body: body, timestamp: "1719046000", signingKey: "kY3pZ9qR"))
    }

    /// PROTOCOLS.md A5's vector (an Ed25519 key made for it) and its negatives.
    static let telnyxBody = #"{"data":{"event_type":"message.received","id":"b301ed3f-1490-491f-995f-6e64e69674d4","occurred_at":"2024-06-22T08:46:40.000+00:00","payload":{"direction":"inbound","encoding":"GSM-7","from":{"carrier":"T-Mobile USA","line_type":"Wireless","phone_number":"+15551234567"},"id":"84cca175-9755-4859-b67f-4730d7f58aa3","media":[],"messaging_profile_id":"740572b6-099c-44a1-89b9-6c92163bc68d","parts":1,"received_at":"2024-06-22T08:46:39.000+00:00","record_type":"message","text":"Your code is 123456","to":[{"carrier":"Telnyx","line_type":"Wireless","phone_number":"+15557654321","status":"webhook_delivered"}],"type":"SMS"},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://herald.example.com/hooks/telnyx"}}"#
    static let telnyxKey = Array(Data(base64Encoded: "7HfuTGHHP/ZqrJHCKY7IHJ0h1S0/6FC9iZ8xAB8lQ9Q=")!)
    static let telnyxSignature = "98zUOCX005fNe2LtXN3F9fjTdu2ki0NLjAwESVYJ84ZqCHWeeqdopF1wB7wd67tu/4L5uhducTydmpPoMKYbCA=="

    @Test func telnyxVectorAndItsNegatives() {
        let body = Array(Self.telnyxBody.utf8)
        #expect(TelnyxSignature.isValid(signature: Self.telnyxSignature, timestamp: "1719046000", body: body, publicKey: Self.telnyxKey))
        let changed = Array(Self.telnyxBody.replacingOccurrences(of: "123456", with: "123457").utf8)
        #expect(!TelnyxSignature.isValid(signature: Self.telnyxSignature, timestamp: "1719046000", body: changed, publicKey: Self.telnyxKey), "body changed")
        #expect(!TelnyxSignature.isValid(signature: Self.telnyxSignature, timestamp: "1719046001", body: body, publicKey: Self.telnyxKey), "timestamp changed")
        var otherKey = Self.telnyxKey
        otherKey[0] ^= 1
        #expect(!TelnyxSignature.isValid(signature: Self.telnyxSignature, timestamp: "1719046000", body: body, publicKey: otherKey), "another key")
        #expect(!TelnyxSignature.isValid(signature: "not base64!", timestamp: "1719046000", body: body, publicKey: Self.telnyxKey))
        #expect(!TelnyxSignature.isValid(signature: String(Self.telnyxSignature.dropLast(4)), timestamp: "1719046000", body: body, publicKey: Self.telnyxKey))
    }

    /// PROTOCOLS.md A3's vector (httpSMS's JWT) and its negatives, at the vector's own time.
    static let httpsmsToken = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJhcGkuaHR0cHNtcy5jb20iLCJzdWIiOiJYdEFCejZ6ZGVGTW9CTG9sdHo2U1JFRHZSU2gyIiwiYXVkIjpbImh0dHBzOi8vaGVyYWxkLmV4YW1wbGUuY29tL2hvb2tzL2h0dHBzbXMiXSwiZXhwIjoxNzE5MDQ2NjAwLCJuYmYiOjE3MTkwNDU0MDAsImlhdCI6MTcxOTA0NjAwMH0.RQogJnVSyQZElShFlnESFwffciFf8SlUlUPwS5gbzNo"

    @Test func httpsmsVectorAndItsNegatives() {
        let key = "httpsms-signing-key-0001"
        let url = "https://herald.example.com/hooks/httpsms"
        let at = Date(timeIntervalSince1970: 1_719_046_000)
        #expect(HTTPSMSToken.check(Self.httpsmsToken, signingKey: key, audience: url, now: at) == nil)
        #expect(HTTPSMSToken.check(String(Self.httpsmsToken.dropLast()) + "p", signingKey: key, audience: url, now: at) == .signature, "last character changed")
        #expect(HTTPSMSToken.check(Self.httpsmsToken, signingKey: key + "x", audience: url, now: at) == .signature)
        #expect(HTTPSMSToken.check(Self.httpsmsToken, signingKey: key, audience: "https://herald.example.com/hooks/other", now: at) == .audience)
        #expect(HTTPSMSToken.check(Self.httpsmsToken, signingKey: key, audience: url, now: at.addingTimeInterval(661)) == .expired)
        #expect(HTTPSMSToken.check(Self.httpsmsToken, signingKey: key, audience: url, now: at.addingTimeInterval(-661)) == .notYetValid)
        // exp changed in the claims: the signature no longer matches.
        let parts = Self.httpsmsToken.split(separator: ".").map(String.init)
        let claims = String(decoding: Data(base64Encoded: parts[1] + "=")!, as: UTF8.self).replacingOccurrences(of: "1719046600", with: "1719049600")
        let forged = parts[0] + "." + Data(claims.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_") + "." + parts[2]
        #expect(HTTPSMSToken.check(forged, signingKey: key, audience: url, now: at) == .signature)
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + parts[1] + "."
        #expect(HTTPSMSToken.check(none, signingKey: key, audience: url, now: at) == .algorithm, "alg none is refused")
        #expect(HTTPSMSToken.check("not-a-jwt", signingKey: key, audience: url, now: at) == .malformed)
        #expect(HTTPSMSToken.check(HTTPSMSToken.make(signingKey: key, audience: url, now: at), signingKey: key, audience: url, now: at) == nil, "make and check agree")
    }

    /// PROTOCOLS.md A4's vector ("Incoming SMS to URL forwarder", the signed version).
    static let smsToURLBody = "{\n  \"from\":\"+15551234567\",\n  \"text\":\"Your code is 123456\",\n  \"sentStamp\":1719046000000,\n  \"receivedStamp\":1719046001234,\n  \"sim\":\"sim1\"\n}"

    @Test func smsToURLVectorAndItsNegative() {
        #expect(SMSToURLSignature.compute(body: Array(Self.smsToURLBody.utf8), secret: "is2u-secret-key") == "00799135f73398def8f3db1ce4d9972ebf6f825b0332e53a344a06f2b9e137f7")
        #expect(SMSToURLSignature.compute(body: Array(Self.smsToURLBody.replacingOccurrences(of: "123456", with: "123457").utf8), secret: "is2u-secret-key")
                != "00799135f73398def8f3db1ce4d9972ebf6f825b0332e53a344a06f2b9e137f7")
        #expect(SMSToURLSignature.dedupeKey(from: "+1555", sentStamp: "1", text: "a", sim: "sim1") != SMSToURLSignature.dedupeKey(from: "+1555", sentStamp: "1", text: "a", sim: "sim2"))
    }

    @Test func smsToURLNeedsAProofAndSaysWhatEachProofLacks() throws {
        #expect(Self.errors("sources:\n  old-phone: { type: sms-to-url }\n" + Self.routes).contains { $0.message.contains("needs a `token`") && $0.line == 2 })
        let tokenOnly = try ConfigLoader.parse("sources:\n  old-phone: { type: sms-to-url, token: t0k }\n" + Self.routes)
        #expect(tokenOnly.warnings.contains { $0.contains("the body is not signed") })
        let signed = try ConfigLoader.parse("sources:\n  new-phone: { type: sms-to-url, signing_key: s3c }\n" + Self.routes)
        #expect(signed.warnings.contains { $0.contains("can be sent again") })
    }

    /// PROTOCOLS.md A2's vector (SmsForwarder): the sign as sent in JSON (encoded once) and as it
    /// arrives in the default form mode (encoded twice, so still encoded once after form decoding).
    @Test func smsForwarderVectorAndItsNegatives() {
        #expect(SmsForwarderSignature.compute(timestamp: "1719046000123", secret: "SECherald-test") == "C2+cTL9ZNFqqKFQ/8WnZtc2i+7TGOJMWSUswwwVd3Ss=")
        for sign in ["C2+cTL9ZNFqqKFQ/8WnZtc2i+7TGOJMWSUswwwVd3Ss=", "C2%2BcTL9ZNFqqKFQ%2F8WnZtc2i%2B7TGOJMWSUswwwVd3Ss%3D", "C2%252BcTL9ZNFqqKFQ%252F8WnZtc2i%252B7TGOJMWSUswwwVd3Ss%253D"] {
            #expect(SmsForwarderSignature.isValid(sign: sign, timestamp: "1719046000123", secret: "SECherald-test"), "\(sign)")
        }
        #expect(!SmsForwarderSignature.isValid(sign: "C2%2BcTL9ZNFqqKFQ%2F8WnZtc2i%2B7TGOJMWSUswwwVd3Ss%3D", timestamp: "1719046000124", secret: "SECherald-test"))
        #expect(!SmsForwarderSignature.isValid(sign: "C2%2BcTL9ZNFqqKFQ%2F8WnZtc2i%2B7TGOJMWSUswwwVd3Ss%3D", timestamp: "1719046000123", secret: "other"))
        #expect(Self.errors("sources:\n  cn-phone: { type: smsforwarder, secret: s }\n" + Self.routes).contains { $0.message.contains("needs a `token` too") && $0.line == 2 },
                "the body is unsigned: a token is required")
    }

    /// PROTOCOLS.md A7's own vector (Plivo V3) and its negative.
    static let plivoForm: [(name: String, value: String)] = [
        ("From", "15551234567"), ("To", "15557654321"), ("Text", "Your code is 123456"), ("Type", "sms"),
        ("MessageUUID", "2b0fc1f6-3a4e-11ef-9a5b-0242ac110002"), ("Units", "1"), ("TotalRate", "0.00000"), ("TotalAmount", "0.00000"),
        ("MessageIntent", ""), ("PowerpackUUID", ""),
    ]

    @Test func plivoVectorAndItsNegative() {
        let url = "https://herald.example.com/hooks/plivo?tenant=acme"
        let token = "MjQ0YWE1ZGQ0NzY3ZjQ3NzE0ZWQ5MjBhNGVmNDA0"
        #expect(PlivoSignature.v3(url: url, parameters: Self.plivoForm, nonce: "05429567804466091622", authToken: token) == "TV1sNFx1im45aWkyWoKanSfS1u3P6L5GRRqZxoeP6Ug=")
        #expect(PlivoSignature.isValid(header: "bm90LWl0, TV1sNFx1im45aWkyWoKanSfS1u3P6L5GRRqZxoeP6Ug=", url: url, parameters: Self.plivoForm, nonce: "05429567804466091622", authToken: token),
                "any of several signatures")
        var changed = Self.plivoForm
        changed[2].value = "Your code is 123457"
        #expect(!PlivoSignature.isValid(header: "TV1sNFx1im45aWkyWoKanSfS1u3P6L5GRRqZxoeP6Ug=", url: url, parameters: changed, nonce: "05429567804466091622", authToken: token))
        #expect(!PlivoSignature.isValid(header: "TV1sNFx1im45aWkyWoKanSfS1u3P6L5GRRqZxoeP6Ug=", url: "https://herald.example.com/hooks/plivo", parameters: Self.plivoForm,
                                        nonce: "05429567804466091622", authToken: token), "the query is signed")
    }

    /// PROTOCOLS.md A6: Vonage's own dataset and our vector (a value with `&` and `=`).
    @Test func vonageVectorsAndTheirNegative() {
        let sdk: [(name: String, value: String)] = [("message-timestamp", "2013-11-21 15:27:30"), ("messageId", "020000001B0FE827"), ("msisdn", "14843472194"),
                                                    ("text", "Test again"), ("timestamp", "1385047698"), ("to", "13239877404"), ("type", "text")]
        #expect(VonageSignature.compute(sdk, secret: "my_secret_key_for_testing", method: .md5hash) == "d2e7b1dc968737c5998ad624e02f90b7")
        #expect(VonageSignature.isValid(sig: "DDB8397C2B90AAC7F3882D306475C9A5058C92322EEF43C92B298B6E0FC0D330", parameters: sdk, secret: "my_secret_key_for_testing", method: .sha256))
        var ours: [(name: String, value: String)] = [
            ("msisdn", "447700900001"), ("to", "447700900000"), ("messageId", "0A0000000123ABCD"), ("text", "Code=123456 & ignore"), ("type", "text"),
            ("keyword", "CODE=123456"), ("message-timestamp", "2024-06-22 08:46:40"), ("timestamp", "1719046000"), ("nonce", "a2f7c1d0-5e6b-4c1a-9f3e-2b7d8c9e0f11"),
            ("concat", "true"), ("concat-ref", "1"), ("concat-total", "2"), ("concat-part", "1"),
        ]
        #expect(VonageSignature.signedString(ours) == "&concat=true&concat-part=1&concat-ref=1&concat-total=2&keyword=CODE_123456&message-timestamp=2024-06-22 08:46:40&messageId=0A0000000123ABCD&msisdn=447700900001&nonce=a2f7c1d0-5e6b-4c1a-9f3e-2b7d8c9e0f11&text=Code_123456 _ ignore&timestamp=1719046000&to=447700900000&type=text")
        #expect(VonageSignature.compute(ours, secret: "herald-vonage-sig-secret", method: .md5hash) == "33e5d8d353abf07a5d1b5acd66cfcd3c")
        #expect(VonageSignature.isValid(sig: "FC742E0EC376AAC8F0E05D17EF745CD40BFEAA5021FFFDB9D8358EFDEB79D289", parameters: ours + [("sig", "ignored")], secret: "herald-vonage-sig-secret", method: .sha256),
                "sig itself is not signed; upper case accepted")
        ours[3].value = "Code=123457 & ignore"
        #expect(!VonageSignature.isValid(sig: "33e5d8d353abf07a5d1b5acd66cfcd3c", parameters: ours, secret: "herald-vonage-sig-secret", method: .md5hash))
    }

    @Test func timestampsAreWholeUnixSeconds() {
        #expect(SMSGatewaySignature.timestamp("1719046000") == Date(timeIntervalSince1970: 1_719_046_000))
        for bad in ["", "-5", "0", "1719046000.5", "17190460000000000", "1719046000 ", "١٧١٩"] {
            #expect(SMSGatewaySignature.timestamp(bad) == nil, "\(bad)")
        }
    }

    static func errors(_ yaml: String) -> [ConfigError] {
        do {
            _ = try ConfigLoader.parse(yaml)
            return []
        } catch let errors as ConfigErrors {
            return errors.errors
        } catch {
            return []
        }
    }

    static let routes = "sinks: { inbox: { type: file, path: inbox.jsonl } }\nroutes: [ { deliver: [inbox] } ]\n"

    @Test func twoPhonesAreTwoSourcesWithTheirOwnPaths() throws {
        let config = try ConfigLoader.parse("""
            sources:
              my-phone: { type: sms-gateway, signing_key: key-one }
              work-phone: { type: sms-gateway, signing_key: key-two, path: /phones/work, max_skew: 2m }
            \(Self.routes)
            """)
        #expect(config.sources.smsGateways.map(\.name) == ["my-phone", "work-phone"])
        #expect(config.sources.smsGateways.map(\.path) == ["/sources/my-phone", "/phones/work"])
        #expect(config.sources.smsGateways.map(\.maxSkew) == [.seconds(300), .seconds(120)])
        #expect(config.sources.smsGateways.first?.signingKey.description == "<secret>")
        #expect(config.sources.names == ["my-phone", "work-phone"])
        let twoAccounts = try ConfigLoader.parse("sources:\n  twilio: { auth_token: a }\n  work: { type: twilio, auth_token: b }\n" + Self.routes)
        #expect(twoAccounts.sources.names == ["twilio", "work"])
        #expect(twoAccounts.sources.named.map(\.path) == ["/sources/work"])
        let byName = try ConfigLoader.parse("sources:\n  sms-gateway: { signing_key: k }\n" + Self.routes)
        #expect(byName.sources.smsGateways.map(\.name) == ["sms-gateway"], "the type defaults to the name")
    }

    static let broken: [(yaml: String, line: Int, column: Int, message: String)] = [
        ("sources:\n  phone: { type: sms-gateway }\n", 2, 10, "sources.phone needs a `signing_key`"),
        ("sources:\n  phone: { type: sms-gateway, signing_key: \"\" }\n", 2, 44, "sources.phone.signing_key is empty"),
        ("sources:\n  phone: { type: pager, signing_key: k }\n", 2, 18, "unknown source type 'pager'; expected one of twilio, http, sms-gateway"),
        ("sources:\n  tx: { type: telnyx }\n", 2, 7, "sources.tx needs a `public_key`"),
        ("sources:\n  hs: { type: httpsms, signing_key: k }\n", 2, 7, "sources.hs (httpsms) needs server.public_url"),
        ("sources:\n  pl: { type: plivo }\n", 2, 7, "sources.pl needs the Plivo account's `auth_token`"),
        ("sources:\n  vg: { type: vonage }\n", 2, 7, "sources.vg (vonage) needs a `signature_secret`"),
        ("sources:\n  vg: { type: vonage, signature_secret: s, signature_method: sha3 }\n", 2, 62, "signature_method must be one of md5hash, md5, sha1, sha256, sha512"),
        ("sources:\n  fw: { type: smsforwarder, token: t }\n", 2, 7, "sources.fw needs the `secret`"),
        ("sources:\n  tx: { type: telnyx, public_key: bm90LWEta2V5 }\n", 2, 35, "must be the base64 of a 32-byte Ed25519 key"),
        ("sources:\n  Phone_1: { type: sms-gateway, signing_key: k }\n", 2, 3, "source name 'Phone_1' must be lower-case letters, digits and dashes"),
        ("sources:\n  a: { type: sms-gateway, signing_key: k, path: /x }\n  b: { type: sms-gateway, signing_key: k, path: /x }\n", 3, 49, "sources.b.path '/x' is also the path of sources.a"),
        ("sources:\n  phone: { type: sms-gateway, signing_key: k, sigining: x }\n", 2, 47, "unknown key 'sigining' in sources.phone"),
    ]

    @Test(arguments: broken.indices)
    func brokenSourcesAreReportedAtTheirPlace(_ index: Int) {
        let row = Self.broken[index]
        let errors = Self.errors(row.yaml + Self.routes)
        let match = errors.first { $0.message.contains(row.message) }
        #expect(match != nil, "no error says \(row.message); got \(errors)")
        #expect(match?.line == row.line, "\(errors)")
        #expect(match?.column == row.column, "\(errors)")
    }

    @Test func theSigningKeyNeverAppearsInAnError() {
        let errors = Self.errors("sources:\n  phone: { type: sms-gateway, signing_key: hunter2-key, path: nope }\n" + Self.routes)
        #expect(!errors.isEmpty)
        #expect(!errors.map(\.description).joined().contains("hunter2-key"))
    }
}
