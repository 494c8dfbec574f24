import CShim
#if canImport(Glibc)
import Glibc
#endif

/// Everything needed to start one child: prepared in the parent, executed by the C child side.
public struct SpawnRequest: Sendable {
    public struct Identity: Sendable, Equatable {
        public var uid: uid_t
        public var gid: gid_t
        public var groups: [gid_t]
        public init(uid: uid_t, gid: gid_t, groups: [gid_t]) {
            self.uid = uid
            self.gid = gid
            self.groups = groups
        }
    }

    public var executable: String
    public var arguments: [String]
    public var environment: [String]
    public var workingDirectory: String?
    public var standardInput: Int32 = -1
    public var standardOutput: Int32 = -1
    public var standardError: Int32 = -1
    public var identity: Identity?
    public var newProcessGroup = false
    /// argv[0], when it should differ from the executable path (`./10-secupdate.sh`).
    public var argumentZero: String?

    /// `arguments` excludes argv[0], which is the executable path.
    public init(executable: String, arguments: [String], environment: [String], workingDirectory: String? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
    }

    /// Only the Reaper calls this, under its lock.
    func spawn() throws(LavaError) -> pid_t {
        let argv = CStringArray([argumentZero ?? executable] + arguments)
        let envp = CStringArray(environment)
        defer {
            argv.free()
            envp.free()
        }
        var pid: pid_t = 0
        var failedStep: UnsafePointer<CChar>? = nil
        let groups = identity?.groups ?? []
        let error: Int32 = groups.withUnsafeBufferPointer { groupBuffer in
            executable.withCString { path in
                (workingDirectory ?? "").withCString { cwd in
                    var attr = lava_spawn_attr()
                    attr.path = path
                    attr.argv = UnsafePointer(argv.pointer)
                    attr.envp = UnsafePointer(envp.pointer)
                    attr.cwd = workingDirectory == nil ? nil : cwd
                    attr.stdin_fd = standardInput
                    attr.stdout_fd = standardOutput
                    attr.stderr_fd = standardError
                    if let identity {
                        attr.change_ids = 1
                        attr.uid = identity.uid
                        attr.gid = identity.gid
                        attr.groups = groupBuffer.baseAddress
                        attr.group_count = groupBuffer.count
                    }
                    attr.new_process_group = newProcessGroup ? 1 : 0
                    return lava_spawn(&attr, &pid, &failedStep)
                }
            }
        }
        if error != 0 {
            let step = failedStep.map { String(cString: $0) } ?? "spawn"
            throw LavaError(.process, "cannot run \(executable): \(step): \(String(cString: strerror(error)))")
        }
        return pid
    }
}

/// A NULL-terminated `char *[]` owned until `free()`.
struct CStringArray {
    let pointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private let count: Int

    init(_ strings: [String]) {
        count = strings.count
        pointer = .allocate(capacity: strings.count + 1)
        for (index, string) in strings.enumerated() { pointer[index] = strdup(string) }
        pointer[strings.count] = nil
    }

    func free() {
        for index in 0..<count { Glibc.free(pointer[index]) }
        pointer.deallocate()
    }
}

/// Runs a child to completion, handing each line of its output (stdout and stderr together) to
/// `onLine` as it arrives.
public enum Subprocess {
    public struct Timeout: Sendable {
        public var seconds: Double
        /// After SIGTERM at the timeout, SIGKILL this much later.
        public var killAfter: Double = 10
        public init(seconds: Double, killAfter: Double = 10) {
            self.seconds = seconds
            self.killAfter = killAfter
        }
    }

    public struct Result: Sendable {
        public var status: ExitStatus
        public var timedOut: Bool
    }

    public static func run(_ request: SpawnRequest, timeout: Timeout? = nil,
                           onLine: (String) -> Void) throws(LavaError) -> Result {
        let (pid, fds) = try spawnWithPipes(request, separateStandardError: false)
        defer { fds.forEach { close($0) } }
        var pending = [UInt8]()
        let timedOut = try pump(fds, pid: pid, timeout: timeout) { _, bytes in
            pending.append(contentsOf: bytes)
            LineSplitter.emit(&pending, onLine: onLine)
        }
        if !pending.isEmpty { onLine(String(decoding: pending, as: UTF8.self)) }
        let status = Reaper.shared.wait(pid)
        return Result(status: status, timedOut: timedOut)
    }

    /// Spawns `request` in its own process group with stdout (and stderr, or a pipe of its own)
    /// on pipes; returns the pid and the read ends.
    private static func spawnWithPipes(_ request: SpawnRequest, separateStandardError: Bool) throws(LavaError) -> (pid_t, [Int32]) {
        var pipes = [[Int32]]()
        for _ in 0..<(separateStandardError ? 2 : 1) {
            var fds: [Int32] = [0, 0]
            if lava_pipe_cloexec(&fds) != 0 {
                pipes.joined().forEach { close($0) }
                throw .errno("pipe2")
            }
            pipes.append(fds)
        }
        var request = request
        request.newProcessGroup = true
        request.standardOutput = pipes[0][1]
        request.standardError = pipes[separateStandardError ? 1 : 0][1]
        let pid: pid_t
        do {
            pid = try Reaper.shared.spawn(request)
        } catch {
            pipes.joined().forEach { close($0) }
            throw error
        }
        pipes.forEach { close($0[1]) }
        return (pid, pipes.map { $0[0] })
    }

