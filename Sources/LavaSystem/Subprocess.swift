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

    /// `arguments` excludes argv[0], which is the executable path.
    public init(executable: String, arguments: [String], environment: [String], workingDirectory: String? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
    }

    /// Only the Reaper calls this, under its lock.
    func spawn() throws(LavaError) -> pid_t {
        let argv = CStringArray([executable] + arguments)
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

    /// Longest line passed on whole; longer output is cut into pieces of this size.
    static let maximumLineLength = 16 * 1024

    public static func run(_ request: SpawnRequest, timeout: Timeout? = nil,
                           onLine: (String) -> Void) throws(LavaError) -> Result {
        var fds: [Int32] = [0, 0]
        if lava_pipe_cloexec(&fds) != 0 { throw .errno("pipe2") }
        var request = request
        request.standardOutput = fds[1]
        request.standardError = fds[1]
        let pid: pid_t
        do {
            pid = try Reaper.shared.spawn(request)
        } catch {
            close(fds[0])
            close(fds[1])
            throw error
        }
        close(fds[1])
        defer { close(fds[0]) }

        let start = Clock.monotonicSeconds()
        var timedOut = false
        var killAt: Double? = nil
        var pending = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 8192)
        readLoop: while true {
            var waitMilliseconds: Int32 = -1
            let now = Clock.monotonicSeconds()
            if let timeout, !timedOut {
                let left = timeout.seconds - (now - start)
                if left <= 0 {
                    timedOut = true
                    kill(pid, SIGTERM)
                    killAt = now + timeout.killAfter
                } else {
                    waitMilliseconds = Int32(min(left * 1000 + 1, Double(Int32.max)))
                }
            }
            if let deadline = killAt {
                let left = deadline - now
                if left <= 0 {
                    kill(pid, SIGKILL)
                    killAt = nil
                    waitMilliseconds = -1
                } else {
                    waitMilliseconds = Int32(left * 1000 + 1)
                }
            }
            var pollFD = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&pollFD, 1, waitMilliseconds)
            if ready < 0 && errno != EINTR { throw .errno("poll") }
            if ready <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw .errno("read")
            }
            if n == 0 { break readLoop }
            pending.append(contentsOf: buffer[0..<n])
            emitLines(&pending, onLine: onLine)
        }
        if !pending.isEmpty { onLine(String(decoding: pending, as: UTF8.self)) }
        let status = Reaper.shared.wait(pid)
        return Result(status: status, timedOut: timedOut)
    }

    static func emitLines(_ pending: inout [UInt8], onLine: (String) -> Void) {
        var start = 0
        while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
            onLine(String(decoding: pending[start..<newline], as: UTF8.self))
            start = newline + 1
        }
        while pending.count - start > maximumLineLength {
            onLine(String(decoding: pending[start..<start + maximumLineLength], as: UTF8.self))
            start += maximumLineLength
        }
        pending.removeFirst(start)
    }
}

public enum Clock {
    public static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    public static func wallSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
