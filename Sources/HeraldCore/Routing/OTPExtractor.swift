/// Finds the one-time code in an SMS: what a person would type.
///
/// An origin-bound code (`@example.com #123456` on the last line) is taken as it is. Otherwise
/// the finder gathers every candidate in the first `scanLimit` scalars — runs of 4–8 digits,
/// split codes (`123 456`, `337-1337`), sender-prefixed codes (`G-123456`), and alphanumeric
/// tokens (`RW9X0E`) next to a word for "code" — drops the ones that are clearly something else
/// (phone numbers and numbers after "call" words, amounts, dates, times, years, card and account
/// endings, order and reference numbers, addresses, numbers in URLs, scores), and ranks the rest by
/// their distance to a code word and by their shape. Without any code word it takes only a lone
/// six-digit code.
///
/// It works on `Unicode.Scalar`s (no regular expressions, no Foundation bridging): it runs on the
/// webhook path for every message.
public enum OTPExtractor {
    /// Codes sit near the start of a message; looking further only costs time on long bodies.
    public static let scanLimit = 2000

    public static func extract(from body: String) -> String? {
        OriginBoundCode.parse(body)?.code ?? find(in: body)
    }

    /// The finder alone, for a caller that has looked for an origin-bound code already (the router).
    public static func find(in body: String) -> String? {
        let text = Text(body)
        let keywords = Lexicon.keywordRanges(in: text)
        var numeric = numericCandidates(in: text).filter { !isExcluded($0, in: text, keywords: keywords) }
        if keywords.isEmpty {
            // No word says "code": only a lone, unmistakable six-digit code.
            numeric = numeric.filter { $0.digits.count == 6 }
            return numeric.count == 1 ? numeric[0].code : nil
        }
        let alphanumeric = alphanumericCandidates(in: text, keywords: keywords, numericFound: !numeric.isEmpty)
        let all = numeric + alphanumeric
        let best = all.max { a, b in
            let sa = score(a, keywords), sb = score(b, keywords)
            return sa != sb ? sa < sb : a.start > b.start
        }
        return best?.code
    }

    // MARK: Candidates

    struct Candidate: Equatable {
        enum Shape { case digits, split, prefixed, alphanumeric }
        var start: Int
        var end: Int
        var code: String
        var shape: Shape
        var digits: String { code.filter(\.isNumber) }
    }

    /// How good a candidate is: near a code word, and shaped like a code.
    static func score(_ candidate: Candidate, _ keywords: [Range<Int>]) -> Int {
        var score = -3 * distance(candidate.start..<candidate.end, keywords)
        switch candidate.shape {
        case .prefixed: score += 12
        case .split: score += 8
        case .alphanumeric: score += 0
        case .digits:
            switch candidate.code.count {
            case 6: score += 8
            case 5, 7, 8: score += 5
            default: score += 3
            }
        }
        // "code: 123456" is the usual order.
        if keywords.contains(where: { $0.upperBound <= candidate.start && candidate.start - $0.upperBound <= 16 }) { score += 4 }
        return score
    }

