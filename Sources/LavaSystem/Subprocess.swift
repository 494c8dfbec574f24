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
        /// The `cancel` descriptor became readable and the child was stopped for it.
        public var cancelled = false
    }

    /// Runs a child until it exits, handing its output (stdout and stderr) to `onLine` line by
    /// line. The child is done when its own process exits: output of anything it left running
    /// is read for at most `lingering` seconds more, never waited for, then drained unread (see
    /// `Leftovers`). At the timeout, or once `cancel` becomes readable, its process group gets
    /// SIGTERM, then SIGKILL `killAfter` later, even when the child itself is gone by then.
    public static func run(_ request: SpawnRequest, timeout: Timeout? = nil, cancel: Int32? = nil, lingering: Double = 1,
                           onLine: (String) -> Void) throws(LavaError) -> Result {
        let child = try ChildProcess(request, separateStandardError: false)
        var pending = [UInt8]()
        let result = try child.pump(timeout: timeout, cancel: cancel, lingering: lingering) { _, bytes in
            pending.append(contentsOf: bytes)
            LineSplitter.emit(&pending, onLine: onLine)
        }
        if !pending.isEmpty { onLine(String(decoding: pending, as: UTF8.self)) }
        return result
    }

    /// Runs a child to completion, collecting its stdout whole (up to `limit` bytes) and handing
    /// its stderr line by line to `onErrorLine`. Stdout is read to its end (as the SDKs do for
    /// `credential_process`), within the timeout.
    public static func capture(_ request: SpawnRequest, timeout: Timeout, limit: Int = 1 << 20,
                               onErrorLine: (String) -> Void) throws(LavaError) -> (Result, [UInt8]) {
        let child = try ChildProcess(request, separateStandardError: true)
        var output = [UInt8]()
        var pendingErrors = [UInt8]()
        let result = try child.pump(timeout: timeout, cancel: nil, lingering: nil) { index, bytes in
            if index == 0 {
                if output.count < limit { output.append(contentsOf: bytes.prefix(limit - output.count)) }
            } else {
                pendingErrors.append(contentsOf: bytes)
                LineSplitter.emit(&pendingErrors, onLine: onErrorLine)
            }
        }
        if !pendingErrors.isEmpty { onErrorLine(String(decoding: pendingErrors, as: UTF8.self)) }
        return (result, output)
    }
}

/// A child in its own process group with its output on pipes, and a pipe that turns readable
/// when the Reaper has its exit status: so one poll() sees output, the exit and a cancel.
private final class ChildProcess {
    let pid: pid_t
    private var outputs: [Int32]
    private let exitPipe: (read: Int32, write: Int32)
    private let status = SharedValue<ExitStatus>()

    init(_ request: SpawnRequest, separateStandardError: Bool) throws(LavaError) {
        var created = [Int32]()
        func pipe() throws(LavaError) -> (Int32, Int32) {
            var fds: [Int32] = [0, 0]
            if lava_pipe_cloexec(&fds) != 0 {
                created.forEach { close($0) }
                throw .errno("pipe2")
            }
            created += fds
            return (fds[0], fds[1])
        }
        exitPipe = try pipe()
        let standardOutput = try pipe()
        let standardError = separateStandardError ? try pipe() : standardOutput
        var request = request
        request.newProcessGroup = true
        request.standardOutput = standardOutput.1
        request.standardError = standardError.1
        let box = status, notify = exitPipe.write
        do {
            pid = try Reaper.shared.spawn(request) { exit in
                box.set(exit)
                var byte: UInt8 = 1
                _ = write(notify, &byte, 1)
            }
        } catch {
            created.forEach { close($0) }
            throw error
        }
        close(standardOutput.1)
        if separateStandardError { close(standardError.1) }
        outputs = separateStandardError ? [standardOutput.0, standardError.0] : [standardOutput.0]
    }

    deinit {
        // An output not at its end is held by something the child left running: drained, not closed.
        for fd in outputs where fd >= 0 { Leftovers.shared.drain(fd) }
        close(exitPipe.read)
        close(exitPipe.write)
    }

