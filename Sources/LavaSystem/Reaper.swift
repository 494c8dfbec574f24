import CShim
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a child ended. A non-zero exit is a result to report, not an error.
public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    init(waitStatus status: Int32) {
        // WIFEXITED/WEXITSTATUS/WTERMSIG are macros Swift cannot import.
        let signal = status & 0x7f
        self = signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }

    public var isSuccess: Bool { self == .exited(0) }

    public var description: String {
        switch self {
        case .exited(let code): return "exit status \(code)"
        case .signaled(let signal): return "killed by \(signalName(signal))"
        }
    }
}

public func signalName(_ signal: Int32) -> String {
    switch signal {
    case SIGHUP: return "SIGHUP"
    case SIGINT: return "SIGINT"
    case SIGKILL: return "SIGKILL"
    case SIGTERM: return "SIGTERM"
    case SIGSEGV: return "SIGSEGV"
    case SIGABRT: return "SIGABRT"
    case SIGPIPE: return "SIGPIPE"
    case SIGUSR1: return "SIGUSR1"
    case SIGUSR2: return "SIGUSR2"
    default: return "signal \(signal)"
    }
}

/// The one owner of `wait` in the process: a thread blocked in `wait4(-1)` collects every child
/// and hands each status to whoever registered for that pid. Children are spawned under the same
/// lock the reaper takes to deliver, so an exit can never arrive before its waiter exists.
public final class Reaper: Sendable {
    public static let shared = Reaper()

    private enum Waiter {
        case blocking(DispatchSemaphore)
        case callback(@Sendable (ExitStatus) -> Void)
    }

    private struct State {
        var waiters: [pid_t: Waiter] = [:]
        var finished: [pid_t: ExitStatus] = [:]
        var threadStarted = false
    }

    private let state = Mutex(State())
    /// Signalled on each spawn so the reaper thread wakes from "no children" (ECHILD).
    private let childrenSpawned = DispatchSemaphore(value: 0)

    private init() {}

    /// Spawns a child and registers it; `onExit`, if given, is called on the reaper thread.
    public func spawn(_ request: SpawnRequest, onExit: (@Sendable (ExitStatus) -> Void)? = nil) throws(LavaError) -> pid_t {
        let result: Result<pid_t, LavaError> = state.withLock { state in
            if !state.threadStarted {
                state.threadStarted = true
                startThread()
            }
            do throws(LavaError) {
                let pid = try request.spawn()
                state.waiters[pid] = onExit.map { .callback($0) } ?? .blocking(DispatchSemaphore(value: 0))
                return .success(pid)
            } catch {
                return .failure(error)
            }
        }
        childrenSpawned.signal()
        return try result.get()
    }

    /// Blocks until the child spawned without a callback has exited.
    public func wait(_ pid: pid_t) -> ExitStatus {
        let semaphore: DispatchSemaphore? = state.withLock { state in
            if case .blocking(let semaphore)? = state.waiters[pid] { return semaphore }
            return nil
        }
        guard let semaphore else { preconditionFailure("wait for pid \(pid), which was not spawned for waiting") }
        semaphore.wait()
        return state.withLock { state in
            state.waiters[pid] = nil
            return state.finished.removeValue(forKey: pid) ?? .exited(0)
        }
    }

    private func startThread() {
        do {
            try Threads.start(name: "lava-reaper") { [self] in self.reapForever() }
        } catch {
            // Without its reaper the process cannot run children at all.
            preconditionFailure(error.message)
        }
    }

    private func reapForever() -> Never {
        while true {
            var status: Int32 = 0
            let pid = wait4(-1, &status, 0, nil)
            if pid < 0 {
                if errno == ECHILD { childrenSpawned.wait() }
                continue
            }
            let exit = ExitStatus(waitStatus: status)
            let callback: (@Sendable (ExitStatus) -> Void)? = state.withLock { state in
                switch state.waiters[pid] {
                case .blocking(let semaphore)?:
                    state.finished[pid] = exit
                    semaphore.signal()
                    return nil
                case .callback(let callback)?:
                    state.waiters[pid] = nil
                    return callback
                case nil:
                    return nil  // not ours to report (cannot happen: every child is spawned here)
                }
            }
            callback?(exit)
        }
    }
}
