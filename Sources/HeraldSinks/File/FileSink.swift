import Foundation
import HeraldCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Appends the event as one JSON line to a file (JSON Lines). Each line goes out in a single
/// `write` on a file opened with `O_APPEND`, so concurrent deliveries never interleave.
/// The file is created readable by its owner only: it holds codes.
public struct FileSink: Sink {
    public let name: String
    public let path: String

    public init(name: String, settings: FileSinkSettings) {
        self.name = name
        self.path = settings.path
    }

    public func deliver(_ request: DeliveryRequest) async -> DeliveryOutcome {
        var data = request.event.jsonData()
        data.append(0x0A)
        let (line, path) = (data, self.path)
        // open and write block their thread (a slow disk, an NFS mount): off the cooperative pool.
        return await Blocking.run {
            do {
                try Self.append(line, to: path)
                return .delivered(detail: "appended to \(path)")
            } catch {
                return .retry(after: nil, reason: "\(error)")
            }
        }
    }

    struct WriteError: Error, CustomStringConvertible {
        var description: String
    }

    static func append(_ data: Data, to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw WriteError(description: "cannot create the folder \(directory)")
            }
        }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw WriteError(description: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let written = data.withUnsafeBytes { buffer in
            write(fd, buffer.baseAddress, buffer.count)
        }
        guard written == data.count else {
            throw WriteError(description: "cannot write to \(path): \(written < 0 ? String(cString: strerror(errno)) : "short write")")
        }
    }
}
