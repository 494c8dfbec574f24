import CShim
import LavaSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One thread that reads every daemon's output pipe and hands each line to that daemon's
/// callback, so N daemons cost one thread, not N.
final class OutputPump: Sendable {
    private struct Source {
        var fd: Int32
        var pending: [UInt8] = []
        var onLine: @Sendable (String) -> Void
    }

    private let sources = Mutex<[Int32: Source]>([:])
    /// Written to when a source is added, so poll() starts watching it.
    private let wake: (read: Int32, write: Int32)

    init() throws(LavaError) {
        var fds: [Int32] = [0, 0]
        if lava_pipe_cloexec(&fds) != 0 { throw .errno("pipe2") }
        wake = (fds[0], fds[1])
        let flags = fcntl(fds[0], F_GETFL)
        _ = fcntl(fds[0], F_SETFL, flags | O_NONBLOCK)
        Thread { [self] in self.run() }.start()
    }

    /// Takes ownership of `fd`; it is closed at end of file.
    func add(_ fd: Int32, onLine: @escaping @Sendable (String) -> Void) {
        sources.withLock { $0[fd] = Source(fd: fd, onLine: onLine) }
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
    }

    private func run() -> Void {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let watched = sources.withLock { Array($0.keys) }
            var pollFDs = [pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
                + watched.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if poll(&pollFDs, nfds_t(pollFDs.count), -1) < 0 { continue }
            if pollFDs[0].revents != 0 {
                while buffer.withUnsafeMutableBytes({ read(wake.read, $0.baseAddress, $0.count) }) > 0 {}
            }
            for entry in pollFDs.dropFirst() where entry.revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
                if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                let (lines, callback, finished): ([String], (@Sendable (String) -> Void)?, Bool) = sources.withLock { sources in
                    guard var source = sources[entry.fd] else { return ([], nil, false) }
                    var lines = [String]()
                    if n > 0 {
                        source.pending.append(contentsOf: buffer[0..<n])
                        LineSplitter.emit(&source.pending) { lines.append($0) }
                        sources[entry.fd] = source
                        return (lines, source.onLine, false)
                    }
                    if !source.pending.isEmpty { lines.append(String(decoding: source.pending, as: UTF8.self)) }
                    sources[entry.fd] = nil
                    return (lines, source.onLine, true)
                }
                for line in lines { callback?(line) }
                if finished { close(entry.fd) }
            }
        }
    }
}
