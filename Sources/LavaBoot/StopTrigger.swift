import CShim
import Dispatch
import LavaSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Why the agent drains, and how; the first trigger wins.
public struct StopReason: Sendable, Equatable {
    public var source: String
    /// The signal sent to every daemon first (SIGHUP: finish in-flight jobs, then exit).
    public var signal: Int32
    /// A hard deadline (monotonic seconds) that cuts the budget short: a spot interruption's.
    public var deadline: Double?
    /// The lifecycle action a `stop` request named.
    public var lifecycle: LifecycleOverrides?

    public init(source: String, signal: Int32 = SIGHUP, lifecycle: LifecycleOverrides? = nil) {
        self.source = source
        self.signal = signal
        self.lifecycle = lifecycle
    }
}

/// A one-shot latch the signal thread, the control socket and (later) IMDS watchers pull.
public final class StopTrigger: Sendable {
    private let reason = Mutex<(StopReason, Double)?>(nil)
    private let fired = DispatchSemaphore(value: 0)
    private let firedPipe: (read: Int32, write: Int32)

    public init() {
        var fds: [Int32] = [-1, -1]
        // Without it a running scriptlet would only see the stop at its end: that must not be.
        precondition(lava_pipe_cloexec(&fds) == 0, "pipe2 for the stop trigger: \(String(cString: strerror(errno)))")
        firedPipe = (fds[0], fds[1])
    }

    /// Turns readable once a trigger has fired (and stays so), for poll() loops.
    public var descriptor: Int32 { firedPipe.read }

    /// Records the first reason; later ones are ignored. Returns whether this one was first.
    @discardableResult
    public func fire(_ stop: StopReason) -> Bool {
        let first = reason.withLock { current in
            if current != nil { return false }
            current = (stop, Clock.monotonicSeconds())
            return true
        }
        if first {
            var byte: UInt8 = 1
            _ = write(firedPipe.write, &byte, 1)
            fired.signal()
        }
        return first
    }

    public var current: (reason: StopReason, at: Double)? { reason.withLock { $0.map { ($0.0, $0.1) } } }

    /// Blocks until a trigger fires.
    public func wait() -> (reason: StopReason, at: Double) {
        fired.wait()
        fired.signal()  // later waiters pass too
        return current!
    }

    /// Sleeps up to `seconds`, less when a trigger fires; true when one has.
    public func wait(seconds: Double) -> Bool {
        Clock.sleep(seconds: seconds, unless: descriptor)
    }

    /// Blocks SIGTERM and SIGINT in this thread (and every thread started after), and turns
    /// them into a stop on a thread of their own; ignores SIGHUP. Call before any other thread exists.
    public func catchTerminationSignals() throws(LavaError) {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        // A hangup of the terminal that started the agent must not kill it and orphan the workers.
        // (The child side of spawn resets every disposition, so workers still get SIGHUP's default.)
        signal(SIGHUP, SIG_IGN)
        let blocked = set
        try Threads.start(name: "lava-signals") { [self] in
            var waitSet = blocked
            var number: Int32 = 0
            while sigwait(&waitSet, &number) == 0 {
                self.fire(StopReason(source: signalName(number)))
            }
        }
    }
}
