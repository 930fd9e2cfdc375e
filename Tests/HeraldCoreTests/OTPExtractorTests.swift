import HeraldCore
import Testing

@Suite("OTP extraction")
struct OTPExtractorTests {
    /// Realistic messages: banks, clouds, social networks, several languages; and messages that
    /// hold numbers that are not codes.
    static let messages: [(String, String?)] = [
        // Clouds and developer tools
        ("Your Amazon Web Services verification code is: 482913", "482913"),
        ("G-482913 is your Google verification code.", "482913"),
        ("Your Microsoft account security code is 7391", "7391"),
        ("Use verification code 839201 for Microsoft authentication.", "839201"),
        ("[Alibaba Cloud] Verification code: 552014. Valid for 15 minutes.", "552014"),
        ("Your Cloudflare verification code: 204 817", "204817"),
        ("GitHub authentication code: 119-334", "119334"),
        ("Your Apple ID Code is: 620418. Don't share it with anyone.", "620418"),
        ("Your Twilio verification code is: 9042", "9042"),
        ("DigitalOcean: your login code is 55102987", "55102987"),
        ("Your Okta verification code is 3481 5562", "34815562"),
        // Banks and payments
        ("Chase: Your one-time code is 84920371. Don't share it. We'll never call to ask for it. Call 1-800-935-9935 if you didn't request it.", "84920371"),
        ("Bank of America: 719283 is your authorization code to verify your identity. Never share it.", "719283"),
        ("PayPal: Your security code is: 445512. Your code expires in 10 minutes.", "445512"),
        ("Wells Fargo: Your card ending in 4821 has a $1,250.00 purchase. Your verification code is 903174.", "903174"),
        ("HSBC: Use OTP 601283 to approve a payment of GBP 2,450.00 to J SMITH.", "601283"),
        ("Revolut: your login code is 318-904. Never share it, even with Revolut staff.", "318904"),
        ("Monzo: Your PIN reset code is 5567", "5567"),
        ("Stripe verification code: 772 301", "772301"),
        // Social networks and messaging
        ("123456 is your Instagram code. Don't share it.", "123456"),
        ("Your Facebook confirmation code is 40517", "40517"),
        ("WhatsApp code 281-649. You can also tap on this link to verify your phone: v.whatsapp.com/281649", "281649"),
        ("Telegram code: 59303. Do not give this code to anyone, even if they say they are from Telegram!", "59303"),
        ("Your TikTok verification code is 918273. Verification codes help keep your account safe.", "918273"),
        ("Your Discord security code is: 703921", "703921"),
        ("Your X confirmation code is 8bfkqrfv", nil),
        ("Your Steam Guard code: F7K2Q", "F7K2Q"),
        ("Your LinkedIn verification code is 298371.", "298371"),
        ("Signal: Your code is 604 117. Do not share this code.", "604117"),
        // Other languages
        ("Tu código de verificación de Google es G-571839", "571839"),
        ("Ihr Bestätigungscode lautet: 304958", "304958"),
        ("Votre code de vérification Microsoft est 8812", "8812"),
        ("Il tuo codice di verifica è 442019", "442019"),
        ("Seu código de verificação do Nubank é 736 201", "736201"),
        ("Ваш код подтверждения: 5821", "5821"),
        ("【腾讯科技】验证码123456，5分钟内有效。", "123456"),
        ("認証コード：482019 このコードを他人に教えないでください。", "482019"),
        ("[카카오] 인증번호 [739201]를 입력해주세요.", "739201"),
        ("Din kod är 7788", "7788"),
        // No code here: phone numbers, amounts, dates, times, order numbers
        ("Your order 12345678 has shipped and will arrive on Jan 15, 2026.", nil),
        ("Call us at +1 555 123 4567 if you have questions.", nil),
        ("You paid $1234.56 to ACME Corp on 2026-01-15 at 12:30.", nil),
        ("Reminder: your appointment is on 15.01.2026 at 14:30.", nil),
        ("Order #48213 confirmed. Total: 59.99 EUR", nil),
        ("Your balance is 1500 points. Thanks for flying with us!", nil),
        ("Hey, are we still on for dinner at 7?", nil),
        ("Your package will be delivered between 10:00 and 12:00. Tracking number 1Z999AA10123456784", nil),
        ("Meeting moved to March 2026, room 4102", nil),
        ("Call (555) 201-4477 to reschedule.", nil),
    ]

    @Test("the code a person types", arguments: messages)
    func extract(_ message: String, _ expected: String?) {
        #expect(OTPExtractor.extract(from: message) == expected, "\(message)")
    }

    @Test func tableIsLargeEnough() {
        #expect(Self.messages.count >= 40)
    }
}

@Suite("OTP extraction on long bodies")
struct OTPLongBodyTests {
    @Test func onlyTheStartOfALongBodyIsScanned() {
        let filler = String(repeating: "lorem ipsum 2026 order 5555 ", count: 2500)
        #expect(OTPExtractor.extract(from: "Your code is 918273. " + filler) == "918273")
        #expect(OTPExtractor.extract(from: filler + " Your code is 918273.") == nil)
    }
}
