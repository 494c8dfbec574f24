import LavaAWS
import LavaControl
import LavaJSON
import LavaSystem
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What a lifecycle hook allows, in seconds, when known: Auto Scaling gives up after
/// `heartbeatTimeout` without a heartbeat, and after `globalTimeout` whatever is sent.
public struct HookLimits: Sendable, Equatable {
    public var heartbeatTimeout: Int?
    public var globalTimeout: Int?

    public init(heartbeatTimeout: Int? = nil, globalTimeout: Int? = nil) {
        self.heartbeatTimeout = heartbeatTimeout
        self.globalTimeout = globalTimeout
    }

    init(_ hook: AutoScalingClient.LifecycleHook) {
        self.init(heartbeatTimeout: hook.heartbeatTimeout, globalTimeout: hook.globalTimeout)
    }

    /// `wanted`, or half the HeartbeatTimeout when `wanted` is not below it.
    public func heartbeatInterval(_ wanted: Double) -> Double {
        guard let heartbeatTimeout, wanted >= Double(heartbeatTimeout) else { return wanted }
        return Double(heartbeatTimeout) / 2
    }
}

/// The lifecycle action an instance completes: by instance id, with a token only when given,
/// and the limits of the hook it belongs to.
public struct LifecycleAction: Sendable, Equatable {
    public var group: String
    public var hook: String
    public var instanceID: String
    public var token: String?
    public var limits: HookLimits

