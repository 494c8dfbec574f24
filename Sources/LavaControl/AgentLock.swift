#if canImport(Glibc)
import Glibc
#endif
import LavaSystem
import Synchronization

/// The agent's state directory, `<root>/run/lava-boot`: its pid file and control socket.
public struct AgentDirectory: Sendable, Equatable {
    static let imagePath = "/run/lava-boot"
    public let root: HostRoot
    public var path: String { root.path(AgentDirectory.imagePath) }

    public init(root: HostRoot) {
        self.root = root
    }

    public var socketPath: String { Paths.join(path, "control.sock") }
    public var pidPath: String { Paths.join(path, "lava-boot.pid") }
}

/// One agent per host (per `--root`): an exclusive flock on the pid file, held for the agent's
/// life. The kernel drops the lock when the process dies, so a pid file left by a dead agent is
/// simply taken over. Create the `ControlServer` only while holding this lock: the server
/// replaces whatever socket file it finds.
public final class AgentLock: Sendable {
    public let directory: AgentDirectory
    public let pid: Int32
    private let descriptor: Mutex<Int32>  // the locked pid file; -1 once released

    private init(directory: AgentDirectory, fd: Int32, pid: Int32) {
        self.directory = directory
        self.descriptor = Mutex(fd)
        self.pid = pid
    }

    deinit { release() }

    /// Creates the directory (0755), locks the pid file and writes this process's pid into it.
    /// Fails with `.agentRunning` when another agent holds the lock, even one in this process.
    public static func acquire(_ directory: AgentDirectory) throws(LavaError) -> AgentLock {
        try prepare(directory)
        let pidPath = directory.pidPath
        // flock locks belong to the open file description, so a second open() in this process
        // conflicts with the first exactly as another process would.
        for _ in 0..<16 {
            let fd = open(pidPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
            if fd < 0 {
                if errno == EINTR { continue }
                throw .errno("open", pidPath)
            }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                let number = errno
                let holder = readPID(fd)
                close(fd)
                if number == EWOULDBLOCK { throw agentRunning(holder, pidPath) }
                throw .errno("flock", pidPath, number)
            }
            // An agent that is releasing unlinks the file before it unlocks: a lock won on a
            // file no longer at `pidPath` guards nothing, so open the path again.
            var held = stat()
            var current = stat()
            guard fstat(fd, &held) == 0, lstat(pidPath, &current) == 0,
                  held.st_dev == current.st_dev, held.st_ino == current.st_ino else {
                close(fd)
                continue
            }
            let pid = getpid()
            let text = Array("\(pid)\n".utf8)
            let written = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            if ftruncate(fd, off_t(text.count)) != 0 || written != text.count {
                let error = LavaError.errno("write", pidPath)
                close(fd)
                throw error
            }
            return AgentLock(directory: directory, fd: fd, pid: pid)
        }
        throw LavaError(.system, "could not lock \(pidPath): the file keeps being replaced")
    }

    /// Removes the control socket and the pid file, then drops the lock. Safe to call twice.
    public func release() {
        let fd = descriptor.withLock { fd in
            defer { fd = -1 }
            return fd
        }
        guard fd >= 0 else { return }
        var info = stat()
        if lstat(directory.socketPath, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK {
            unlink(directory.socketPath)
        }
        unlink(directory.pidPath)
        close(fd)
    }

    /// `mkdir -p`, then make sure the directory is one only root (or this user) can write, since
    /// the pid file and the socket in it are trusted.
    private static func prepare(_ directory: AgentDirectory) throws(LavaError) {
        let path = directory.path
        let handle: Directory
        do {
            handle = try directory.root.openDirectory(AgentDirectory.imagePath, create: true)
        } catch {
            throw LavaError(.system, "\(error.message); remove it and start lava-boot again")
        }
        guard let info = handle.status() else { throw .errno("fstat", path) }
        let euid = geteuid()
        guard info.st_uid == 0 || info.st_uid == euid else {
            throw LavaError(.system, "\(path) belongs to uid \(info.st_uid), not root; remove it and start lava-boot again")
        }
        if info.st_mode & 0o7777 != 0o755, info.st_uid == euid, fchmod(handle.descriptor, 0o755) != 0 {
            throw .errno("chmod", path)
        }
        if info.st_mode & 0o022 != 0, info.st_uid != euid {
            throw LavaError(.system, "\(path) is writable by other users; `chmod 755 \(path)` and start lava-boot again")
        }
    }

    private static func readPID(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[0..<n], as: UTF8.self)
        return Int32(text.split(whereSeparator: { $0 == "\n" || $0 == " " }).first ?? "")
    }

    private static func agentRunning(_ holder: Int32?, _ pidPath: String) -> LavaError {
        let who = holder.map { "another lava-boot agent (pid \($0))" } ?? "another lava-boot agent (holding \(pidPath))"
        return LavaError(.agentRunning, "\(who) is running on this host; stop it first or use `lava-boot status`")
    }
}