    /// Reads the outputs, passing chunks with the output's index, until the child has exited
    /// and its outputs are at their end, or `lingering` seconds after its exit (nil: read to
    /// the end). Stops the group at the timeout or the cancel, and gives up on the outputs 2 s
    /// after a SIGKILL. Returns once the child is reaped; a group SIGKILL not yet due then is
    /// left to `Leftovers`, so what ignores the SIGTERM still ends at its time.
    func pump(timeout: Subprocess.Timeout?, cancel: Int32?, lingering: Double?,
              onBytes: (Int, ArraySlice<UInt8>) -> Void) throws(LavaError) -> Subprocess.Result {
        let start = Clock.monotonicSeconds()
        var timedOut = false, cancelled = false
        var killAt: Double? = nil
        var abandonAt: Double? = nil
        var open = Array(outputs.indices)
        var buffer = [UInt8](repeating: 0, count: 8192)
        func stop(_ now: Double, killAfter: Double) {
            kill(-pid, SIGTERM)
            killAt = now + killAfter
        }
        while true {
            let exited = status.value != nil
            let now = Clock.monotonicSeconds()
            if exited {
                if open.isEmpty { break }
                if let lingering, abandonAt == nil { abandonAt = now + lingering }
            }
            var deadlines = [Double]()
            if let timeout, !timedOut, !cancelled, !exited {
                if now - start >= timeout.seconds {
                    timedOut = true
                    stop(now, killAfter: timeout.killAfter)
                } else {
                    deadlines.append(start + timeout.seconds)
                }
            }
            if let deadline = killAt {
                if now >= deadline {
                    kill(-pid, SIGKILL)
                    killAt = nil
                    abandonAt = min(abandonAt ?? .infinity, now + 2)
                } else {
                    deadlines.append(deadline)
                }
            }
            if let abandonAt {
                if now >= abandonAt {
                    if exited { break }
                    open = []  // keep waiting for the exit alone
                } else {
                    deadlines.append(abandonAt)
                }
            }
            var pollFDs = [pollfd(fd: exitPipe.read, events: Int16(POLLIN), revents: 0)]
            let watchCancel = cancel != nil && !cancelled && !timedOut && !exited
            if watchCancel { pollFDs.append(pollfd(fd: cancel!, events: Int16(POLLIN), revents: 0)) }
            let first = pollFDs.count
            pollFDs += open.map { pollfd(fd: outputs[$0], events: Int16(POLLIN), revents: 0) }
            let wait = deadlines.min().map { Int32(min(Double(Int32.max), max(0, ($0 - now) * 1000 + 1))) } ?? -1
            let ready = poll(&pollFDs, nfds_t(pollFDs.count), wait)
            if ready < 0 {
                if errno == EINTR { continue }
                let error = LavaError.errno("poll")
                kill(-pid, SIGKILL)
                var byte: UInt8 = 0
                while status.value == nil && read(exitPipe.read, &byte, 1) < 0 && errno == EINTR {}
                throw error
            }
            if ready == 0 { continue }
            if watchCancel && pollFDs[1].revents != 0 {
                cancelled = true
                stop(Clock.monotonicSeconds(), killAfter: timeout?.killAfter ?? 10)
            }
            var stillOpen = [Int]()
            for (slot, index) in open.enumerated() {
                guard pollFDs[first + slot].revents != 0 else {
                    stillOpen.append(index)
                    continue
                }
                let n = buffer.withUnsafeMutableBytes { read(outputs[index], $0.baseAddress, $0.count) }
                if n > 0 {
                    onBytes(index, buffer[0..<n])
                    stillOpen.append(index)
                } else if n < 0 && (errno == EINTR || errno == EAGAIN) {
                    stillOpen.append(index)
                } else {
                    close(outputs[index])
                    outputs[index] = -1
                }
            }
            open = stillOpen
        }
        if let killAt { Leftovers.shared.kill(group: pid, at: killAt) }
        return Subprocess.Result(status: status.value!, timedOut: timedOut, cancelled: cancelled)
    }
}

public enum Clock {
    public static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// Sleeps for `seconds`, or until `cancel` turns readable (true then); without `cancel`, the
    /// whole time.
    public static func sleep(seconds: Double, unless cancel: Int32?) -> Bool {
        guard let cancel else {
            sleep(seconds: seconds)
            return false
        }
        let deadline = monotonicSeconds() + max(0, seconds)
        while true {
            let left = deadline - monotonicSeconds()
            var watch = pollfd(fd: cancel, events: Int16(POLLIN), revents: 0)
            let ready = poll(&watch, 1, Int32(clamping: Int(saturating: max(0, left) * 1000 + 1)))
            if ready > 0 { return true }
            if ready == 0 { return false }
            if errno != EINTR {
                sleep(seconds: left)
                return false
            }
        }
    }

    /// Sleeps, resuming after signals, for `seconds`.
    public static func sleep(seconds: Double) {
        guard seconds > 0 else { return }
        let whole = seconds.rounded(.down)
        var request = timespec(tv_sec: Int(saturating: whole), tv_nsec: Int(saturating: (seconds - whole) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    public static func wallSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}

extension Int {
    /// `value` without its fraction, held to Int's range (NaN: 0): durations and deadlines
    /// become whole units without a trap, whatever they hold.
    public init(saturating value: Double) {
        if value.isNaN {
            self = 0
        } else if value >= Double(Int.max) {
            self = .max
        } else if value <= Double(Int.min) {
            self = .min
        } else {
            self = Int(value)
        }
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