    public init(group: String, hook: String, instanceID: String, token: String?, limits: HookLimits = HookLimits()) {
        self.group = group
        self.hook = hook
        self.instanceID = instanceID
        self.token = token
        self.limits = limits
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

    /// nil: IMDS is turned off (`AWS_EC2_METADATA_DISABLED`); only a `stop` naming the instance works then.
    let imds: IMDSClient?
    /// Made on first use and kept once made: the region may come from an IMDS that is not
    /// answering yet at boot.
    private let makeAutoScaling: @Sendable () throws(LavaError) -> AutoScalingClient
    private let madeAutoScaling = SharedValue<AutoScalingClient>()
    let logger: Logger
    /// The waits between a boot's tries of a call that keeps failing (its base; time bounds the tries).
    let backoff: RetryPolicy
    /// How long discovery at boot tries again calls that fail for a while: long enough to ride
    /// out a throttling burst or a short Auto Scaling or IMDS outage; the boot waits meanwhile.
    static let discoveryLimit = 300.0
    /// Seconds between IMDS polls; a target state IMDS does not have (404) is polled 12 times less often.
    let pollInterval: Double

    private struct State {
        var status = LifecycleStatus()
        var seenNotices = Set<String>()
        /// The group's hooks found at boot, and the instance's lifecycle state (`Pending:Wait`...).
        var terminatingHook: AutoScalingClient.LifecycleHook?
        var launchHook: AutoScalingClient.LifecycleHook?
        var instanceState: String?
        /// Hooks whose shortened heartbeat interval has been logged.
        var shortenedLogged = Set<String>()
    }

    private let state = Mutex(State())

    public init(imds: IMDSClient?, pollInterval: Double, backoff: RetryPolicy, logger: Logger,
                autoScaling: @escaping @Sendable () throws(LavaError) -> AutoScalingClient) {
        self.imds = imds
        self.backoff = backoff
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
    /// no permission: logged, and neither launch nor drain makes lifecycle calls. Calls that fail
    /// for a while are tried again until they answer, for up to `discoveryLimit` seconds in all,
    /// and only until a stop.
    public func discover(budget: Double, heartbeatInterval: Double, stoppingOn trigger: StopTrigger) {
        let deadline = Clock.monotonicSeconds() + Lifecycle.discoveryLimit
        func persistently<T>(_ what: String, _ call: () throws(LavaError) -> T) throws(LavaError) -> T {
            try self.persistently(what, until: deadline, stoppingOn: trigger, call)
        }
        do throws(LavaError) {
            // Only IMDS's answer (a 404 too) tells a warm-up from a normal boot.
            do throws(LavaError) {
                if let imds, let target = try persistently("reading the target lifecycle state", { () throws(LavaError) in
                    try imds.get(Lifecycle.targetStatePath)
                }).map(Lifecycle.trimmed) {
                    update { $0.targetState = target }
                    logger.info("target lifecycle state at boot: \(target)")
                }
            } catch where error.code != .stopped {
                logger.warning("cannot read the target lifecycle state: \(error.message); a normal boot, not a warm-up")
            }
            let autoScaling = try persistently("making the Auto Scaling client", autoScaling)
            guard let instanceID = try persistently("reading the instance id", { () throws(LavaError) in try imds?.instanceID() }) else {
                return logger.warning("IMDS has no instance id; no lifecycle calls")
            }
            update { $0.instanceID = instanceID }
            guard let instance = try persistently("looking up this instance's Auto Scaling group", { () throws(LavaError) in
                try autoScaling.describeInstance(instanceID)
            }) else {
                return logger.info("instance \(instanceID) is in no Auto Scaling group: the drain makes no lifecycle calls")
            }
            update { $0.group = instance.group }
            let hooks = try persistently("reading Auto Scaling group \(instance.group)'s lifecycle hooks", { () throws(LavaError) in
                try autoScaling.describeLifecycleHooks(group: instance.group)
            })
            let launchHook = hooks.first { $0.transition == Lifecycle.launchingTransition }
            state.withLock {
                $0.launchHook = launchHook
                $0.instanceState = instance.lifecycleState
            }
            let launchText = launchHook.map { ", launching hook \($0.name)" } ?? ", no launching hook"
            logger.info("instance \(instanceID) is \(instance.lifecycleState) in Auto Scaling group \(instance.group)\(launchText)")
            if let launchHook { _ = self.heartbeatInterval(heartbeatInterval, hook: launchHook.name, limits: HookLimits(launchHook)) }
            guard let hook = hooks.first(where: { $0.transition == Lifecycle.terminatingTransition }) else {
                return logger.info("Auto Scaling group \(instance.group) has no terminating lifecycle hook")
            }
            state.withLock {
                $0.status.hook = hook.name
                $0.terminatingHook = hook
            }
            logger.info("Auto Scaling group \(instance.group), terminating hook \(hook.name) (heartbeat timeout \(hook.heartbeatTimeout.map(String.init) ?? "?") s, global timeout \(hook.globalTimeout.map(String.init) ?? "?") s)")
            if let global = hook.globalTimeout, budget > Double(global) {
                logger.warning("the stop budget (\(Int(saturating: budget)) s) is longer than hook \(hook.name)'s GlobalTimeout (\(global) s): Auto Scaling gives up first; raise the hook's heartbeat timeout or lower stop_minutes. The drain plans for \(global) s")
            }
            _ = self.heartbeatInterval(heartbeatInterval, hook: hook.name, limits: HookLimits(hook))
        } catch where error.code == .stopped {
            logger.info("\(error.message); no lifecycle lookup")
        } catch {
            logger.warning("cannot look up this instance's Auto Scaling group: \(error.message); the drain makes no lifecycle calls unless stop names them")
        }
    }

    /// `call` until it answers: a transient failure (throttling, a 5xx, no connection, past the
    /// client's own retries) is tried again with backoff until `deadline`; a stop ends the waiting
    /// at once (error code `stopped`). Any other failure is thrown as it comes.
    private func persistently<T>(_ what: String, until deadline: Double, stoppingOn trigger: StopTrigger,
                                 _ call: () throws(LavaError) -> T) throws(LavaError) -> T {
        var attempt = 1
        while true {
            do throws(LavaError) {
                let answer = try call()
                if attempt > 1 { logger.info("\(what): answered after \(attempt) tries") }
                return answer
            } catch where error.isTransientAWSFailure {
                let wait = backoff.delay(afterAttempt: attempt)
                let left = deadline - Clock.monotonicSeconds()
                guard wait < left else { throw error }
                if attempt == 1 { logger.warning("\(what): \(error.message); trying again for up to \(Int(saturating: left)) s") }
                if trigger.wait(seconds: wait) {
                    throw LavaError(.stopped, "a stop came while \(what) (last answer: \(error.message))")
                }
                attempt += 1
            }
        }
    }

    /// A boot that fails before it has a plan (missing realm, no package for this platform):
    /// the launch action, if one waits, is completed ABANDON so the group replaces the instance.
    /// A stop ends the lookups and the retries at once: the terminating action comes first.
    public func abandonLaunch(because why: String, stoppingOn trigger: StopTrigger) {
        discover(budget: 0, heartbeatInterval: 0, stoppingOn: trigger)
        LaunchReadiness(lifecycle: self, interval: 3600, trigger: trigger, logger: logger)?.complete("ABANDON", because: why)
    }

    /// The launch action waiting for this boot (`Pending:Wait`, `Warmed:Pending:Wait`), if any.
    public func launchAction() -> LifecycleAction? {
        let (hook, instanceState) = state.withLock { ($0.launchHook, $0.instanceState) }
        let known = status
        guard let hook, let instanceState, instanceState.hasSuffix("Pending:Wait"),
              let group = known.group, let instanceID = known.instanceID else { return nil }
        return LifecycleAction(group: group, hook: hook.name, instanceID: instanceID, token: nil, limits: HookLimits(hook))
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
        let target = (try? imds?.get(Lifecycle.targetStatePath))??.map(Lifecycle.trimmed)
        if let target { update { $0.targetState = target } }
        return target
    }

    /// `wanted`, or half the hook's HeartbeatTimeout when `wanted` is not below it: Auto Scaling
    /// would give up between two heartbeats. Logged once per hook.
    func heartbeatInterval(_ wanted: Double, hook: String, limits: HookLimits) -> Double {
        let interval = limits.heartbeatInterval(wanted)
        guard interval != wanted, let timeout = limits.heartbeatTimeout,
              state.withLock({ $0.shortenedLogged.insert(hook).inserted }) else { return interval }
        let every = interval == interval.rounded() ? "\(Int(saturating: interval))" : "\(interval)"
        logger.warning("heartbeat interval \(Int(saturating: wanted)) s is not below hook \(hook)'s HeartbeatTimeout (\(timeout) s): sending every \(every) s")
        return interval
    }

    /// The action to complete, with its hook's limits: what the request names first, then what
    /// discovery found, then Auto Scaling asked now. Nil (logged) when there is none to complete.
    /// `cancel`, once readable, ends the lookups at once (then nil too).
    func action(_ overrides: LifecycleOverrides?, cancel: Int32? = nil) -> LifecycleAction? {
        let known = status
        let bootHook = state.withLock { $0.terminatingHook }
        do throws(LavaError) {
            let autoScaling = { () throws(LavaError) in
                let client = try self.autoScaling()
                return cancel.map(client.cancelling(on:)) ?? client
            }
            var instanceID = overrides?.instanceID ?? known.instanceID
            if instanceID == nil { instanceID = try imds?.instanceID(cancel: cancel) }
            guard let instanceID else {
                logger.warning("the instance id is unknown (IMDS gives none): no lifecycle calls")
                return nil
            }
            var group = overrides?.group ?? known.group
            if group == nil { group = try autoScaling().describeInstance(instanceID)?.group }
            guard let group else {
                logger.info("instance \(instanceID) is in no Auto Scaling group: no lifecycle calls")
                return nil
            }
            // Discovery's hook only for discovery's group; one named otherwise is looked up for its limits.
            var hook = group == known.group ? bootHook : nil
            if let named = overrides?.hook, hook?.name != named {
                return resolved(group: group, hook: named, limits: namedHookLimits(named, group: group, autoScaling), instanceID, overrides?.token)
            }
            if hook == nil {
                hook = try autoScaling().describeLifecycleHooks(group: group).first { $0.transition == Lifecycle.terminatingTransition }
            }
            guard let hook else {
                logger.info("Auto Scaling group \(group) has no terminating lifecycle hook: no lifecycle calls")
                return nil
            }
            return resolved(group: group, hook: hook.name, limits: HookLimits(hook), instanceID, overrides?.token)
        } catch {
            logger.warning("cannot find this instance's lifecycle action: \(error.message); no lifecycle calls")
            return nil
        }
    }

    private func resolved(group: String, hook: String, limits: HookLimits, _ instanceID: String, _ token: String?) -> LifecycleAction {
        update {
            $0.group = group
            $0.hook = hook
            $0.instanceID = instanceID
        }
        return LifecycleAction(group: group, hook: hook, instanceID: instanceID, token: token, limits: limits)
    }

    /// The limits of a hook the request named, when Auto Scaling tells them: the action is
    /// completed by that name either way.
    private func namedHookLimits(_ name: String, group: String, _ autoScaling: () throws(LavaError) -> AutoScalingClient) -> HookLimits {
        do throws(LavaError) {
            if let hook = try autoScaling().describeLifecycleHooks(group: group).first(where: { $0.name == name }) { return HookLimits(hook) }
            logger.warning("Auto Scaling group \(group) lists no hook \(name); its limits are unknown")
        } catch {
            logger.warning("cannot read hook \(name)'s limits: \(error.message)")
        }
        return HookLimits()
    }

    /// A termination with nothing to drain (`stop` with no agent running, or a stop before the
    /// boot had a plan): the action the request names, or else this instance's (found as a drain
    /// finds it), completed CONTINUE, retried for up to `limit` seconds (less when the hook's
    /// GlobalTimeout is shorter) with heartbeats meanwhile. Nil when there is none to complete.
    public func completeTermination(_ overrides: LifecycleOverrides, limit: Double, heartbeatInterval: Double) throws(LavaError) -> LifecycleAction? {
        guard let action = action(overrides) else { return nil }
        logger.info("completing the lifecycle action of group \(action.group), hook \(action.hook), instance \(action.instanceID)")
        let until = Clock.monotonicSeconds() + min(limit, action.limits.globalTimeout.map(Double.init) ?? .infinity)
        let every = self.heartbeatInterval(heartbeatInterval, hook: action.hook, limits: action.limits)
        do {
            try action.complete(with: try autoScaling(), until: until, heartbeatEvery: every, logger: logger)
        } catch {
            throw error.prefixed("completing the lifecycle action")
        }
        return action
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
        guard let imds else { return }
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
                        // A warm instance leaving the pool is terminated as well (SPEC §8a).
                        if let targetState, ["Terminated", "Warmed:Terminated"].contains(targetState) {
                            trigger.fire(StopReason(source: "Auto Scaling: target lifecycle state \(targetState)"))
                        }
                    }
                    try checkSpot(imds, trigger)
                    try checkNotices(imds)
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

    private func checkSpot(_ imds: IMDSClient, _ trigger: StopTrigger) throws(LavaError) {
        guard let text = try imds.get(Lifecycle.spotPath), let json = try? JSONValue(parsing: text) else { return }
        guard let time = json["time"]?.stringValue, let epoch = CivilTime.epochSeconds(iso8601: time) else { return }
        let action = json["action"]?.stringValue ?? "terminate"
        // Everything done 15 s before the instance goes.
        let deadline = Clock.monotonicSeconds() + (epoch - Clock.wallSeconds()) - 15
        var reason = StopReason(source: "spot interruption: \(action) at \(time)")
        reason.deadline = deadline
        trigger.fire(reason)
    }

    private func checkNotices(_ imds: IMDSClient) throws(LavaError) {
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
