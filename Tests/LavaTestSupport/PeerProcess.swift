import CShim
import Dispatch
import Foundation
import LavaSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// Test peers are Python scripts started through the project's own Reaper (never Foundation's
// `Process`, whose `waitpid(pid)` would race the reaper's `wait4(-1)`). A peer that cannot
// start throws: a test that needs it fails, it never skips.

public enum PeerScripts {

    /// `python3` as `/usr/bin/env python3` would find it: the first executable on PATH.
    public static func python3() throws(PeerError) -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":", omittingEmptySubsequences: true) {
            let candidate = Paths.join(String(directory), "python3")
            var info = stat()
            if stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        throw PeerError("python3 not found on PATH (\(path)); the test peers need it, with moto[server] installed")
    }

    /// The test process's environment minus anything AWS, so no real profile or key leaks in.
    public static func environment(_ extra: [String: String] = [:]) -> [String] {
        var environment = ProcessInfo.processInfo.environment.filter { key, _ in
            !key.hasPrefix("AWS_") && key != "INITIAL_NO_AUTH_ACTION_COUNT"
        }
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
        environment["PYTHONUNBUFFERED"] = "1"
        for (key, value) in extra { environment[key] = value }
        return environment.map { "\($0.key)=\($0.value)" }.sorted()
    }
}

/// Why a peer or a helper failed; the message carries the peer's stderr when there is one.
public struct PeerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}


/// A child's exit, delivered by the Reaper's callback; waitable with a timeout.
public final class ChildExit: Sendable {
    private let status = Mutex<LavaSystem.ExitStatus?>(nil)
    private let exited = DispatchSemaphore(value: 0)

    public init() {}

    public func record(_ status: LavaSystem.ExitStatus) {
        self.status.withLock { $0 = status }
        exited.signal()
    }

    public var current: LavaSystem.ExitStatus? { status.withLock { $0 } }

    /// The status once the child has exited, or nil if it is still running after `seconds`.
    public func wait(seconds: Double) -> LavaSystem.ExitStatus? {
        if let status = current { return status }
        if exited.wait(timeout: .now() + seconds) == .timedOut { return nil }
        exited.signal()  // later waiters pass too
        return current
    }
}

/// A scratch file in /tmp, removed when this is released.
public final class ScratchFile: Sendable {
    public let path: String

