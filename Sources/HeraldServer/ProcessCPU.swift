import Foundation
import HeraldCore

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

/// Sets the scheduling policy of every thread of this process (`server.cpu_scheduling`). Threads
/// started later inherit it from the thread that starts them, so this runs once, early in
/// `herald serve`, before the event loops and the database queue exist.
public enum ThreadScheduling {
    /// Linux's `SCHED_BATCH` and `SCHED_OTHER` (`sched.h` names the first only with `_GNU_SOURCE`).
    static let batchPolicy: Int32 = 3
    static let normalPolicy: Int32 = 0

    /// Returns the threads that could not be changed (none, normally: a process may switch
    /// itself between these two policies without privileges).
    @discardableResult
    public static func apply(_ scheduling: CPUScheduling) -> [Int32] {
        #if os(Linux)
        let policy = scheduling == .batch ? batchPolicy : normalPolicy
        let threads = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []).compactMap { Int32($0) }
        var failed: [Int32] = []
        for thread in threads {
            var parameters = sched_param(sched_priority: 0)
            if sched_setscheduler(thread, policy, &parameters) != 0, errno != ESRCH { failed.append(thread) }
        }
        return failed
        #else
        return []
        #endif
    }

    /// The policy of each of this process's threads (field 41 of `/proc/self/task/TID/stat`).
    public static func policies(ofProcess pid: Int32 = getpid()) -> [Int32] {
        let folder = "/proc/\(pid)/task"
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).compactMap { thread in
            guard let stat = try? String(contentsOfFile: "\(folder)/\(thread)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            // Fields after the command name (which may hold spaces) start at field 3.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 38 ? Int32(fields[38]) : nil
        }
    }
}
