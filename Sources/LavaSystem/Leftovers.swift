import CShim
#if canImport(Glibc)
import Glibc
#endif

/// What a finished child leaves behind: output pipes that something it started in the
/// background still writes to, and a SIGKILL still due to its process group. One thread looks
/// after all of them, so nobody waits for them. A pipe is read (its bytes discarded) until its
/// end and only then closed: closed under a live writer, it would kill that writer (SIGPIPE).
public final class Leftovers: Sendable {
    public static let shared = Leftovers()

    private struct State {
        var outputs: [Int32] = []
        var kills: [(group: pid_t, at: Double)] = []
        /// The thread's wake-up pipe, made with the thread on first use.
        var wake: (read: Int32, write: Int32)? = nil
    }

    private let state = Monitor(State())

    private init() {}

    /// Takes `fd`, the read end of a child's output: drained until its end, then closed.
    public func drain(_ fd: Int32) {
        add { $0.outputs.append(fd) }
    }

    /// SIGKILL to process group `group` at monotonic time `deadline`, unless it is gone by then.
    public func kill(group: pid_t, at deadline: Double) {
        add { $0.kills.append((group, deadline)) }
    }

    /// Returns once every SIGKILL handed over was sent or its group is gone: a process that
    /// exits sooner would leave those groups running.
    public func awaitKills() {
        state.wait(until: nil) { $0.kills.isEmpty }
    }

    private func add(_ change: (inout State) -> Void) {
        let wake = state.withLock { state in
            change(&state)
            if state.wake == nil { state.wake = start() }
            return state.wake!
        }
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
    }

    private func start() -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        do throws(LavaError) {
            if lava_pipe_cloexec(&fds) != 0 { throw LavaError.errno("pipe2") }
            for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
            let wake = fds[0]
            try Threads.start(name: "lava-leftovers") { [self] in self.run(wake: wake) }
        } catch {
            // Like the Reaper's thread: without it, no child could be left safely.
            preconditionFailure(error.message)
        }
        return (fds[0], fds[1])
    }

    private func run(wake: Int32) -> Never {
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let (outputs, kills) = state.withLock { ($0.outputs, $0.kills) }
            let now = Clock.monotonicSeconds()
            var settled = Set<pid_t>()
            for kill in kills {
                if now >= kill.at {
                    Glibc.kill(-kill.group, SIGKILL)
                    settled.insert(kill.group)
                } else if Glibc.kill(-kill.group, 0) != 0 && errno == ESRCH {
                    // Dropped as soon as it is empty: its id may come back for another group.
                    settled.insert(kill.group)
                }
            }
            if !settled.isEmpty { state.withLock { $0.kills.removeAll { settled.contains($0.group) } } }
            // While a group waits for its SIGKILL, look every 0.2 s whether it is gone already.
            let pending = kills.filter { !settled.contains($0.group) }
            let wait = pending.map { min(0.2, $0.at - now) }.min().map { Int32(max(0, $0) * 1000 + 1) } ?? -1
            var pollFDs = [pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            pollFDs += outputs.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&pollFDs, nfds_t(pollFDs.count), wait)
            if ready < 0 && errno != EINTR {
                // A persistent failure (ENOMEM) must not turn this thread into a busy loop.
                Clock.sleep(seconds: 0.1)
                continue
            }
            if ready <= 0 { continue }
            if pollFDs[0].revents != 0 { while read(wake, &buffer, buffer.count) > 0 {} }
            var ended = [Int32]()
            for entry in pollFDs.dropFirst() where entry.revents != 0 {
                let n = read(entry.fd, &buffer, buffer.count)
                if n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN) { ended.append(entry.fd) }
            }
            if !ended.isEmpty {
                // Off the list before it is closed: a number closed may come back for a new pipe.
                state.withLock { $0.outputs.removeAll { ended.contains($0) } }
                ended.forEach { close($0) }
            }
        }
    }
}