    static func numericCandidates(in text: Text) -> [Candidate] {
        var result: [Candidate] = []
        let s = text.scalars
        var i = 0
        while i < s.count {
            guard text.isDigit(i) else { i += 1; continue }
            // One cluster: digit runs joined by single separators.
            var runs: [(start: Int, end: Int)] = []
            var separators: [Unicode.Scalar] = []
            var j = i
            while true {
                let runStart = j
                while j < s.count, text.isDigit(j) { j += 1 }
                runs.append((runStart, j))
                guard j + 1 < s.count, ".,:/- ".unicodeScalars.contains(s[j]), text.isDigit(j + 1) else { break }
                separators.append(s[j])
                j += 1
            }
            defer { i = j }
            let start = runs[0].start, end = runs[runs.count - 1].end
            // Part of a word (`V2EX`, `abc123`, `123abc`), not a code.
            if start > 0, text.isASCIILetter(start - 1) { continue }
            if end < s.count, text.isASCIILetter(end) { continue }
            // Amounts, dates, times, versions, fractions: `1.329,90`, `10/12`, `12:30`, `4/6`.
            if separators.contains(where: { ".,:/".unicodeScalars.contains($0) }) { continue }
            let groups = runs.map { text.string($0.start, $0.end) }
            if groups.count == 1 {
                guard (4...8).contains(groups[0].count) else { continue }
                let prefixed = text.hasSenderPrefix(before: start)
                result.append(Candidate(start: start, end: end, code: groups[0], shape: prefixed ? .prefixed : .digits))
            } else if groups.count == 2, separators[0] == "-" || separators[0] == " ",
                      [3, 4].contains(groups[0].count), [3, 4].contains(groups[1].count) {
                result.append(Candidate(start: start, end: end, code: groups.joined(), shape: .split))
            } else if separators.allSatisfy({ $0 == " " }) {
                // Spaces also separate a code from other numbers (`code 482913 2 min`): each
                // group on its own, when the groups are not a phone number's parts.
                guard groups.count == 2 else { continue }
                // `55 1203` is a fragment of something longer; `482913 2` is a code and a count.
                for (index, run) in runs.enumerated() where (5...8).contains(groups[index].count) {
                    result.append(Candidate(start: run.start, end: run.end, code: groups[index], shape: .digits))
                }
            }
        }
        return result
    }

    /// Tokens of ASCII letters and digits with both, next to a code word. When a numeric code is
    /// there too, only a token that follows a code word (`code: X7K2QF`) competes with it, so a
    /// brand name (`V2EX`) never beats the number.
    static func alphanumericCandidates(in text: Text, keywords: [Range<Int>], numericFound: Bool) -> [Candidate] {
        var result: [Candidate] = []
        let s = text.scalars
        var i = 0
        while i < s.count {
            guard text.isASCIIAlphanumeric(i) else { i += 1; continue }
            var j = i
            var letters = 0, digits = 0, lowercase = 0
            while j < s.count, text.isASCIIAlphanumeric(j) {
                if text.isDigit(j) { digits += 1 } else { letters += 1 }
                if ("a"..."z").contains(s[j]) { lowercase += 1 }
                j += 1
            }
            defer { i = j }
            guard (4...10).contains(j - i), letters > 0, digits > 0, lowercase == 0 else { continue }
            // Glued to other letters (`V2EXabc`, `中文ABC123`) is part of something else.
            if i > 0, text.isLetter(i - 1) || s[i - 1] == "-" { continue }
            if j < s.count, text.isLetter(j) { continue }
            let range = i..<j
            let follows = keywords.contains { $0.upperBound <= range.lowerBound && range.lowerBound - $0.upperBound <= 12 }
            if numericFound ? !follows : distance(range, keywords) > 24 { continue }
            result.append(Candidate(start: i, end: j, code: text.string(i, j), shape: .alphanumeric))
        }
        return result
    }

    // MARK: Exclusions

    static func isExcluded(_ candidate: Candidate, in text: Text, keywords: [Range<Int>]) -> Bool {
        let start = candidate.start, end = candidate.end
        let before = text.previousWords(before: start, count: 3, keywords: keywords)
        let after = text.nextWords(after: end, count: 3)
        let previous = text.previousNonSpace(before: start)
        let next = text.nextNonSpace(after: end)
        // Phone numbers: `+44 …`, `(555) 201-4477`, and numbers after a word for "call".
        if let previous, previous.scalar == "+" { return true }
        if let previous, previous.scalar == ")", previous.index > 0, text.isDigit(previous.index - 1) { return true }
        if before.contains(where: { Lexicon.callWords.contains($0) }) { return true }
        // Amounts: a currency before or after.
        if let previous, Lexicon.currencySymbols.contains(previous.scalar) { return true }
        if let last = before.last, Lexicon.currencyWords.contains(last) { return true }
        if let next, Lexicon.currencySymbols.contains(next.scalar) || next.scalar == "%" { return true }
        if let first = after.first, Lexicon.currencyWords.contains(first) || Lexicon.unitWords.contains(first) { return true }
        // Order, reference, account numbers: `Order #48213`, `Bestellung 4521`, `room 4102`.
        if let previous, previous.scalar == "#" || previous.scalar == "№" { return true }
        if before.suffix(2).contains(where: { Lexicon.referenceWords.contains($0) }) { return true }
        // Card and account endings: `ending in 4821`, `Endziffer-0000`, `尾号4832`, `****1234`.
        if before.contains(where: { Lexicon.endingWords.contains($0) }) { return true }
        if text.hasEndingMarker(before: start) { return true }
        if let previous, previous.scalar == "*" || (previous.scalar == "x" || previous.scalar == "X") && previous.index == start - 1 { return true }
        // A year, unless a code word stands right before it.
        if candidate.digits.count == 4, let value = Int(candidate.digits), (1900...2099).contains(value),
           !keywords.contains(where: { $0.upperBound <= start && start - $0.upperBound <= 8 }) {
            return true
        }
        // A number inside a URL or an address: `v.whatsapp.com/696948`, `mail@1234.example`.
        if text.chunkLooksLikeURL(around: start, end) { return true }
        // A street address: `6353 Juan Tabo, Apt. 6`.
        if after.prefix(4).contains(where: { Lexicon.streetWords.contains($0) }) { return true }
        return false
    }

