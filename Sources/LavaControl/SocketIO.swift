#if canImport(Glibc)
import Glibc
#endif
import LavaSystem

// Small POSIX pieces the server and the client share: an AF_UNIX address, line reads and whole
// writes under a deadline, the peer's uid, a lock with a condition, and joinable threads.

/// The largest socket path `sockaddr_un` holds (its `sun_path` minus the terminating NUL).
let maximumSocketPathBytes = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

/// Calls `body` with `path` as a socket address, or returns nil when the path does not fit.
func withUnixAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R? {
    let bytes = Array(path.utf8)
    guard bytes.count <= maximumSocketPathBytes, !bytes.contains(0) else { return nil }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)  // the rest is already zero, NUL included
    }
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}

func socketPathTooLong(_ path: String) -> LavaError {
    LavaError(.system, "socket path \(path) is \(path.utf8.count) bytes long; AF_UNIX allows \(maximumSocketPathBytes) (use a shorter --root)")
}

/// A new AF_UNIX stream socket, close-on-exec so daemons never inherit it.
func makeUnixSocket(nonBlocking: Bool = false) throws(LavaError) -> Int32 {
    var type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    if nonBlocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
    let fd = socket(AF_UNIX, type, 0)
    if fd < 0 { throw .errno("socket") }
    return fd
}

/// Seconds left before a monotonic deadline, as poll(2) milliseconds (-1: no deadline).
private func pollMilliseconds(until deadline: Double?) -> Int32? {
    guard let deadline else { return -1 }
    let remaining = deadline - Clock.monotonicSeconds()
    if remaining <= 0 { return nil }
    return Int32(min(remaining * 1000, Double(Int32.max)).rounded(.up))
}

/// Waits until `fd` is ready for `events`. False when the deadline passed first.
private func waitReady(_ fd: Int32, _ events: Int32, until deadline: Double?) -> Bool {
    while true {
        guard let milliseconds = pollMilliseconds(until: deadline) else { return false }
        var entry = pollfd(fd: fd, events: Int16(events), revents: 0)
        let n = poll(&entry, 1, milliseconds)
        if n > 0 { return true }  // readable, writable, or an error the next call reports
        if n == 0 { return false }
        if errno != EINTR { return true }  // let recv/send report it
    }
}

enum LineRead: Equatable {
    /// Bytes before the first newline (anything after it is ignored: one request per connection).
    case line([UInt8])
    /// The peer closed the connection; what it sent before, possibly nothing.
    case closed([UInt8])
    case timedOut
    case tooLong
    case failed(Int32)
}

/// Reads one line of at most `limit` bytes before `deadline` (monotonic seconds; nil = no limit).
func readLine(_ fd: Int32, until deadline: Double?, limit: Int) -> LineRead {
    var collected = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        guard waitReady(fd, Int32(POLLIN), until: deadline) else { return .timedOut }
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 {
            if errno == EINTR || errno == EAGAIN { continue }
            return .failed(errno)
        }
        if n == 0 { return .closed(collected) }
        if let newline = chunk[0..<n].firstIndex(of: UInt8(ascii: "\n")) {
            collected.append(contentsOf: chunk[0..<newline])
            return collected.count > limit ? .tooLong : .line(collected)
        }
        collected.append(contentsOf: chunk[0..<n])
        if collected.count > limit { return .tooLong }
    }
}

/// Reads and drops what the peer still sends, until it closes, `deadline` passes or `limit` bytes
/// went by. Closing a Unix socket with unread input resets the connection, and the peer may then
/// lose the answer it has not read yet.
func discardInput(_ fd: Int32, until deadline: Double, limit: Int) {
    var chunk = [UInt8](repeating: 0, count: 4096)
    var discarded = 0
    while discarded < limit, waitReady(fd, Int32(POLLIN), until: deadline) {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
        if n <= 0 { return }
        discarded += n
    }
}

/// Writes all of `bytes` before `deadline`; returns 0, ETIMEDOUT, or the errno of the failure.
/// MSG_NOSIGNAL: a peer that went away is an error here, never a SIGPIPE.
@discardableResult
func writeAll(_ fd: Int32, _ bytes: [UInt8], until deadline: Double?) -> Int32 {
    var written = 0
    while written < bytes.count {
        guard waitReady(fd, Int32(POLLOUT), until: deadline) else { return ETIMEDOUT }
        let n = bytes.withUnsafeBytes { buffer in
            send(fd, buffer.baseAddress! + written, buffer.count - written, Int32(MSG_NOSIGNAL))
        }
        if n < 0 {
            if errno == EINTR || errno == EAGAIN { continue }
            return errno
        }
        written += n
    }
    return 0
}

/// The effective uid of the process at the other end of a connected AF_UNIX socket.
/// Glibc declares `struct ucred` only under _GNU_SOURCE, which Swift's import lacks; its layout
/// (pid_t pid; uid_t uid; gid_t gid) is fixed by the Linux ABI.
func peerUID(_ fd: Int32) -> uid_t? {
    var credentials: (pid: Int32, uid: UInt32, gid: UInt32) = (0, 0, 0)
    var length = socklen_t(MemoryLayout.size(ofValue: credentials))
    guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0,
          Int(length) == MemoryLayout.size(ofValue: credentials) else { return nil }
    return credentials.uid
}
