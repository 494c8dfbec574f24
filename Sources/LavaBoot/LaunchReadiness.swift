import LavaSystem
import Logging

/// The launch action of this boot (SPEC §8a): heartbeats while the boot gets ready, then one
/// completion, CONTINUE when ready or ABANDON when the boot fails. Nil when no action waits.
final class LaunchReadiness {
    let action: LifecycleAction
    let lifecycle: Lifecycle
    let logger: Logger
    /// A stop ends the completion's retries: the drain must not wait behind them.
    let trigger: StopTrigger?
    private var heartbeats: HeartbeatLoop?
    /// The longest the completion is retried, unless the hook's GlobalTimeout is shorter.
    static let completionLimit = 300.0

    init?(lifecycle: Lifecycle, interval: Double, trigger: StopTrigger?, logger: Logger) {
        guard let action = lifecycle.launchAction() else { return nil }
        self.action = action
        self.lifecycle = lifecycle
        self.trigger = trigger
        self.logger = logger
        logger.info("launch action waiting (group \(action.group), hook \(action.hook)): completing it once the boot is ready")
        lifecycle.update { $0.launch = "waiting for readiness (hook \(action.hook))" }
        heartbeats = HeartbeatLoop(action: action, lifecycle: lifecycle,
                                   interval: lifecycle.heartbeatInterval(interval, hook: action.hook, limits: action.limits),
                                   logger: logger, record: false)
    }

    func stopHeartbeats() {
        heartbeats?.finish()
        heartbeats = nil
    }

    /// Exactly once: stops the heartbeats first, so none follows the completion.
    func complete(_ result: String, because why: String) {
        guard heartbeats != nil else { return }
        stopHeartbeats()
        logger.info("completing the launch action \(result): \(why)")
        do throws(LavaError) {
            let limit = min(LaunchReadiness.completionLimit, action.limits.globalTimeout.map(Double.init) ?? .infinity)
            try action.complete(result, with: try lifecycle.autoScaling(), until: Clock.monotonicSeconds() + limit,
                                stoppingOn: trigger, logger: logger)
            lifecycle.update { $0.launch = "\(result) accepted" + (result == "ABANDON" ? ": \(why)" : "") }
        } catch {
            lifecycle.update { $0.launch = "\(result) failed: \(error.message)" }
        }
    }
}
