import Foundation

/// Finds the one-time code in an SMS: what a person would type.
///
/// Candidates are numeric clusters (`123456`, `123-456`, `123 456`, `G-123456`) and, right next
/// to a keyword, alphanumeric codes (`Code: X7K2QF`). Clusters shaped like phone numbers, amounts,
/// dates, times and reference numbers are dropped. When the text names a code (`code`, `OTP`,
/// `PIN`, `código`, `код`, `验证码`, …) the candidate nearest to such a word wins; without one, a
/// lone numeric candidate of 4–8 digits is taken.
public enum OTPExtractor {
    /// Codes sit near the start of a message; looking further only costs time on long bodies.
    static let scanLimit = 2000

    public static func extract(from body: String) -> String? {
        let text = String(body.prefix(scanLimit))
        let keywords = keywordRanges(in: text)
        var candidates = numericCandidates(in: text)
        if !keywords.isEmpty {
            candidates += alphanumericCandidates(in: text, keywords: keywords)
        }
        candidates = candidates.filter { !isExcluded($0, in: text) }
        guard !candidates.isEmpty else { return nil }
        if keywords.isEmpty {
            let numeric = candidates.filter { $0.kind != .alphanumeric }
            return numeric.count == 1 ? numeric[0].code : nil
        }
        let best = candidates.min { a, b in
            let da = distance(a.offsets(in: text), keywords), db = distance(b.offsets(in: text), keywords)
            return da != db ? da < db : a.range.lowerBound < b.range.lowerBound
        }
        return best?.code
    }

    // MARK: Candidates

    struct Candidate {
        enum Kind { case digits, split, prefixed, alphanumeric }
        var range: Range<String.Index>
        var code: String
        var kind: Kind

        /// UTF-16 offsets, for cheap distance arithmetic.
        func offsets(in text: String) -> Range<Int> {
            let nsRange = NSRange(range, in: text)
            return nsRange.location..<(nsRange.location + nsRange.length)
        }
    }

    private static let cluster = try! NSRegularExpression(pattern: "\\d+(?:[-.,:/]\\d+)*")
    private static let spaced = try! NSRegularExpression(pattern: "(?<![\\d+])(\\d{3} \\d{3}|\\d{4} \\d{4})(?![\\d]| \\d)")
    private static let alphanumeric = try! NSRegularExpression(pattern: "(?<![A-Za-z0-9])(?=[A-Z0-9]*[0-9])(?=[A-Z0-9]*[A-Z])[A-Z0-9]{4,10}(?![A-Za-z0-9])")

    static func numericCandidates(in text: String) -> [Candidate] {
        var result: [Candidate] = []
        var taken: [Range<String.Index>] = []
        for match in matches(spaced, in: text) {
            result.append(Candidate(range: match, code: text[match].filter(\.isNumber), kind: .split))
            taken.append(match)
        }
        for match in matches(cluster, in: text) where !taken.contains(where: { $0.overlaps(match) }) {
            let cluster = text[match]
            let groups = cluster.split(whereSeparator: { !$0.isNumber })
            let separators = cluster.filter { !$0.isNumber }
            // An adjacent Latin letter (`abc123`, `123abc`) makes it part of a word, not a code.
            // Scripts without spaces (`验证码123456`) put codes right next to letters.
            if let before = text[..<match.lowerBound].last, before.isASCII && (before.isLetter || before == "_") { continue }
            if let after = text[match.upperBound...].first, after.isASCII && (after.isLetter || after == "_") { continue }
            if groups.count == 1, (4...8).contains(groups[0].count) {
                result.append(Candidate(range: match, code: String(groups[0]), kind: prefixedBy(text, match) ? .prefixed : .digits))
            } else if groups.count == 2, separators == "-",
                      (groups[0].count == 3 && groups[1].count == 3) || (groups[0].count == 4 && groups[1].count == 4) {
                result.append(Candidate(range: match, code: groups.joined(), kind: .split))
            }
        }
        // Sender prefixes: `G-123456` is typed as `123456`.
        for (index, candidate) in result.enumerated() where candidate.kind == .digits {
            if prefixedBy(text, candidate.range) { result[index].kind = .prefixed }
        }
        return result
    }

    /// `G-` or `WA-` right before the digits.
    private static func prefixedBy(_ text: String, _ range: Range<String.Index>) -> Bool {
        let before = text[..<range.lowerBound]
        guard before.last == "-" else { return false }
        let letters = before.dropLast().reversed().prefix { $0.isASCII && $0.isUppercase }
        guard (1...3).contains(letters.count) else { return false }
        let preceding = before.dropLast(letters.count + 1).last
        return preceding == nil || !(preceding!.isLetter || preceding!.isNumber)
    }

    static func alphanumericCandidates(in text: String, keywords: [Range<Int>]) -> [Candidate] {
        matches(alphanumeric, in: text).compactMap { range in
            // Only right next to a keyword: "code: X7K2QF", "X7K2QF is your code".
            let nsRange = NSRange(range, in: text)
            guard distance(nsRange.location..<(nsRange.location + nsRange.length), keywords) <= 12 else { return nil }
            let code = String(text[range])
            if code.allSatisfy(\.isNumber) { return nil }
            return Candidate(range: range, code: code, kind: .alphanumeric)
        }
    }

    // MARK: Exclusions

