import CShim
import LavaSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One thread for the supervisor: it reads every daemon's output pipe (handing each line to that
/// daemon's callback) and runs the timers, so N daemons cost one thread, not N.
final class EventLoop: Sendable {
    /// Names a source for `retire`; unlike its fd number, never reused.
    struct SourceID: Hashable, Sendable { let value: Int }

    private struct Timer {
        var deadline: Double
        var action: @Sendable () -> Void
    }

    private struct Source {
        var fd: Int32
        var pending: [UInt8] = []
        var onLine: @Sendable (String) -> Void
    }

    private struct Sources {
        var byID: [SourceID: Source] = [:]
        var nextID = 0
    }

    private let sources = Mutex(Sources())
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

    /// Takes ownership of `fd`; it is closed at end of file, or by `retire`.
    @discardableResult
    func add(_ fd: Int32, onLine: @escaping @Sendable (String) -> Void) -> SourceID {
        let id = sources.withLock { sources in
            let id = SourceID(value: sources.nextID)
            sources.nextID += 1
            sources.byID[id] = Source(fd: fd, onLine: onLine)
            return id
        }
        wakeUp()
        return id
    }

    /// Reads what is left in the source now, hands over its last lines and closes it, on the
    /// loop's thread: for a daemon that exited while something it started holds the pipe open.
    func retire(_ id: SourceID) {
        schedule(after: 0) { [self] in
            guard let fd = sources.withLock({ $0.byID[id]?.fd }) else { return }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var buffer = [UInt8](repeating: 0, count: 16384)
            while consume(id, &buffer) {}
            if sources.withLock({ $0.byID.removeValue(forKey: id) }) != nil { close(fd) }
        }
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

    /// One read from the source; its complete lines go to its callback (outside the lock). At
    /// the end of the file the source is removed and closed. Returns whether more may follow.
    private func consume(_ id: SourceID, _ buffer: inout [UInt8]) -> Bool {
        guard let fd = sources.withLock({ $0.byID[id]?.fd }) else { return false }
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { return true }
        if n < 0 && errno == EAGAIN { return false }
        let chunk = n > 0 ? buffer[0..<n] : []
        let (lines, callback, finished): ([String], (@Sendable (String) -> Void)?, Bool) = sources.withLock { sources in
            guard var source = sources.byID[id] else { return ([], nil, false) }
            var lines = [String]()
            if n > 0 {
                source.pending.append(contentsOf: chunk)
                LineSplitter.emit(&source.pending) { lines.append($0) }
                sources.byID[id] = source
                return (lines, source.onLine, false)
            }
            if !source.pending.isEmpty { lines.append(String(decoding: source.pending, as: UTF8.self)) }
            sources.byID[id] = nil
            return (lines, source.onLine, true)
        }
        for line in lines { callback?(line) }
        if finished { close(fd) }
        return !finished
    }

    private func run() -> Void {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            var (due, timeout) = dueTimers()
            while !due.isEmpty {
                due.forEach { $0.action() }
                (due, timeout) = dueTimers()
            }
            let watched = sources.withLock { $0.byID.map { ($0.key, $0.value.fd) } }
            var pollFDs = [pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
                + watched.map { pollfd(fd: $0.1, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&pollFDs, nfds_t(pollFDs.count), timeout)
            if ready < 0 && errno != EINTR {
                // A persistent failure (ENOMEM) must not turn this thread into a busy loop.
                Clock.sleep(seconds: 0.1)
                continue
            }
            if ready <= 0 { continue }
            if pollFDs[0].revents != 0 {
                while buffer.withUnsafeMutableBytes({ read(wake.read, $0.baseAddress, $0.count) }) > 0 {}
            }
            for (slot, entry) in pollFDs.dropFirst().enumerated() where entry.revents != 0 {
                _ = consume(watched[slot].0, &buffer)
            }
        }
    }
}