    // MARK: Distance

    /// Scalars between a candidate and the nearest keyword (0 when they touch or overlap).
    static func distance(_ range: Range<Int>, _ keywords: [Range<Int>]) -> Int {
        var best = Int.max
        for keyword in keywords {
            let d: Int
            if keyword.upperBound <= range.lowerBound { d = range.lowerBound - keyword.upperBound }
            else if range.upperBound <= keyword.lowerBound { d = keyword.lowerBound - range.upperBound }
            else { d = 0 }
            best = min(best, d)
        }
        return best
    }
}

extension OTPExtractor {
    /// The first `scanLimit` scalars of a message, with other scripts' digits as ASCII digits,
    /// and a lower-cased copy for word matching (same length, so offsets agree).
    struct Text {
        let scalars: [Unicode.Scalar]
        let lower: [Unicode.Scalar]

        init(_ body: String) {
            var scalars: [Unicode.Scalar] = []
            scalars.reserveCapacity(min(body.utf8.count, OTPExtractor.scanLimit))
            var lower: [Unicode.Scalar] = []
            lower.reserveCapacity(scalars.capacity)
            for scalar in body.unicodeScalars.prefix(OTPExtractor.scanLimit) {
                let folded = Self.asciiDigit(scalar) ?? scalar
                scalars.append(folded)
                lower.append(Self.lowercased(folded))
            }
            self.scalars = scalars
            self.lower = lower
        }

        /// Fullwidth, Arabic-Indic and Persian digits are typed as 0–9.
        static func asciiDigit(_ scalar: Unicode.Scalar) -> Unicode.Scalar? {
            let v = scalar.value
            let base: UInt32
            switch v {
            case 0xFF10...0xFF19: base = 0xFF10
            case 0x0660...0x0669: base = 0x0660
            case 0x06F0...0x06F9: base = 0x06F0
            default: return nil
            }
            return Unicode.Scalar(0x30 + v - base)
        }

        static func lowercased(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
            if scalar.isASCII {
                return ("A"..."Z").contains(scalar) ? Unicode.Scalar(scalar.value + 32)! : scalar
            }
            guard scalar.properties.changesWhenLowercased else { return scalar }
            let mapped = scalar.properties.lowercaseMapping.unicodeScalars
            return mapped.count == 1 ? mapped.first! : scalar
        }

        func isDigit(_ i: Int) -> Bool { ("0"..."9").contains(scalars[i]) }
        func isASCIILetter(_ i: Int) -> Bool { let c = scalars[i]; return ("a"..."z").contains(c) || ("A"..."Z").contains(c) }
        func isASCIIAlphanumeric(_ i: Int) -> Bool { isASCIILetter(i) || isDigit(i) }
        func isLetter(_ i: Int) -> Bool { scalars[i].properties.isAlphabetic && !isDigit(i) }
        func isSpace(_ i: Int) -> Bool { scalars[i].properties.isWhitespace }

        func string(_ start: Int, _ end: Int) -> String {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars[start..<end])
            return String(view)
        }

