import Foundation
import HeraldCore
import HeraldServer
import HeraldSinks

/// libFuzzer targets (`make fuzz`): one binary, the target named by `HERALD_FUZZ_TARGET`. Each
/// feeds the input to one of the parsers untrusted bytes reach and checks what must always hold;
/// a broken property traps, which libFuzzer records as a crash with its input.
enum FuzzTarget: String {
    case form, finder, config, json, email

    static let selected: FuzzTarget = {
        guard let name = ProcessInfo.processInfo.environment["HERALD_FUZZ_TARGET"], let target = FuzzTarget(rawValue: name) else {
            FileHandle.standardError.write(Data("set HERALD_FUZZ_TARGET to form, finder, config, json or email\n".utf8))
            exit(2)
        }
        return target
    }()
}

/// SwiftPM links an executable's entry point as `<module>_main`; it hands control to libFuzzer's
/// driver (whose own `main` is then not linked).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("herald_fuzz_main")
public func heraldFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, fuzzOne)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    switch FuzzTarget.selected {
    case .form: FuzzChecks.form(bytes)
    case .finder: FuzzChecks.finder(bytes)
    case .config: FuzzChecks.config(bytes)
    case .json: FuzzChecks.json(bytes)
    case .email: FuzzChecks.email(bytes)
    }
    return 0
}

enum FuzzChecks {
    static let url = "https://herald.example.com/twilio/sms"

    /// The Twilio form decoder and the signature check: never crash; what is decoded, encoded
    /// again, decodes to the same fields; a signature computed over the fields verifies.
    static func form(_ bytes: UnsafeRawBufferPointer) {
        let fields = TwilioSignature.parseForm(bytes: bytes)
        let again = TwilioSignature.parseForm(FormText.encode(fields.map { ($0.name, $0.value) }))
        precondition(again.map(\.name) == fields.map(\.name) && again.map(\.value) == fields.map(\.value), "form round trip")
        let signature = TwilioSignature.compute(url: url, parameters: fields, authToken: "fuzz-token")
        precondition(TwilioSignature.isValid(signature: signature, url: url, parameters: fields, authToken: "fuzz-token"), "own signature")
        _ = TwilioSignature.isValid(signature: String(decoding: bytes.prefix(40), as: UTF8.self), url: url, parameters: fields, authToken: "fuzz-token")
    }

    /// The code finder: never crash; a code it finds in the text is 3–16 letters or digits, and
    /// an origin-bound one (`@domain #code`) 1–32 ASCII letters or digits.
    static func finder(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        if let bound = OriginBoundCode.parse(text) {
            precondition((1...32).contains(bound.code.count) && bound.code.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }, "bound \(bound.code.debugDescription)")
        }
        if let code = OTPExtractor.find(in: text) {
            precondition((3...16).contains(code.count) && code.allSatisfy { $0.isLetter || $0.isNumber }, "code \(code.debugDescription)")
        }
    }

    /// The configuration loader: any text is a configuration or a list of errors with places.
    static func config(_ bytes: UnsafeRawBufferPointer) {
        do {
            _ = try ConfigLoader.parse(String(decoding: bytes, as: UTF8.self))
        } catch let errors as ConfigErrors {
            precondition(!errors.errors.isEmpty && errors.errors.allSatisfy { $0.line >= 1 && $0.column >= 1 }, "errors without a place")
        } catch {
            preconditionFailure("an error that is not ConfigErrors: \(error)")
        }
    }

    /// The JSON source's decoder: an event or a reason, never a crash.
    static func json(_ bytes: UnsafeRawBufferPointer) {
        _ = try? InboundDecoding.json(Data(bytes))
    }

    /// The email builder: whatever the SMS says, the header block has exactly its own headers,
    /// CRLF only, and no line over 998 octets.
    static func email(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        let split = text.firstIndex(of: "\u{0}") ?? text.endIndex
        let subject = String(text[..<split]), body = split < text.endIndex ? String(text[text.index(after: split)...]) : ""
        let message = EmailMessage.build(from: "Herald <herald@example.com>", to: ["archive@example.com"], subject: subject, body: body,
                                         messageID: "fuzz@herald", date: Date(timeIntervalSince1970: 1_800_000_000))
        let all = Array(message)
        var end = 0
        while end + 3 < all.count, !(all[end] == 13 && all[end + 1] == 10 && all[end + 2] == 13 && all[end + 3] == 10) { end += 1 }
        let head = all[..<end]
        var names = 0
        var line = 0
        for (index, byte) in head.enumerated() {
            if byte == 10 { precondition(index > 0 && head[head.startIndex + index - 1] == 13, "bare LF in headers") }
            if byte == 13 { precondition(index + 1 < head.count && head[head.startIndex + index + 1] == 10, "bare CR in headers") }
            if byte == 10 { line = 0; continue }
            if line == 0, byte != 32 { names += 1 }
            line += 1
            precondition(line <= 998, "a header line over 998 octets")
        }
        precondition(names == 8, "the SMS added or removed a header: \(names)")
    }
}