    public init(_ label: String) throws(PeerError) {
        var template = Array("/tmp/lava-peer-\(label).XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        if fd < 0 { throw PeerError("mkstemp: \(String(cString: strerror(errno)))") }
        close(fd)
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    deinit { unlink(path) }

    public func openForWriting() throws(PeerError) -> Int32 {
        let fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
        if fd < 0 { throw PeerError("open \(path): \(String(cString: strerror(errno)))") }
        return fd
    }

    public var text: String { (try? Files.readText(path)) ?? "" }
    public var bytes: [UInt8] { (try? Files.read(path)) ?? [] }
}

/// A running peer script: started with a pipe on stdout that announces `KEYS …` (optionally)
/// and `PORT <n>`, stderr to a scratch file, and stdin a pipe the peer watches (its EOF, when
/// this process dies, makes the peer exit). Stopped with SIGTERM, then SIGKILL after 3 s,
/// then reaped; `deinit` stops it.
public final class PeerProcess: Sendable {
    public let name: String
    public let pid: pid_t
    public let port: Int
    /// The words after each announcement keyword other than PORT (e.g. "KEYS" → [id, secret]).
    public let announcements: [String: [String]]
    private let exit: ChildExit
    private let stderrFile: ScratchFile
    private let stdinWriter: Mutex<Int32>

    /// Starts `python3 <scriptPath> <arguments> --watch-stdin` and waits for its `PORT` line.
    public init(scriptPath: String, arguments: [String], environment: [String: String] = [:],
                timeout: Double = 20) throws(PeerError) {
        let script = Paths.lastComponent(of: scriptPath)
        name = script
        let python = try PeerScripts.python3()
        guard Files.exists(scriptPath) else { throw PeerError("peer script missing: \(scriptPath)") }
        stderrFile = try ScratchFile("\(script)-stderr")
        var stdoutPipe: [Int32] = [-1, -1], stdinPipe: [Int32] = [-1, -1]
        guard lava_pipe_cloexec(&stdoutPipe) == 0, lava_pipe_cloexec(&stdinPipe) == 0 else {
            for fd in stdoutPipe + stdinPipe where fd >= 0 { close(fd) }
            throw PeerError("pipe2: \(String(cString: strerror(errno)))")
        }
        let stderrFD: Int32
        do throws(PeerError) {
            stderrFD = try stderrFile.openForWriting()
        } catch {
            for fd in stdoutPipe + stdinPipe { close(fd) }
            throw error
        }
        var request = SpawnRequest(executable: python, arguments: [scriptPath] + arguments + ["--watch-stdin"],
                                   environment: PeerScripts.environment(environment))
        request.standardInput = stdinPipe[0]
        request.standardOutput = stdoutPipe[1]
        request.standardError = stderrFD
        let exit = ChildExit()
        self.exit = exit
        let spawned: pid_t
        do {
            spawned = try Reaper.shared.spawn(request) { status in exit.record(status) }
        } catch {
            for fd in stdoutPipe + stdinPipe { close(fd) }
            close(stderrFD)
            throw PeerError("cannot start \(script): \(error)")
        }
        close(stdinPipe[0])
        close(stdoutPipe[1])
        close(stderrFD)
        pid = spawned
        stdinWriter = Mutex(stdinPipe[1])

        let reader = stdoutPipe[0]
        defer { close(reader) }
        var found: [String: [String]] = [:]
        var announcedPort: Int? = nil
        var failure: String? = nil
        var pending = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Clock.monotonicSeconds() + timeout
        readLoop: while announcedPort == nil {
            let left = deadline - Clock.monotonicSeconds()
            if left <= 0 {
                failure = "did not announce its port within \(Int(timeout)) s"
                break
            }
            var pollFD = pollfd(fd: reader, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pollFD, 1, Int32(left * 1000) + 1)
            if ready < 0 && errno != EINTR {
                failure = "poll: \(String(cString: strerror(errno)))"
                break
            }
            if ready <= 0 { continue }
            let count = buffer.withUnsafeMutableBytes { read(reader, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                failure = "read: \(String(cString: strerror(errno)))"
                break
            }
            if count == 0 {
                failure = "exited before announcing its port"
                break
            }
            pending.append(contentsOf: buffer[0..<count])
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                let words = line.split(separator: " ").map(String.init)
                guard let keyword = words.first else { continue }
                if keyword == "PORT" {
                    guard words.count == 2, let port = Int(words[1]), port > 0 else {
                        failure = "announced a bad port line: \(line)"
                        break readLoop
                    }
                    announcedPort = port
                    break readLoop
                }
                found[keyword] = Array(words.dropFirst())
            }
        }
        announcements = found
        port = announcedPort ?? 0
        if let failure {
            stop()
            let status = exit.current.map { " (\($0))" } ?? ""
            throw PeerError("""
                peer \(script) \(failure)\(status)
                command: \(python) \(scriptPath) \(arguments.joined(separator: " "))
                stderr:
                \(stderrText)
                """)
        }
    }

    deinit { stop() }

    /// Everything the peer wrote on stderr so far (its tracebacks, moto's warnings).
    public var stderrText: String { stderrFile.text }

    /// Whether the peer is still running (not yet reaped).
    public var isRunning: Bool { exit.current == nil }

    /// SIGTERM; SIGKILL 3 s later if it has not exited; then waits until it is reaped.
    /// Idempotent, and safe from any thread.
    public func stop() {
        stdinWriter.withLock { fd in
            if fd >= 0 {
                close(fd)
                fd = -1
            }
        }
        if exit.current != nil { return }
        kill(pid, SIGTERM)
        if exit.wait(seconds: 3) != nil { return }
        kill(pid, SIGKILL)
        _ = exit.wait(seconds: 30)
    }
}

