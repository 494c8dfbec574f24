import LavaAWS
import LavaControl
import LavaJSON
import LavaSystem
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The lifecycle action an instance completes: by instance id, with a token only when given.
public struct LifecycleAction: Sendable, Equatable {
    public var group: String
    public var hook: String
    public var instanceID: String
    public var token: String?

    public init(group: String, hook: String, instanceID: String, token: String?) {
        self.group = group
        self.hook = hook
        self.instanceID = instanceID
        self.token = token
    }
}

/// What a `stop` request names, each field optional (the old stop utility's flags).
public struct LifecycleOverrides: Sendable, Equatable {
    public var group: String?
    public var hook: String?
    public var token: String?
    public var instanceID: String?
    /// false: no heartbeats during this drain.
    public var heartbeat: Bool?

    public init(group: String? = nil, hook: String? = nil, token: String? = nil, instanceID: String? = nil, heartbeat: Bool? = nil) {
        self.group = group
        self.hook = hook
        self.token = token
        self.instanceID = instanceID
        self.heartbeat = heartbeat
    }
}

/// The agent's link to Auto Scaling and the instance metadata (SPEC §8): finds the group and
/// its terminating hook, watches IMDS for the termination triggers and the notices, and sends
/// heartbeats and the one completion. No AWS call happens under its lock.
public final class Lifecycle: Sendable {
    static let terminatingTransition = "autoscaling:EC2_INSTANCE_TERMINATING"
    static let launchingTransition = "autoscaling:EC2_INSTANCE_LAUNCHING"
    static let targetStatePath = "/latest/meta-data/autoscaling/target-lifecycle-state"
    static let spotPath = "/latest/meta-data/spot/instance-action"
    static let rebalancePath = "/latest/meta-data/events/recommendations/rebalance"
    static let scheduledPath = "/latest/meta-data/events/maintenance/scheduled"

    let imds: IMDSClient
    /// Made on first use and kept once made: the region may come from an IMDS that is not
    /// answering yet at boot.
    private let makeAutoScaling: @Sendable () throws(LavaError) -> AutoScalingClient
    private let madeAutoScaling = SharedValue<AutoScalingClient>()
    let logger: Logger
    /// Seconds between IMDS polls; a target state IMDS does not have (404) is polled 12 times less often.
    let pollInterval: Double

    private struct State {
        var status = LifecycleStatus()
        var hookTimeouts: (heartbeat: Int?, global: Int?) = (nil, nil)
        var seenNotices = Set<String>()
        /// The group's launching hook and the instance's lifecycle state (`Pending:Wait`...).
        var launchHook: String?
        var instanceState: String?
    }

    private let state = Mutex(State())

    public init(imds: IMDSClient, pollInterval: Double, logger: Logger,
                autoScaling: @escaping @Sendable () throws(LavaError) -> AutoScalingClient) {
        self.imds = imds
        self.makeAutoScaling = autoScaling
        self.pollInterval = pollInterval
        self.logger = logger
    }

    public var status: LifecycleStatus { state.withLock { $0.status } }

    func autoScaling() throws(LavaError) -> AutoScalingClient {
        if let made = madeAutoScaling.value { return made }
        let made = try makeAutoScaling()
        madeAutoScaling.set(made)
        return made
    }

    func update(_ change: (inout LifecycleStatus) -> Void) { state.withLock { change(&$0.status) } }