    private static let referenceWords = [
        "order", "ord", "no", "nr", "num", "number", "ref", "reference", "invoice", "ticket", "tracking",
        "account", "acct", "card", "ending", "flight", "booking", "pedido", "commande", "bestellung",
        "rechnung", "ordine", "заказ", "订单", "room", "apt", "suite", "extension", "ext",
    ]
    private static let unitsAfter = [
        "%", "usd", "eur", "gbp", "jpy", "inr", "brl", "chf", "sek", "kr", "€", "$", "£", "¥", "₹",
        "points", "pts", "miles", "mb", "gb", "kb", "km", "kg", "mg", "ml", "steps", "items",
        "руб", "₽", "円", "元",
    ]
    private static let currencyBefore = ["$", "€", "£", "¥", "₹", "₽", "usd", "eur", "gbp", "rs", "rs.", "inr", "r$", "brl", "chf", "kr", "sek"]
    private static let months = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
        "january", "february", "march", "april", "june", "july", "august", "september", "october", "november", "december",
    ]

    static func isExcluded(_ candidate: Candidate, in text: String) -> Bool {
        if candidate.kind == .alphanumeric { return false }
        let before = text[..<candidate.range.lowerBound]
        let after = text[candidate.range.upperBound...]
        // Part of a longer number: `+1 555 123 4567`, `+44 7700 900123`.
        if before.last == "+" { return true }
        if before.hasSuffix(" ") || before.hasSuffix("-") {
            let previousGroup = before.dropLast().reversed().prefix(while: \.isNumber)
            if previousGroup.count >= 2 { return true }
        }
        if after.hasPrefix(" ") || after.hasPrefix("-") {
            let nextGroup = after.dropFirst().prefix(while: \.isNumber)
            if nextGroup.count >= 2 { return true }
        }
        if before.hasSuffix(")") || before.hasSuffix(") ") { return true }  // (555) 1234567
        // Currency and units: `$1234`, `1234 USD`, `1500 points`.
        let beforeWords = words(before.suffix(24))
        if let last = beforeWords.last, currencyBefore.contains(last) { return true }
        if before.last.map({ "$€£¥₹₽#№".contains($0) }) == true { return true }
        let trimmedAfter = after.drop { $0 == " " }
        if let next = trimmedAfter.first, "%€$£¥₹₽円元".contains(next) { return true }
        if let nextWord = words(after.prefix(16)).first, unitsAfter.contains(nextWord) { return true }
        // Reference numbers: `Order 12345678`, `Order No. 4521`, `ending in 4821`.
        for word in beforeWords.suffix(2) where referenceWords.contains(word) { return true }
        // Years next to a month: `Jan 15, 2026`, `15 March 2026`.
        if candidate.kind == .digits, candidate.code.count == 4, candidate.code.hasPrefix("19") || candidate.code.hasPrefix("20") {
            let around = beforeWords.suffix(3) + words(after.prefix(12)).prefix(1)
            if around.contains(where: { months.contains($0) }) { return true }
        }
        return false
    }

    private static func words(_ text: Substring) -> [String] {
        text.lowercased().split { !($0.isLetter || $0 == "." || "$€£¥₹₽".contains($0)) }
            .map { $0.trimmingCharacters(in: CharacterSet(charactersIn: ".")) }
            .filter { !$0.isEmpty }
    }

    // MARK: Keywords

    /// Words that announce a code, lower-cased; matched as substrings, so `Bestätigungscode` and
    /// `verification` count.
    private static let keywords = [
        "code", "otp", "passcode", "password", "pin", "token", "verif", "one-time", "one time", "2fa", "mfa",
        "login", "log in", "sign in", "sign-in", "authenticat", "security", "confirm", "tan",
        "código", "codigo", "kode", "kod", "koden", "codice", "clave", "contraseña", "senha", "mot de passe",
        "код", "пароль", "验证码", "驗證碼", "校验码", "动态码", "認証", "確認コード", "인증", "코드", "رمز", "קוד",
    ]

    /// All keywords in one case-insensitive pattern, longest first so `koden` wins over `kod`:
    /// one pass over the text instead of one search per keyword.
    private static let keywordPattern: NSRegularExpression = {
        let alternatives = keywords.sorted { $0.count > $1.count }.map(NSRegularExpression.escapedPattern(for:))
        return try! NSRegularExpression(pattern: alternatives.joined(separator: "|"), options: [.caseInsensitive])
    }()

    /// Where keywords stand, as UTF-16 offsets.
    static func keywordRanges(in text: String) -> [Range<Int>] {
        let ns = text as NSString
        var result: [Range<Int>] = []
        for match in keywordPattern.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
            let found = match.range
            let end = found.location + found.length
            // Short Latin keywords must stand alone: "pin" not in "shopping", "tan" not in "important".
            if found.length <= 3, isLatinLetter(ns, found.location) {
                if isLatinLetter(ns, found.location - 1) || isLatinLetter(ns, end) { continue }
            }
            result.append(found.location..<end)
        }
        return result
    }

    private static func isLatinLetter(_ ns: NSString, _ index: Int) -> Bool {
        guard index >= 0, index < ns.length else { return false }
        let unit = ns.character(at: index)
        return (unit >= 0x41 && unit <= 0x5A) || (unit >= 0x61 && unit <= 0x7A) || (unit >= 0xC0 && unit <= 0x24F)
    }

    /// UTF-16 units between a candidate and the nearest keyword (0 when they touch or overlap).
    static func distance(_ range: Range<Int>, _ keywords: [Range<Int>]) -> Int {
        keywords.map { keyword in
            if keyword.upperBound <= range.lowerBound { return range.lowerBound - keyword.upperBound }
            if range.upperBound <= keyword.lowerBound { return keyword.lowerBound - range.upperBound }
            return 0
        }.min() ?? Int.max
    }

    private static func matches(_ regex: NSRegularExpression, in text: String) -> [Range<String.Index>] {
        regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { Range($0.range, in: text) }
    }
}
