import LavaSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A daemon's process group, as recorded for the next agent: its id (the daemon's pid) and the
/// leader's start time, so an id the kernel has since handed to another process is never taken
/// for it.
public struct DaemonGroup: Sendable, Equatable {
    public var id: pid_t
    public var startTime: UInt64
}

public enum ProcessTable {
    /// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks since boot.
    public static func startTime(of pid: pid_t) -> UInt64? {
        guard let text = try? Files.readText("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }

    /// Does any process still belong to `group`?
    public static func groupExists(_ group: pid_t) -> Bool {
        kill(-group, 0) == 0 || errno == EPERM
    }
}

/// `daemons` in the agent's state directory: one `GROUP START-TIME` line per daemon group that
/// may still have members, rewritten on every start and every group that ends. An agent that
/// finds the lock of one that died (SIGKILL, OOM) reads it to stop what was left running.
public struct DaemonRecords: Sendable {
    public let directory: String
    static let fileName = "daemons"

    public init(directory: String) {
        self.directory = directory
    }

    func write(_ groups: [DaemonGroup]) throws(LavaError) {
        let text = groups.map { "\($0.id) \($0.startTime)\n" }.joined()
        try Directory.open(trusted: directory).writeFileAtomically(DaemonRecords.fileName, Array(text.utf8))
    }

    func read() -> [DaemonGroup] {
        guard let handle = try? Directory.open(trusted: directory),
              let bytes = handle.readFile(DaemonRecords.fileName, limit: 1 << 20) else { return [] }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 2, let id = pid_t(fields[0]), id > 1, let start = UInt64(fields[1]) else { return nil }
            return DaemonGroup(id: id, startTime: start)
        }
    }

    /// Stops every recorded group that still runs: SIGTERM, then SIGKILL 10 s later; returns
    /// once they are gone (or the SIGKILL has been sent and 5 s more have passed).
    public func stopLeftovers(logger: Logger) {
        let alive = read().filter { group in
            guard ProcessTable.groupExists(group.id) else { return false }
            // The leader may be gone with members left; if it is there, it must be the same process.
            guard let start = ProcessTable.startTime(of: group.id) else { return true }
            return start == group.startTime
        }
        defer { try? write([]) }
        guard !alive.isEmpty else { return }
        let ids = alive.map { String($0.id) }.joined(separator: ", ")
        logger.warning("daemons of an agent that is gone are still running (process groups \(ids)); stopping them before starting any")
        alive.forEach { kill(-$0.id, SIGTERM) }
        if wait(for: alive, seconds: Supervisor.groupKillGrace) { return logger.info("they stopped") }
        logger.warning("sending SIGKILL to process groups \(ids)")
        alive.forEach { kill(-$0.id, SIGKILL) }
        _ = wait(for: alive, seconds: 5)
    }

    private func wait(for groups: [DaemonGroup], seconds: Double) -> Bool {
        let deadline = Clock.monotonicSeconds() + seconds
        while groups.contains(where: { ProcessTable.groupExists($0.id) }) {
            if Clock.monotonicSeconds() >= deadline { return false }
            Clock.sleep(seconds: 0.05)
        }
        return true
    }
}
