import LavaSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Installs on one root take turns (SPEC §6): `<root>/opt/lava/.install.lock`, held with
/// flock while releases are written and `current` switched. A second install says whom it
/// waits for, then waits. The kernel drops the lock when its holder dies.
struct InstallLock: ~Copyable {
    static let fileName = ".install.lock"
    private let fd: Int32

    init(root: HostRoot, logger: Logger) throws(LavaError) {
        let home = try root.openDirectory(Installer.lavaHome, create: true)
        let path = Paths.join(home.displayPath, InstallLock.fileName)
        let fd = openat(home.descriptor, InstallLock.fileName, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd < 0 { throw .errno("open", path) }
        do throws(LavaError) {
            try InstallLock.acquire(fd, path: path, logger: logger)
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        let file = FileDescriptor(adopting: dup(fd), displayPath: path)
        ftruncate(fd, 0)
        try? file.writeAll(Array("\(getpid())\n".utf8), at: 0)
    }

    private static func acquire(_ fd: Int32, path: String, logger: Logger) throws(LavaError) {
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return }
        guard errno == EWOULDBLOCK else { throw .errno("flock", path) }
        let holder = InstallLock.holder(fd).map { " (pid \($0))" } ?? ""
        logger.info("another install on this root\(holder) holds \(path); waiting for it to finish")
        if Files.retryingEINTR({ flock(fd, LOCK_EX) }) != 0 { throw .errno("flock", path) }
        logger.info("the other install finished; going on")
    }

    /// Lets the next install go; the file stays, holding no pid.
    consuming func release() {}

    deinit {
        ftruncate(fd, 0)
        close(fd)
    }

    private static func holder(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return Int32(String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").first ?? "")
    }
}
