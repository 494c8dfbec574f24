import Dispatch
import LavaControl
import LavaSystem
import Logging

/// `RecordLifecycleActionHeartbeat` every `interval` on a thread of its own, from `first` seconds
/// (one interval unless given) after the start until `finish`, which returns only once no
/// heartbeat is in flight: none is ever sent after the completion. Errors are logged, never
/// fatal to the drain.
final class HeartbeatLoop: Sendable {
    private let stopRequested = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)

    /// `record`: show the heartbeats in the drain's status.
    init(action: LifecycleAction, lifecycle: Lifecycle, interval: Double, first: Double? = nil, logger: Logger, record: Bool = true) {
        let stopRequested = self.stopRequested, stopped = self.stopped
        let wallNext: @Sendable () -> Double = { Clock.wallSeconds() + interval }
        if record { lifecycle.update { $0.drain?.nextHeartbeat = Clock.wallSeconds() + (first ?? interval) } }
        do {
            try Threads.start(name: "lava-heartbeat") {
                defer { stopped.signal() }
                var wait = first ?? interval
                while stopRequested.wait(timeout: .now() + .milliseconds(Int(saturating: wait * 1000))) == .timedOut {
                    wait = interval
                    do throws(LavaError) {
                        try lifecycle.heartbeat(action)
                        if record {
                            lifecycle.update {
                                $0.drain?.heartbeatsSent += 1
                                $0.drain?.nextHeartbeat = wallNext()
                            }
                        }
                        logger.info("lifecycle heartbeat sent (group \(action.group), hook \(action.hook))")
                    } catch {
                        logger.warning("lifecycle heartbeat failed: \(error.message); trying again at the next interval")
                    }
                }
                if record { lifecycle.update { $0.drain?.nextHeartbeat = nil } }
            }
        } catch {
            logger.error("cannot start the heartbeat thread: \(error.message)")
            stopped.signal()
        }
    }

    func finish() {
        stopRequested.signal()
        stopped.wait()
    }
}