    /// At boot: the target state IMDS gives (warm pools), this instance's group and lifecycle
    /// state, its launching and terminating hooks, with the latter's limits. Not in a group, or
    /// no permission: logged, and neither launch nor drain makes lifecycle calls.
    public func discover(budget: Double, heartbeatInterval: Double) {
        if let target = try? imds.get(Lifecycle.targetStatePath).map(Lifecycle.trimmed) {
            update { $0.targetState = target }
            logger.info("target lifecycle state at boot: \(target)")
        }
        do {
            let autoScaling = try autoScaling()
            guard let instanceID = try imds.instanceID() else { return logger.warning("IMDS has no instance id; no lifecycle calls") }
            update { $0.instanceID = instanceID }
            guard let instance = try autoScaling.describeInstance(instanceID) else {
                return logger.info("instance \(instanceID) is in no Auto Scaling group: the drain makes no lifecycle calls")
            }
            update { $0.group = instance.group }
            let hooks = try autoScaling.describeLifecycleHooks(group: instance.group)
            let launchHook = hooks.first { $0.transition == Lifecycle.launchingTransition }?.name
            state.withLock {
                $0.launchHook = launchHook
                $0.instanceState = instance.lifecycleState
            }
            let launchText = launchHook.map { ", launching hook \($0)" } ?? ", no launching hook"
            logger.info("instance \(instanceID) is \(instance.lifecycleState) in Auto Scaling group \(instance.group)\(launchText)")
            guard let hook = hooks.first(where: { $0.transition == Lifecycle.terminatingTransition }) else {
                return logger.info("Auto Scaling group \(instance.group) has no terminating lifecycle hook")
            }
            state.withLock {
                $0.status.hook = hook.name
                $0.hookTimeouts = (hook.heartbeatTimeout, hook.globalTimeout)
            }
            logger.info("Auto Scaling group \(instance.group), terminating hook \(hook.name) (heartbeat timeout \(hook.heartbeatTimeout.map(String.init) ?? "?") s, global timeout \(hook.globalTimeout.map(String.init) ?? "?") s)")
            if let global = hook.globalTimeout, budget > Double(global) {
                logger.warning("the stop budget (\(Int(saturating: budget)) s) is longer than hook \(hook.name)'s GlobalTimeout (\(global) s): Auto Scaling gives up first; raise the hook's heartbeat timeout or lower stop_minutes. The drain plans for \(global) s")
            }
            if let timeout = hook.heartbeatTimeout, heartbeatInterval >= Double(timeout) {
                logger.warning("heartbeat interval \(Int(saturating: heartbeatInterval)) s is not below hook \(hook.name)'s HeartbeatTimeout (\(timeout) s): sending every \(timeout / 2) s")
            }
        } catch {
            logger.warning("cannot look up this instance's Auto Scaling group: \(error.message); the drain makes no lifecycle calls unless stop names them")
        }
    }

    /// A boot that fails before it has a plan (missing realm, no package for this platform):
    /// the launch action, if one waits, is completed ABANDON so the group replaces the instance.
    public func abandonLaunch(because why: String) {
        discover(budget: 0, heartbeatInterval: 0)
        LaunchReadiness(lifecycle: self, interval: 3600, logger: logger)?.complete("ABANDON", because: why)
    }

    /// A stop that came before the boot had a plan: nothing to drain, but the terminating
    /// action (named by the request, else looked up) is completed CONTINUE.
    public func completeTermination(_ reason: StopReason, until deadline: Double) {
        guard let action = action(reason.lifecycle) else { return }
        let client: AutoScalingClient
        do { client = try autoScaling() } catch {
            logger.error("cannot complete the lifecycle action: \(error.message)")
            return
        }
        try? action.complete(with: client, until: deadline, logger: logger)  // it logs a failure
    }

    /// The launch action waiting for this boot (`Pending:Wait`, `Warmed:Pending:Wait`), if any.
    public func launchAction() -> LifecycleAction? {
        let (hook, instanceState) = state.withLock { ($0.launchHook, $0.instanceState) }
        let known = status
        guard let hook, let instanceState, instanceState.hasSuffix("Pending:Wait"),
              let group = known.group, let instanceID = known.instanceID else { return nil }
        return LifecycleAction(group: group, hook: hook, instanceID: instanceID, token: nil)
    }

    /// The instance's lifecycle state asked again (after a warm instance enters service).
    func refreshInstanceState() {
        guard let instanceID = status.instanceID,
              let instance = try? autoScaling().describeInstance(instanceID) else { return }
        state.withLock { $0.instanceState = instance.lifecycleState }
        logger.info("instance \(instanceID) is \(instance.lifecycleState)")
    }

    /// IMDS's target lifecycle state now (nil: IMDS has none, or does not answer).
    func targetStateNow() -> String? {
        let target = (try? imds.get(Lifecycle.targetStatePath))?.map(Lifecycle.trimmed)
        if let target { update { $0.targetState = target } }
        return target
    }

    /// The heartbeat interval the hook allows: half its HeartbeatTimeout when `wanted` is not below it.
    func heartbeatInterval(_ wanted: Double) -> Double {
        guard let timeout = state.withLock({ $0.hookTimeouts.heartbeat }), wanted >= Double(timeout) else { return wanted }
        return Double(timeout) / 2
    }

    /// The longest Auto Scaling waits for this hook, when known.
    var globalTimeout: Double? { state.withLock { $0.hookTimeouts.global.map(Double.init) } }

