import Foundation
import LavaSystem
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

// Helpers every test target shares: temporary directories, bounded waits, running a command
// through the process's one Reaper, peak memory measured in a child, a loopback listener.

/// A private directory removed at the end of the test.
public final class TemporaryDirectory: Sendable {
    public let path: String

    public init(_ label: String = "test") {
        var template = Array("/tmp/lava-boot-\(label).XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = String(cString: created!)
    }

    deinit { try? Files.removeTree(path) }

    public func sub(_ relative: String) -> String { Paths.join(path, relative) }

    @discardableResult
    public func write(_ relative: String, _ text: String, mode: mode_t = 0o644) -> String {
        let full = sub(relative)
        try! Files.makeDirectories(Paths.parent(of: full))
        try! Files.writeAtomically(full, Array(text.utf8), mode: mode)
        chmod(full, mode)
        return full
    }
}

/// The output of one run of the built binary.
public struct CommandResult {
    public var status: LavaSystem.ExitStatus
    public var stdout: String
    public var stderr: String
    public var exitCode: Int32 {
        if case .exited(let code) = status { return code }
        return -1
    }
}

public enum Command {
    /// Runs `executable` with exactly `environment` (plus PATH), stdout and stderr kept apart.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) -> CommandResult {
        let scratch = TemporaryDirectory("run")
        let outPath = scratch.sub("stdout"), errPath = scratch.sub("stderr")
        let out = open(outPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        let err = open(errPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        var env = ["PATH=/usr/local/bin:/usr/bin:/bin"]
        for (key, value) in environment { env.append("\(key)=\(value)") }
        var request = SpawnRequest(executable: executable, arguments: arguments, environment: env)
        request.standardOutput = out
        request.standardError = err
        let pid = try! Reaper.shared.spawn(request)
        close(out)
        close(err)
        let status = Reaper.shared.wait(pid)
        return CommandResult(status: status,
                             stdout: (try? Files.readText(outPath)).flatMap { $0 } ?? "",
                             stderr: (try? Files.readText(errPath)).flatMap { $0 } ?? "")
    }
}

/// Peak memory of one command, measured in a python3 parent of its own: this test process's
/// own high-water mark is shared by every suite running beside it.
public enum PeakMemory {
    /// The command's exit code, peak RSS in KiB, and the SHA-256 of what it wrote on stdout;
    /// stdin from `input` when given.
    public static func run(_ executable: String, _ arguments: [String], input: String? = nil, environment: [String: String] = [:])
        -> (exitCode: Int32, peakKiB: Int, outputSHA256: String) {
        let code = """
            import hashlib, resource, subprocess, sys
            source = open(sys.argv[1], "rb") if sys.argv[1] else subprocess.DEVNULL
            child = subprocess.Popen(sys.argv[2:], stdin=source, stdout=subprocess.PIPE)
            digest = hashlib.sha256()
            for chunk in iter(lambda: child.stdout.read(1 << 20), b""):
                digest.update(chunk)
            status = child.wait()
            print(status, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, digest.hexdigest())
            """
        let python = (try? PeerScripts.python3()) ?? "/usr/bin/python3"
        let result = Command.run(python, ["-c", code, input ?? "", executable] + arguments, environment: environment)
        let fields = result.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count == 3, let status = Int32(fields[0]), let peak = Int(fields[1]) else {
            Issue.record("cannot measure \(executable): \(result.stdout) \(result.stderr)")
            return (-1, Int.max, "")
        }
        return (status, peak, String(fields[2]))
    }
}

/// Executables this package builds, next to the one `LAVA_BOOT_BIN` names (scripts/test.sh),
/// else in `.build/debug`.
public enum PackageExecutable {
    public static func path(_ name: String) -> String {
        if let bin = ProcessInfo.processInfo.environment["LAVA_BOOT_BIN"] { return Paths.join(Paths.parent(of: bin), name) }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        return packageRoot + "/.build/debug/" + name
    }
}

public final class ExitBox: Sendable {
    public init() {}
    private let status = Mutex<LavaSystem.ExitStatus?>(nil)
    public func set(_ value: LavaSystem.ExitStatus) { status.withLock { $0 = value } }
    public var value: LavaSystem.ExitStatus? { status.withLock { $0 } }
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
@discardableResult
public func waitUntil(timeout: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}

/// A TCP listener on 127.0.0.1 that never accepts: it only tells whether anyone connected.
public final class LoopbackListener {
    public let fd: Int32
    public let port: UInt16

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw LavaError.errno("bind", "127.0.0.1") }
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit { close(fd) }

    /// Connections made so far (each accepted and closed here).
    public func pendingConnections() -> Int {
        var count = 0
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 { return count }
            close(client)
            count += 1
        }
    }
}
