import CShim
import LavaSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One thread for the supervisor: it reads every daemon's output pipe (handing each line to that
/// daemon's callback) and runs the restart timers, so N daemons cost one thread, not N.
final class EventLoop: Sendable {
    private struct Timer {
        var deadline: Double
        var action: @Sendable () -> Void
    }

    private struct Source {
        var fd: Int32
        var pending: [UInt8] = []
        var onLine: @Sendable (String) -> Void
    }

    private let sources = Mutex<[Int32: Source]>([:])
    private let timers = Mutex<[Timer]>([])
    /// Written to when a source or timer is added, so poll() sees it.
    private let wake: (read: Int32, write: Int32)

    init() throws(LavaError) {
        var fds: [Int32] = [0, 0]
        if lava_pipe_cloexec(&fds) != 0 { throw .errno("pipe2") }
        wake = (fds[0], fds[1])
        let flags = fcntl(fds[0], F_GETFL)
        _ = fcntl(fds[0], F_SETFL, flags | O_NONBLOCK)
        try Threads.start(name: "lava-supervisor") { [self] in self.run() }
    }

    /// Takes ownership of `fd`; it is closed at end of file.
    func add(_ fd: Int32, onLine: @escaping @Sendable (String) -> Void) {
        sources.withLock { $0[fd] = Source(fd: fd, onLine: onLine) }
        wakeUp()
    }

    /// Runs `action` on the loop's thread `delay` seconds from now.
    func schedule(after delay: Double, _ action: @escaping @Sendable () -> Void) {
        timers.withLock { $0.append(Timer(deadline: Clock.monotonicSeconds() + delay, action: action)) }
        wakeUp()
    }

    private func wakeUp() {
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
    }

    /// Removes and returns the timers due now, and the milliseconds until the next one (-1: none).
    private func dueTimers() -> ([Timer], Int32) {
        let now = Clock.monotonicSeconds()
        return timers.withLock { timers in
            let due = timers.filter { $0.deadline <= now }
            timers.removeAll { $0.deadline <= now }
            guard let next = timers.map(\.deadline).min() else { return (due, -1) }
            return (due, Int32(min(Double(Int32.max), ((next - now) * 1000).rounded(.up))))
        }
    }

    private func run() -> Void {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            var (due, timeout) = dueTimers()
            while !due.isEmpty {
                due.forEach { $0.action() }
                (due, timeout) = dueTimers()
            }
            let watched = sources.withLock { Array($0.keys) }
            var pollFDs = [pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
                + watched.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if poll(&pollFDs, nfds_t(pollFDs.count), timeout) <= 0 { continue }
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