    /// The action to complete: what the request names first, then what discovery found, then
    /// (for a trigger that came before discovery could run) Auto Scaling asked now.
    func action(_ overrides: LifecycleOverrides?) -> LifecycleAction? {
        let known = status
        guard let instanceID = overrides?.instanceID ?? known.instanceID ?? (try? imds.instanceID()) ?? nil else { return nil }
        var group = overrides?.group ?? known.group
        let autoScaling = try? autoScaling()
        if group == nil { group = (try? autoScaling?.describeInstance(instanceID))??.group }
        var hook = overrides?.hook ?? (group == known.group ? known.hook : nil)
        if hook == nil, let group {
            hook = (try? autoScaling?.describeLifecycleHooks(group: group))?.first { $0.transition == Lifecycle.terminatingTransition }?.name
        }
        guard let group, let hook else { return nil }
        update {
            $0.group = group
            $0.hook = hook
            $0.instanceID = instanceID
        }
        return LifecycleAction(group: group, hook: hook, instanceID: instanceID, token: overrides?.token)
    }

    func heartbeat(_ action: LifecycleAction) throws(LavaError) {
        try autoScaling().recordHeartbeat(group: action.group, hook: action.hook, instanceID: action.instanceID, token: action.token)
    }

    // MARK: watching IMDS

    static func trimmed(_ text: String) -> String {
        String(text.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }

    /// One thread polling IMDS until the trigger fires: `Terminated` and a spot notice fire it;
    /// rebalance recommendations and scheduled events are logged once each. IMDS failing for a
    /// while is logged once per outage, never a trigger.
    public func watch(_ trigger: StopTrigger) throws(LavaError) {
        try Threads.start(name: "lava-lifecycle") { [self] in
            var nextTargetState = 0.0
            var failing = false
            while trigger.current == nil {
                let now = Clock.monotonicSeconds()
                do throws(LavaError) {
                    if now >= nextTargetState {
                        let targetState = try imds.get(Lifecycle.targetStatePath).map(Lifecycle.trimmed)
                        nextTargetState = now + (targetState == nil ? pollInterval * 12 : pollInterval)
                        let previous = status.targetState
                        update { $0.targetState = targetState }
                        if let targetState, targetState != previous { logger.info("target lifecycle state: \(targetState)") }
                        if targetState == "Terminated" {
                            trigger.fire(StopReason(source: "Auto Scaling: target lifecycle state Terminated"))
                        }
                    }
                    try checkSpot(trigger)
                    try checkNotices()
                    if failing { logger.info("instance metadata answers again") }
                    failing = false
                } catch {
                    if !failing { logger.warning("instance metadata: \(error.message); polling on") }
                    failing = true
                }
                Clock.sleep(seconds: pollInterval)
            }
        }
    }

    private func checkSpot(_ trigger: StopTrigger) throws(LavaError) {
        guard let text = try imds.get(Lifecycle.spotPath), let json = try? JSONValue(parsing: text) else { return }
        guard let time = json["time"]?.stringValue, let epoch = CivilTime.epochSeconds(iso8601: time) else { return }
        let action = json["action"]?.stringValue ?? "terminate"
        // Everything done 15 s before the instance goes.
        let deadline = Clock.monotonicSeconds() + (epoch - Clock.wallSeconds()) - 15
        var reason = StopReason(source: "spot interruption: \(action) at \(time)")
        reason.deadline = deadline
        trigger.fire(reason)
    }

    private func checkNotices() throws(LavaError) {
        var found = [String]()
        if let text = try imds.get(Lifecycle.rebalancePath).map(Lifecycle.trimmed), !text.isEmpty {
            found.append("spot rebalance recommendation: \(text)")
        }
        if let text = try imds.get(Lifecycle.scheduledPath), case .array(let events)? = try? JSONValue(parsing: text) {
            for event in events {
                let code = event["Code"]?.stringValue ?? "event"
                let when = event["NotBefore"]?.stringValue ?? "?"
                found.append("scheduled \(code) from \(when) (\(event["EventId"]?.stringValue ?? "-")): \(event["Description"]?.stringValue ?? "")")
            }
        }
        let new: [String] = state.withLock { state in
            let new = found.filter { state.seenNotices.insert($0).inserted }
            state.status.notices += new
            return new
        }
        for notice in new { logger.warning("\(notice)") }
    }
}
