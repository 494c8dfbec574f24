import LavaSystem
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `Peers/http_peer.py`, started on a free loopback port for one test and stopped (SIGTERM,
/// then reaped) when the test ends. A peer that cannot start fails the test.
final class PeerProcess {
    let pid: pid_t
    let port: Int
    private var stopped = false

    static let peersDirectory: String = {
        let file = #filePath
        return String(file[..<file.lastIndex(of: "/")!]) + "/Peers"
    }()

    /// `tls`: serve HTTPS with the self-signed certificate `Peers/peer-cert.pem` (IP 127.0.0.1).
    init(tls: Bool = false) throws {
        var arguments = [PeerProcess.peersDirectory + "/http_peer.py"]
        if tls { arguments += ["--tls", PeerProcess.certificate, PeerProcess.peersDirectory + "/peer-key.pem"] }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw LavaError.errno("pipe") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        var request = SpawnRequest(executable: try PeerProcess.python(), arguments: arguments,
                                   environment: PeerProcess.inheritedEnvironment())
        request.standardOutput = fds[1]
        request.standardError = 2
        do {
            pid = try Reaper.shared.spawn(request)
        } catch {
            close(fds[0])
            close(fds[1])
            throw error
        }
        close(fds[1])
        defer { close(fds[0]) }
        let line = PeerProcess.readLine(fds[0], timeoutSeconds: 30)
        guard let port = Int(line), port > 0 else {
            kill(pid, SIGKILL)
            _ = Reaper.shared.wait(pid)
            throw LavaError(.process, "the HTTP test peer did not print its port (got \"\(line)\")")
        }
        self.port = port
    }

    deinit { stop() }

    static var certificate: String { peersDirectory + "/peer-cert.pem" }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    func stop() {
        guard !stopped else { return }
        stopped = true
        kill(pid, SIGTERM)
        _ = Reaper.shared.wait(pid)
    }

    private static func python() throws -> String {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/python3"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw LavaError(.process, "python3 is not on PATH; the HTTP tests need it for their peer")
    }

    private static func inheritedEnvironment() -> [String] {
        var result: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            result.append(String(cString: pointer))
            entry += 1
        }
        return result
    }

    private static func readLine(_ fd: Int32, timeoutSeconds: Double) -> String {
        var bytes: [UInt8] = []
        let deadline = Clock.monotonicSeconds() + timeoutSeconds
        while !bytes.contains(UInt8(ascii: "\n")) {
            let left = deadline - Clock.monotonicSeconds()
            if left <= 0 { break }
            var pollFD = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pollFD, 1, Int32(left * 1000) + 1) <= 0 { continue }
            var byte: UInt8 = 0
            let n = read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
    }
}

/// A loopback port nobody listens on (bound, then released).
func unusedPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Lines handed to a client's debug hook, kept for assertions.
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    var hook: @Sendable (String) -> Void { { line in self.lines.withLock { $0.append(line) } } }
}

/// This process's resident memory figures from /proc/self/status, in bytes.
enum Memory {
    static func value(_ field: String) -> Int {
        let fd = open("/proc/self/status", O_RDONLY)
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 8192)
        let n = read(fd, &bytes, bytes.count)
        let text = String(decoding: bytes[0..<max(0, n)], as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let number = line.dropFirst(field.count + 1).filter { $0.isNumber }
            return (Int(number) ?? 0) * 1024
        }
        return 0
    }

    /// Resets VmHWM to the current RSS (Linux ≥ 4.0); false where the kernel refuses.
    static func resetPeak() -> Bool {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, "5", 1) == 1
    }
}
