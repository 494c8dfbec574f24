import CShim
import LavaSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The drain's lifecycle action, looked up on a thread of its own while the daemons drain
/// (SPEC §8): lookups Auto Scaling answers slowly, or not at all, never hold up the daemons'
/// SIGTERM and SIGKILL. Once the action is known, its hook's GlobalTimeout may bring the
/// deadline closer (`closer` is told the new one) and heartbeats start.
final class DrainLookup: Sendable {
    private struct Found {
        var done = false
        var action: LifecycleAction?
        var deadline: Double
        var heartbeats: HeartbeatLoop?
    }

    private let lifecycle: Lifecycle
    private let reason: StopReason
    private let triggeredAt: Double
    /// The drain's deadline fixed at the trigger (monotonic seconds).
    private let deadline: Double
    private let heartbeatInterval: Double
    private let logger: Logger
    private let closer: @Sendable (Double) -> Void
    /// A Monitor, not a Mutex: `finish` waits for the lookup, until the deadline at most.
    private let found: Monitor<Found>
    /// Written once the lookup must end: its IMDS and Auto Scaling calls stop at once.
    private let cancel: (read: Int32, write: Int32)
    private let thread = SharedValue<pthread_t>()

    init(lifecycle: Lifecycle, reason: StopReason, triggeredAt: Double, deadline: Double, heartbeatInterval: Double,
         logger: Logger, closer: @escaping @Sendable (Double) -> Void) {
        self.lifecycle = lifecycle
        self.reason = reason
        self.triggeredAt = triggeredAt
        self.deadline = deadline
        self.heartbeatInterval = heartbeatInterval
        self.logger = logger
        self.closer = closer
        found = Monitor(Found(deadline: deadline))
        var fds: [Int32] = [-1, -1]
        precondition(lava_pipe_cloexec(&fds) == 0, "pipe2 for the lifecycle lookup: \(String(cString: strerror(errno)))")
        cancel = (fds[0], fds[1])
    }

    deinit {
        close(cancel.read)
        close(cancel.write)
    }

    /// Starts the lookup; without a thread for it, the drain makes no lifecycle calls (logged).
    func start() {
        do {
            thread.set(try Threads.start(name: "lava-drain-look", joinable: true) { [self] in lookUp() })
        } catch {
            logger.error("cannot start the lifecycle lookup thread: \(error.message); no lifecycle calls")
        }
    }

    /// After the daemons are gone: waits for the lookup until the deadline, then cancels it, joins
    /// its thread and stops the heartbeats. The action found, with the deadline to complete it by.
    func finish() -> (action: LifecycleAction, deadline: Double)? {
        guard let thread = thread.value else { return nil }
        if !found.wait(until: deadline, for: { $0.done }) {
            logger.warning("the lifecycle action is still not known at the deadline: no completion")
            var byte: UInt8 = 1
            _ = write(cancel.write, &byte, 1)
        }
        Threads.join(thread)
        let result = found.withLock { $0 }
        result.heartbeats?.finish()
        return result.action.map { ($0, result.deadline) }
    }

    private func lookUp() {
        let action = lifecycle.action(reason.lifecycle, cancel: cancel.read)
        var deadline = self.deadline
        // Only a limit still ahead: one already passed would leave no time at all.
        if let global = action?.limits.globalTimeout.map({ triggeredAt + Double($0) }),
           global < deadline, global > Clock.monotonicSeconds() {
            deadline = global
            closer(global)
        }
        var heartbeats: HeartbeatLoop? = nil
        if let action {
            logger.info("lifecycle action: group \(action.group), hook \(action.hook), instance \(action.instanceID)")
            if deadline < self.deadline {
                logger.info("hook \(action.hook)'s GlobalTimeout ends the drain sooner: done within \(Int(saturating: max(0, deadline - Clock.monotonicSeconds()))) s")
                lifecycle.update { $0.drain?.deadline = Clock.wallSeconds() + (deadline - Clock.monotonicSeconds()) }
            }
            if reason.lifecycle?.heartbeat != false {
                let interval = lifecycle.heartbeatInterval(heartbeatInterval, hook: action.hook, limits: action.limits)
                // One interval after the trigger, or at once when the lookup took longer (SPEC §14).
                heartbeats = HeartbeatLoop(action: action, lifecycle: lifecycle, interval: interval,
                                           first: max(0, triggeredAt + interval - Clock.monotonicSeconds()), logger: logger)
            }
        }
        found.withLock { $0 = Found(done: true, action: action, deadline: deadline, heartbeats: heartbeats) }
    }
}
