import Foundation
import HeraldCore
import Logging
import Synchronization

/// One line per log entry, as logfmt (`ts=… level=info msg="event received" event.id=…`) or as a
/// JSON object, with the entry's metadata under its dotted keys.
public struct HeraldLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable {
        case logfmt, json
    }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let label: String
    let format: Format
    let write: @Sendable (String) -> Void

    public init(label: String, format: Format, level: Logger.Level, write: @escaping @Sendable (String) -> Void = HeraldLogHandler.standardError) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.write = write
    }

    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data(line.utf8))
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        let flat = fields.map { ($0.key, "\($0.value)") }.sorted { $0.0 < $1.0 }
        let time = RFC3339.string(from: Date())
        switch format {
        case .logfmt:
            var line = "ts=\(time) level=\(event.level.rawValue) msg=\(Self.logfmtValue("\(event.message)"))"
            for (key, value) in flat { line += " \(key)=\(Self.logfmtValue(value))" }
            write(line + "\n")
        case .json:
            var line = "{\"ts\":\"\(time)\",\"level\":\"\(event.level.rawValue)\",\"msg\":\"\(JSONText.escape("\(event.message)"))\""
            for (key, value) in flat { line += ",\"\(JSONText.escape(key))\":\"\(JSONText.escape(value))\"" }
            write(line + "}\n")
        }
    }

    /// A logfmt value: bare when it can be, else quoted with `\\`, `\"`, `\n`, `\r`, `\t` and every
    /// other control character escaped, so no value can start a line of its own or hide one.
    static func logfmtValue(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.unicodeScalars.contains {
            $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\\" || isControl($0) || $0.properties.isWhitespace
        }
        guard needsQuotes else { return value }
        let escaped = TextEscaping.replacingScalars(value, needsWork: { _ in true }) { scalar in
            switch scalar {
            case "\\": "\\\\"
            case "\"": "\\\""
            case "\n": "\\n"
            case "\r": "\\r"
            case "\t": "\\t"
            case _ where isControl(scalar) || scalar == "\u{2028}" || scalar == "\u{2029}": String(format: "\\u%04x", scalar.value)
            default: nil
            }
        }
        return "\"" + escaped + "\""
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F..<0xA0).contains(scalar.value)
    }
}

/// Keeps every log line in memory (tests).
public final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    public init() {}

    public var text: String { lines.withLock { $0.joined() } }

    public func logger(format: HeraldLogHandler.Format = .logfmt, level: Logger.Level = .trace) -> Logger {
        Logger(label: "herald") { label in
            HeraldLogHandler(label: label, format: format, level: level) { [self] line in self.lines.withLock { $0.append(line) } }
        }
    }
}