        func lowerString(_ start: Int, _ end: Int) -> String {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: lower[start..<end])
            return String(view)
        }

        /// `G-123456`, `WA-123456`: one to three capitals and a dash right before the digits.
        func hasSenderPrefix(before start: Int) -> Bool {
            guard start >= 2, scalars[start - 1] == "-" else { return false }
            var k = start - 2
            var count = 0
            while k >= 0, ("A"..."Z").contains(scalars[k]) { count += 1; k -= 1 }
            return (1...3).contains(count) && (k < 0 || !isLetter(k) && !isDigit(k))
        }

        /// Up to `count` lower-cased words before `start` (nearest last), skipping punctuation and
        /// stopping at another number or at a code word (`인증번호`, `code`).
        func previousWords(before start: Int, count: Int, keywords: [Range<Int>]) -> [String] {
            var words: [String] = []
            var k = start - 1
            var scanned = 0
            while k >= 0, words.count < count, scanned < 40 {
                if isLetter(k) {
                    let wordEnd = k + 1
                    while k >= 0, isLetter(k) { k -= 1 }
                    let range = (k + 1)..<wordEnd
                    // A code word between them ties the number to it: look no further.
                    if keywords.contains(where: { $0.overlaps(range) }) { break }
                    words.insert(lowerString(range.lowerBound, range.upperBound), at: 0)
                    scanned += range.count
                } else if isDigit(k) {
                    break
                } else {
                    k -= 1
                    scanned += 1
                }
            }
            return words
        }

        /// Up to `count` lower-cased words after `end`, skipping punctuation and spaces.
        func nextWords(after end: Int, count: Int) -> [String] {
            var words: [String] = []
            var k = end
            var scanned = 0
            while k < scalars.count, words.count < count, scanned < 40 {
                if isLetter(k) || isDigit(k) {
                    let wordStart = k
                    let digits = isDigit(k)
                    while k < scalars.count, digits ? isDigit(k) : isLetter(k) { k += 1 }
                    if !digits { words.append(lowerString(wordStart, k)) }
                    scanned += k - wordStart
                } else if Lexicon.currencySymbols.contains(scalars[k]) || scalars[k] == "%" {
                    words.append(String(Character(scalars[k])))
                    k += 1
                } else {
                    k += 1
                    scanned += 1
                }
            }
            return words
        }

        func previousNonSpace(before start: Int) -> (index: Int, scalar: Unicode.Scalar)? {
            var k = start - 1
            while k >= 0, isSpace(k) { k -= 1 }
            return k >= 0 ? (k, scalars[k]) : nil
        }

        func nextNonSpace(after end: Int) -> (index: Int, scalar: Unicode.Scalar)? {
            var k = end
            while k < scalars.count, isSpace(k) { k += 1 }
            return k < scalars.count ? (k, scalars[k]) : nil
        }

        /// An ending marker glued to the number (`尾号4832`, `末尾1234`, `Endziffer-0000`).
        func hasEndingMarker(before start: Int) -> Bool {
            for marker in Lexicon.endingMarkers where marker.count <= start {
                var k = start - 1
                // Allow a dash, colon or space between marker and number.
                while k >= 0, "-: ：".unicodeScalars.contains(scalars[k]), start - k <= 2 { k -= 1 }
                let from = k + 1 - marker.count
                guard from >= 0 else { continue }
                if Array(lower[from...k]) == marker { return true }
            }
            return false
        }

        /// The run of non-space scalars holding the number looks like a URL, a domain or an email.
        func chunkLooksLikeURL(around start: Int, _ end: Int) -> Bool {
            var a = start, b = end
            while a > 0, !isSpace(a - 1), !Lexicon.chunkBreaks.contains(scalars[a - 1]) { a -= 1 }
            while b < scalars.count, !isSpace(b), !Lexicon.chunkBreaks.contains(scalars[b]) { b += 1 }
            let chunk = lower[a..<b]
            if chunk.contains("/") || chunk.contains("@") { return true }
            // A dot between letters: `v.whatsapp.com`, `www.example`.
            for k in chunk.indices where lower[k] == "." && k > a && k + 1 < b {
                if isASCIILetter(k - 1) && isASCIILetter(k + 1) { return true }
            }
            return false
        }
    }
}
