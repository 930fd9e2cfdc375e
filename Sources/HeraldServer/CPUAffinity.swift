import Foundation

/// How many CPUs this process may run on: its affinity mask (`taskset`, a cpuset), which NIO
/// does not read when it sizes its event loop group (it reads the machine's cores or a cgroup's
/// CPU quota).
public enum CPUAffinity {
    /// From `Cpus_allowed` in `/proc/self/status`; nil where the system does not say.
    public static func usableCount() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        return count(fromStatus: status)
    }

    /// The CPUs in a `/proc/PID/status` text's `Cpus_allowed:` mask (hex, in comma-separated
    /// 32-bit groups: `3`, `ff,ffffffff`); nil without one or with an empty mask.
    public static func count(fromStatus status: String) -> Int? {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") }) else { return nil }
        var count = 0
        for character in line.dropFirst("Cpus_allowed:".count) where !character.isWhitespace && character != "," {
            guard let digit = character.hexDigitValue else { return nil }
            count += digit.nonzeroBitCount
        }
        return count > 0 ? count : nil
    }
}
