import LavaAWS
import LavaSystem
import Logging

extension LifecycleAction {
    /// CONTINUE (or ABANDON), retried on every error (including "No active Lifecycle Action
    /// found", which Auto Scaling answers for a while after `Terminated`) until it succeeds or
    /// `deadline` (monotonic seconds), with a heartbeat every `heartbeatEvery` seconds meanwhile.
    /// With `trigger`, the retries also end once it fires (error code `stopped`).
    public func complete(_ result: String = "CONTINUE", with autoScaling: AutoScalingClient, until deadline: Double,
                         heartbeatEvery: Double? = nil, stoppingOn trigger: StopTrigger? = nil, logger: Logger) throws(LavaError) {
        var attempt = 0
        var lastHeartbeat = Clock.monotonicSeconds()
        while true {
            attempt += 1
            do throws(LavaError) {
                try autoScaling.completeLifecycleAction(group: group, hook: hook, instanceID: instanceID, token: token, result: result)
                logger.info("completed the lifecycle action: \(result) (group \(group), hook \(hook))")
                return
            } catch {
                let wait = min(5, 0.5 * Double(1 << min(attempt, 4)))
                guard Clock.monotonicSeconds() + wait < deadline else {
                    logger.error("could not complete the lifecycle action before the deadline: \(error.message)")
                    throw error
                }
                if let every = heartbeatEvery, Clock.monotonicSeconds() - lastHeartbeat >= every {
                    try? autoScaling.recordHeartbeat(group: group, hook: hook, instanceID: instanceID, token: token)
                    lastHeartbeat = Clock.monotonicSeconds()
                }
                logger.warning("completing the lifecycle action failed (attempt \(attempt)): \(error.message); retrying in \(wait) s")
                guard let trigger else {
                    Clock.sleep(seconds: wait)
                    continue
                }
                if trigger.wait(seconds: wait) {
                    logger.warning("stopping: no more attempts to complete the lifecycle action of hook \(hook)")
                    throw LavaError(.stopped, "a stop came first (last answer: \(error.message))")
                }
            }
        }
    }
}
