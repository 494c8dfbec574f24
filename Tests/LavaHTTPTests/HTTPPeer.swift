import LavaSystem
import LavaTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `Peers/http_peer.py` on a free loopback port for one test, stopped when the test ends; a peer
/// that cannot start fails the test.
final class HTTPPeer: Sendable {
    let process: PeerProcess
    var port: Int { process.port }

    static let peersDirectory: String = {
        let file = #filePath
        return String(file[..<file.lastIndex(of: "/")!]) + "/Peers"
    }()

    /// `tls`: serve HTTPS with the self-signed certificate `Peers/peer-cert.pem` (IP 127.0.0.1).
    init(tls: Bool = false) throws {
        let arguments = tls ? ["--tls", HTTPPeer.certificate, HTTPPeer.peersDirectory + "/peer-key.pem"] : []
        process = try PeerProcess(scriptPath: HTTPPeer.peersDirectory + "/http_peer.py", arguments: arguments)
    }

    static var certificate: String { peersDirectory + "/peer-cert.pem" }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    func stop() { process.stop() }
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