    /// Runs a child to completion, collecting its stdout whole (up to `limit` bytes) and handing
    /// its stderr line by line to `onErrorLine`. Stdout is read to its end before the child is
    /// reaped, so a full pipe can never deadlock it.
    public static func capture(_ request: SpawnRequest, timeout: Timeout, limit: Int = 1 << 20,
                               onErrorLine: (String) -> Void) throws(LavaError) -> (Result, [UInt8]) {
        let (pid, fds) = try spawnWithPipes(request, separateStandardError: true)
        defer { fds.forEach { close($0) } }
        var output = [UInt8]()
        var pendingErrors = [UInt8]()
        let timedOut = try pump(fds, pid: pid, timeout: timeout) { index, bytes in
            if index == 0 {
                if output.count < limit { output.append(contentsOf: bytes.prefix(limit - output.count)) }
            } else {
                pendingErrors.append(contentsOf: bytes)
                LineSplitter.emit(&pendingErrors, onLine: onErrorLine)
            }
        }
        if !pendingErrors.isEmpty { onErrorLine(String(decoding: pendingErrors, as: UTF8.self)) }
        return (Result(status: Reaper.shared.wait(pid), timedOut: timedOut), output)
    }

    /// Reads every fd to its end (or gives up shortly after a SIGKILL at the timeout), passing
    /// chunks to `onBytes` with the fd's index. Returns whether the timeout fired.
    static func pump(_ fds: [Int32], pid: pid_t, timeout: Timeout?,
                     onBytes: (Int, ArraySlice<UInt8>) -> Void) throws(LavaError) -> Bool {
        let start = Clock.monotonicSeconds()
        var timedOut = false
        var killAt: Double? = nil
        var abandonAt: Double? = nil
        var open = Array(fds.indices)
        var buffer = [UInt8](repeating: 0, count: 8192)
        while !open.isEmpty {
            var waitMilliseconds: Int32 = -1
            let now = Clock.monotonicSeconds()
            if let timeout, !timedOut {
                let left = timeout.seconds - (now - start)
                if left <= 0 {
                    timedOut = true
                    kill(-pid, SIGTERM)
                    killAt = now + timeout.killAfter
                } else {
                    waitMilliseconds = Int32(min(left * 1000 + 1, Double(Int32.max)))
                }
            }
            if let deadline = killAt {
                if deadline - now <= 0 {
                    kill(-pid, SIGKILL)
                    killAt = nil
                    abandonAt = now + 2
                } else {
                    waitMilliseconds = Int32((deadline - now) * 1000 + 1)
                }
            }
            if let abandonAt {
                if now >= abandonAt { break }
                waitMilliseconds = Int32((abandonAt - now) * 1000 + 1)
            }
            var pollFDs = open.map { pollfd(fd: fds[$0], events: Int16(POLLIN), revents: 0) }
            let ready = poll(&pollFDs, nfds_t(pollFDs.count), waitMilliseconds)
            if ready < 0 && errno != EINTR { throw .errno("poll") }
            if ready <= 0 { continue }
            var stillOpen = [Int]()
            for (slot, index) in open.enumerated() {
                guard pollFDs[slot].revents != 0 else {
                    stillOpen.append(index)
                    continue
                }
                let n = buffer.withUnsafeMutableBytes { read(fds[index], $0.baseAddress, $0.count) }
                if n > 0 {
                    onBytes(index, buffer[0..<n])
                    stillOpen.append(index)
                } else if n < 0 && (errno == EINTR || errno == EAGAIN) {
                    stillOpen.append(index)
                }
            }
            open = stillOpen
        }
        return timedOut
    }

}

public enum Clock {
    public static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// Sleeps, resuming after signals, for `seconds`.
    public static func sleep(seconds: Double) {
        guard seconds > 0 else { return }
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    public static func wallSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}

/// Cuts a byte stream into lines for the log: at each newline, and into pieces of at most
/// `maximumLineLength` bytes when a line runs longer.
public enum LineSplitter {
    public static let maximumLineLength = 16 * 1024

    /// Hands every complete line (or full piece) of `pending` to `onLine` and keeps the rest.
    public static func emit(_ pending: inout [UInt8], onLine: (String) -> Void) {
        var start = 0
        while true {
            // A newline within the limit ends a line; without one, a full piece goes on alone.
            let window = pending[start..<min(pending.count, start + maximumLineLength + 1)]
            if let newline = window.firstIndex(of: UInt8(ascii: "\n")) {
                onLine(String(decoding: pending[start..<newline], as: UTF8.self))
                start = newline + 1
            } else if pending.count - start >= maximumLineLength {
                onLine(String(decoding: pending[start..<start + maximumLineLength], as: UTF8.self))
                start += maximumLineLength
            } else {
                break
            }
        }
        pending.removeFirst(start)
    }
}
