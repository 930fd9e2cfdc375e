extension OTPExtractor {
    /// The words the finder knows, lower-cased. Code words come in three kinds: `anywhere` for
    /// scripts without spaces and for compounds (`Bestätigungscode`, `验证码`), `prefix` for words
    /// with endings (`verification`, `подтверждения`), `word` for short words that must stand
    /// alone (`pin`, not "shopping").
    enum Lexicon {
        enum Mode { case anywhere, prefix, word }

        static let codeWords: [(String, Mode)] = [
            // English
            ("code", .anywhere), ("otp", .word), ("passcode", .prefix), ("password", .prefix), ("pin", .word), ("token", .word),
            ("verif", .prefix), ("one-time", .prefix), ("2fa", .word), ("mfa", .word), ("authenticat", .prefix),
            // German, Dutch
            ("tan", .word), ("kennwort", .prefix), ("passwort", .prefix), ("wachtwoord", .prefix), ("bevestig", .prefix),
            // French, Spanish, Portuguese, Italian
            ("mot de passe", .prefix), ("vérif", .prefix), ("código", .prefix), ("codigo", .prefix), ("clave", .word),
            ("contraseña", .prefix), ("senha", .prefix), ("codice", .prefix), ("verifica", .prefix),
            // Danish, Norwegian, Swedish, Finnish (compounds: engangskode, verifieringskod, vahvistuskoodi)
            ("kode", .anywhere), ("kod", .anywhere), ("koodi", .anywhere), ("tunnusluku", .prefix),
            // Polish, Czech
            ("hasło", .prefix), ("weryfikac", .prefix), ("kód", .anywhere), ("ověřov", .prefix), ("overov", .prefix), ("heslo", .prefix),
            // Russian, Ukrainian
            ("код", .anywhere), ("пароль", .prefix), ("подтвержд", .prefix), ("підтвердж", .prefix),
            // Turkish
            ("doğrulama", .prefix), ("dogrulama", .prefix), ("şifre", .prefix), ("sifre", .prefix),
            // Greek
            ("κωδικ", .prefix), ("επαλήθευσ", .prefix),
            // Hebrew, Arabic, Persian
            ("קוד", .anywhere), ("סיסמ", .prefix), ("رمز", .anywhere), ("كود", .anywhere), ("التحقق", .anywhere),
            ("کد", .anywhere), ("تایید", .anywhere),
            // Hindi
            ("कोड", .anywhere), ("ओटीपी", .anywhere), ("सत्यापन", .anywhere),
            // Indonesian, Malay
            ("kata sandi", .prefix), ("verifikasi", .prefix),
            // Vietnamese, with and without diacritics
            ("mã", .word), ("ma xac nhan", .prefix), ("ma xac thuc", .prefix), ("ma kich hoat", .prefix), ("ma otp", .prefix),
            ("ma dang nhap", .prefix), ("xác nhận", .prefix), ("xác thực", .prefix),
            // Thai
            ("รหัส", .anywhere),
            // Chinese (simplified and traditional)
            ("验证码", .anywhere), ("校验码", .anywhere), ("动态码", .anywhere), ("确认码", .anywhere), ("激活码", .anywhere),
            ("驗證碼", .anywhere), ("認證碼", .anywhere), ("確認碼", .anywhere), ("動態碼", .anywhere), ("密码", .anywhere), ("密碼", .anywhere),
            // Japanese
            ("認証", .anywhere), ("確認コード", .anywhere), ("確認番号", .anywhere), ("コード", .anywhere), ("パスワード", .anywhere),
            ("暗証番号", .anywhere),
            // Korean
            ("인증", .anywhere), ("코드", .anywhere), ("비밀번호", .anywhere),
        ]

        /// A "code" that is no one-time code: `promo code`, `postcode`, `código promocional`.
        static let notCodeBefore: Set<String> = [
            "promo", "promotional", "discount", "coupon", "voucher", "gift", "zip", "postal", "post", "area", "country", "error",
            "referral", "invite", "invitation", "bar", "qr", "source", "rabatt", "gutschein", "aktions", "gift card", "dress",
        ]
        static let notCodeAfter: Set<String> = ["promocional", "promo", "promotionnel", "rabatt", "sconto", "descuento", "desconto"]

        /// Words for "call" and "phone": the number after them is a phone number.
        static let callWords: Set<String> = [
            "call", "phone", "tel", "tlf", "telefon", "telephone", "téléphone", "telefone", "teléfono", "telefono", "ligue", "ligar",
            "llame", "llama", "llamar", "appelez", "appeler", "anrufen", "rufen", "звоните", "позвоните", "телефон", "тел",
            "bel", "ring", "ringe", "hotline", "fax", "dial", "contact", "kontakt", "chiama",
            "chiamare", "zadzwoń", "volejte", "ara", "arayın", "thoai",
        ]

        static let currencySymbols: Set<Unicode.Scalar> = ["$", "€", "£", "¥", "₹", "₽", "₩", "₺", "₪", "₫", "฿", "元", "円", "원", "₴", "₦", "﷼"]
        static let currencyWords: Set<String> = [
            "usd", "eur", "gbp", "jpy", "inr", "rs", "brl", "r", "chf", "kr", "sek", "nok", "dkk", "pln", "zł", "czk", "kč", "rub",
            "руб", "грн", "uah", "try", "tl", "idr", "rp", "vnd", "đ", "thb", "aed", "sar", "ils", "cad", "aud", "mxn", "cny", "rmb",
            "yuan", "yen", "euro", "euros", "dollars", "dollar", "pesos", "reais", "rupees", "lei", "ron", "huf", "ft", "dh",
        ]
        /// Words after a number that make it a quantity.
        static let unitWords: Set<String> = [
            "points", "pts", "miles", "mb", "gb", "kb", "km", "kg", "mg", "ml", "steps", "items", "likes", "followers", "votes",
            "minutes", "mins", "seconds", "hours", "days", "minuten", "minutos", "minuti", "minut", "минут", "分钟", "件", "个",
        ]
        /// Words before a number that make it a reference, not a code.
        static let referenceWords: Set<String> = [
            "order", "ord", "no", "nr", "num", "number", "nummer", "numero", "número", "номер", "ref", "reference", "invoice",
            "ticket", "tracking", "account", "acct", "card", "karte", "konto", "flight", "booking", "pedido", "commande",
            "bestellung", "rechnung", "ordine", "заказ", "订单", "单号", "room", "apt", "suite", "extension", "ext", "id",
            "kundennummer", "rastreio", "seat", "gate", "platform", "track", "bus", "route", "line", "score", "level", "round",
            "sipariş", "siparis", "zamówienie", "objednávka", "tilaus", "ordre", "bestilling", "beställning", "bestelling",
        ]
        /// Words before a number that make it the end of a card or account number.
        static let endingWords: Set<String> = [
            "ending", "ends", "endziffer", "endziffern", "endet", "terminada", "terminado", "terminación", "terminant",
            "finissant", "eindigend", "slutter", "slutar", "kończącej", "končící", "оканчивающейся", "заканчивающейся",
            "last", "final", "finale", "末尾", "尾号", "尾號", "末四位", "后四位", "後四位",
        ]
        /// Endings glued to the words before them in scripts without spaces (`您尾号8821`); spaced
        /// ones are `endingWords`.
        static let endingMarkers: [[Unicode.Scalar]] = ["尾号", "尾號", "末尾", "后四位", "後四位"].map { Array($0.unicodeScalars) }
        /// Words after a number that make it a street address.
        static let streetWords: Set<String> = [
            "st", "street", "ave", "avenue", "rd", "road", "blvd", "boulevard", "dr", "drive", "lane", "ln", "way", "apt", "suite",
            "straße", "strasse", "str", "rue", "calle", "avenida", "rua", "via", "ulica", "ul", "gade", "vej", "gatan", "katu",
        ]
        /// What ends the run of text a number is checked for URL shapes in.
        static let chunkBreaks: Set<Unicode.Scalar> = ["(", ")", "（", "）", "，", "。", "、", "【", "】", "[", "]", "\"", "'", "«", "»", "<", ">"]

        private struct Word {
            var scalars: [Unicode.Scalar]
            var mode: Mode
        }

        /// Code words by their first scalar, longest first.
        private static let index: [Unicode.Scalar: [Word]] = {
            var index: [Unicode.Scalar: [Word]] = [:]
            for (word, mode) in codeWords {
                let scalars = Array(word.unicodeScalars)
                index[scalars[0], default: []].append(Word(scalars: scalars, mode: mode))
            }
            for key in index.keys { index[key]!.sort { $0.scalars.count > $1.scalars.count } }
            return index
        }()

        /// Where code words stand, as scalar offsets; one pass over the text.
        static func keywordRanges(in text: Text) -> [Range<Int>] {
            let lower = text.lower
            var result: [Range<Int>] = []
            var i = 0
            while i < lower.count {
                guard let words = index[lower[i]] else { i += 1; continue }
                var matched = 0
                for word in words {
                    let n = word.scalars.count
                    guard i + n <= lower.count, lower[i..<(i + n)].elementsEqual(word.scalars) else { continue }
                    let startsWord = i == 0 || !text.isLetter(i - 1)
                    let endsWord = i + n == lower.count || !text.isLetter(i + n)
                    switch word.mode {
                    case .anywhere: break
                    case .prefix: guard startsWord else { continue }
                    case .word: guard startsWord && endsWord else { continue }
                    }
                    if isNegated(i..<(i + n), in: text) { matched = n; break }
                    result.append(i..<(i + n))
                    matched = n
                    break
                }
                i += max(1, matched)
            }
            return result
        }

        /// `promo code`, `barcode`, `código promocional`: a code word that announces no code.
        private static func isNegated(_ range: Range<Int>, in text: Text) -> Bool {
            // Letters glued before it in the same word: `barcode`, `postcode`.
            var k = range.lowerBound
            while k > 0, text.isLetter(k - 1) { k -= 1 }
            if k < range.lowerBound, notCodeBefore.contains(text.lowerString(k, range.lowerBound)) { return true }
            let before = text.previousWords(before: k, count: 1, keywords: [])
            if let word = before.last, notCodeBefore.contains(word) { return true }
            var end = range.upperBound
            while end < text.scalars.count, text.isLetter(end) { end += 1 }
            if let word = text.nextWords(after: end, count: 1).first, notCodeAfter.contains(word) { return true }
            return false
        }
    }
}
