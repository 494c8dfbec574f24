import LavaControl
import LavaInstall
import LavaPlan
import LavaRealm
import LavaSelection
import LavaSource
import LavaSupervisor
import LavaSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// How this boot runs, from the command line.
public struct BootSettings: Sendable {
    public var root: HostRoot
    public var scriptTimeout: Double
    /// Overrides the host worker's `stop_minutes`.
    public var stopTimeout: Double?
    /// No accounts, no privilege changes: workers run as the invoking user.
    public var userMode: Bool
    /// The agent's own environment, handed to scriptlets (never to workers).
    public var environment: [String]
    /// Where the daemons' process groups are recorded for the next agent.
    public var records: DaemonRecords?
    /// Overrides the host worker's `heartbeat_minutes`.
    public var heartbeatInterval: Double?
    /// How long every daemon must stay up before the launch action is completed (SPEC §8a).
    public var readyAfter: Double = 30
    /// Auto Scaling and IMDS, when the agent watches the instance's lifecycle.
    public var lifecycle: Lifecycle?
    public var restartBackoff = RestartBackoff()

    public init(root: HostRoot, scriptTimeout: Double, stopTimeout: Double?, userMode: Bool, environment: [String]) {
        self.root = root
        self.scriptTimeout = scriptTimeout
        self.stopTimeout = stopTimeout
        self.userMode = userMode
        self.environment = environment
    }
}

/// The agent: runs the scriptlets with lava-boot's own install-and-start in its slot, then
/// supervises the daemons until a stop trigger, and drains them (SPEC §5, §7, §8).
public final class Agent: Sendable {
    public let plan: BootPlan
    let area: any CodeArea
    let settings: BootSettings
    let logger: Logger
    public let trigger: StopTrigger
    private let supervisorBox = SharedValue<Supervisor>()

    public init(plan: BootPlan, area: any CodeArea, settings: BootSettings, trigger: StopTrigger, logger: Logger) {
        self.plan = plan
        self.area = area
        self.settings = settings
        self.trigger = trigger
        self.logger = logger
    }

    public var lifecycleStatus: LifecycleStatus? { settings.lifecycle?.status }

    /// The supervised daemons, once started.
    public var supervisor: Supervisor? { supervisorBox.value }

    /// Runs the whole boot and the agent's life; returns when drained.
    var budget: Double { settings.stopTimeout ?? Double(plan.host.host.stopMinutes * 60) }
    var heartbeatInterval: Double { settings.heartbeatInterval ?? Double(plan.host.host.heartbeatMinutes * 60) }

    public func run() throws(LavaError) {
        let lifecycle = settings.lifecycle
        lifecycle?.discover(budget: budget, heartbeatInterval: heartbeatInterval, stoppingOn: trigger)
        let target = lifecycle?.status.targetState
        if target == "Warmed:Terminated" {
            return logger.info("warm pool: target state Warmed:Terminated; nothing to do")
        }
        // SPEC §8a: a warm pool instance installs everything but starts nothing.
        let warmUp = target.map { ["Warmed:Stopped", "Warmed:Hibernated", "Warmed:Running"].contains($0) } ?? false
        if warmUp { logger.info("warm-up boot (\(target!)): scriptlets, accounts and installs; no daemon starts") }
        if let lifecycle { try lifecycle.watch(trigger) }
        var launch = lifecycle.flatMap { LaunchReadiness(lifecycle: $0, interval: heartbeatInterval, trigger: trigger, logger: logger) }
        do {
            let prepared = try runScriptlets(startDaemons: !warmUp)
            if let launch {
                if !warmUp { try waitUntilReady() }
                // A termination meanwhile leaves the launch to the group: the drain comes first.
                if trigger.current == nil {
                    launch.complete("CONTINUE", because: warmUp ? "warm-up done" : "every daemon stayed up for \(Int(saturating: settings.readyAfter)) s")
                } else {
                    launch.stopHeartbeats()
                }
            }
            launch = nil
            if target == "Warmed:Running", trigger.current == nil, let prepared, let lifecycle {
                // Stay up; on InService, start as a normal boot would, and tell the new launch action when ready.
                guard waitForService(lifecycle) else { return finish() }
                lifecycle.refreshInstanceState()
                launch = LaunchReadiness(lifecycle: lifecycle, interval: heartbeatInterval, trigger: trigger, logger: logger)
                try startDaemons(prepared)
                try waitUntilReady()
                if trigger.current == nil {
                    launch?.complete("CONTINUE", because: "every daemon stayed up for \(Int(saturating: settings.readyAfter)) s")
                } else {
                    launch?.stopHeartbeats()
                }
                launch = nil
            } else if warmUp {
                return logger.info("warm-up done; the group stops this instance, and its next boot starts the workers")
            }
        } catch {
            // The group replaces a broken instance at once instead of waiting out the hook.
            launch?.complete("ABANDON", because: error.message)
            if let supervisor = supervisorBox.value {
                supervisor.drain(signal: SIGTERM, terminateAt: Clock.monotonicSeconds(), killGrace: 10)
            }
            throw error
        }
        finish()
    }

    /// Waits for a stop trigger, then drains.
    private func finish() {
        let (reason, triggeredAt) = trigger.wait()
        logger.info("stopping (\(reason.source)): draining the workers")
        drain(reason, triggeredAt: triggeredAt)
        logger.info("all workers stopped")
    }

    /// The scriptlets, with lava-boot's install (and start) in the skipped one's slot.
    private func runScriptlets(startDaemons: Bool) throws(LavaError) -> Prepared? {
        let runner = ScriptletRunner(area: area, arguments: [plan.source.description, plan.realm, plan.worker],
                                     timeout: settings.scriptTimeout, environment: settings.environment,
                                     cancel: trigger.descriptor, logger: logger)
        var prepared: Prepared? = nil
        var installed = false
        func installInSlot() throws(LavaError) {
            installed = true
            prepared = try prepare()
            if startDaemons, let prepared { try self.startDaemons(prepared) }
        }
        for scriptlet in plan.scriptlets {
            if trigger.current != nil { break }
            if scriptlet.skipped {
                if !installed {
                    logger.info("\(scriptlet.name) is lava-boot's: installing\(startDaemons ? " and starting the workers" : "") in its slot")
                    try installInSlot()
                } else {
                    logger.info("skipping \(scriptlet.name)")
                }
                continue
            }
            let outcome = try runner.run(scriptlet)
            if outcome == .stopped { break }
            if outcome == .aborted {
                throw LavaError(.process, "scriptlet \(scriptlet.name) exited with status 1; boot aborted"
                                + (installed ? "" : " before the workers were installed"))
            }
        }
        if !installed && trigger.current == nil { try installInSlot() }
        return prepared
    }

    /// Every daemon up for `--ready-after` without an exit; one that exits first fails the boot.
    private func waitUntilReady() throws(LavaError) {
        while trigger.current == nil {
            let daemons = supervisorBox.value?.status() ?? []
            if let failed = daemons.first(where: { $0.restarts > 0 || $0.phase != .running }) {
                throw LavaError(.process, "\(failed.worker) daemon \(failed.index) exited before the instance was ready (\(failed.lastExit ?? "did not start"))")
            }
            if daemons.allSatisfy({ ($0.uptime ?? 0) >= settings.readyAfter }) { return }
            Clock.sleep(seconds: 0.1)
        }
    }

    /// Polls the target state until `InService` (true) or a stop trigger (false).
    private func waitForService(_ lifecycle: Lifecycle) -> Bool {
        logger.info("warm pool: waiting for InService")
        while trigger.current == nil {
            if lifecycle.targetStateNow() == "InService" {
                logger.info("warm pool: InService; starting the workers")
                return true
            }
            Clock.sleep(seconds: lifecycle.pollInterval)
        }
        return false
    }

    /// Accounts, `/tmp/lava` and every release, ready for daemons; nil when a stop came first.
    struct Prepared: Sendable {
        var releases: [String: InstalledRelease]
        var accounts: [String: WorkerAccount]
    }

    private func prepare() throws(LavaError) -> Prepared? {
        let accounts = Accounts(logger: logger.with(component: "accounts"))
        var accountsByWorker = [String: WorkerAccount]()
        if !settings.userMode {
            for worker in plan.workers { accountsByWorker[worker.config.worker] = try accounts.ensure(worker: worker.config.worker) }
        }
        try DispatchDirectory.prepare(root: settings.root, realm: plan.realm,
                                      group: settings.userMode ? nil : Accounts.group(Accounts.groupName))
        var installer = Installer(root: settings.root, area: area, logger: logger.with(component: "install"))
        let trigger = self.trigger
        installer.isCancelled = { trigger.current != nil }
        var releases = [String: InstalledRelease]()
        do {
            for release in try installer.installAll(plan.packagesToInstall) {
                releases[release.package.fileName] = release
            }
        } catch where error.code == .stopped {
            logger.warning("\(error.message); starting no workers")
            return nil
        }
        return Prepared(releases: releases, accounts: accountsByWorker)
    }

    private func startDaemons(_ prepared: Prepared) throws(LavaError) {
        let releases = prepared.releases, accountsByWorker = prepared.accounts
        let invoking = Accounts.currentUser()
        var specs = [DaemonSpec]()
        for worker in plan.workers {
            let release = releases[worker.package.name.fileName]!
            let account = accountsByWorker[worker.config.worker]
            let user = account?.name ?? invoking.name
            let home = account?.home ?? invoking.home
            let base = [("PATH", "\(settings.root.path("/usr/local/bin")):/usr/bin"), ("HOME", home), ("USER", user), ("LOGNAME", user)]
            let environment = workerEnvironment(base: base, worker.config)
            let arguments = Agent.workerArguments(realm: plan.realm, worker: worker.config, version: worker.package.name.version)
            guard worker.config.daemons > 0 else { continue }
            for index in 1...worker.config.daemons {
                specs.append(DaemonSpec(worker: worker.config.worker, index: index, version: worker.package.name.version.text,
                                        executable: release.workerExecutable, arguments: arguments, environment: environment,
                                        workingDirectory: home, identity: account?.identity))
            }
        }
        // Restarts run code steady supervision does not: its pages go again once they settle.
        let supervisor = try Supervisor(specs: specs, logger: logger.with(component: "supervisor"), backoff: settings.restartBackoff,
                                        records: settings.records) { Agent.releaseIdleMemory() }
        supervisorBox.set(supervisor)
        supervisor.start()
        let released = Agent.releaseIdleMemory()
        logger.debug("released \(released >> 10) KiB of start-up code from the resident set")
    }

    /// The agent supervises for the life of the instance: what start-up and restarts touched
    /// and freed leaves the resident set (it faults back in if it ever runs again).
    @discardableResult
    static func releaseIdleMemory() -> Int {
        ResidentPages.releaseFreeHeapPages()
        return ResidentPages.releaseStartupPages()
    }

    /// One entry per name: a realm `env` key replaces the base value of that name (logged).
    private func workerEnvironment(base: [(String, String)], _ worker: WorkerConfig) -> [String] {
        let realmNames = Set(worker.environment.map(\.name))
        var entries = [String]()
        for (name, value) in base {
            if realmNames.contains(name) {
                logger.info("worker \(worker.worker): the realm's env sets \(name), replacing lava-boot's value")
            } else {
                entries.append("\(name)=\(value)")
            }
        }
        return entries + worker.environment.map { "\($0.name)=\($0.value)" }
    }

    /// `lava-worker --realm R --worker W --jump-start --heartbeat 60 --tag lava-R-W --log @local0
    /// --level info [--log-json] [--threads N]`; `--log-json` from 7.1 on.
    public static func workerArguments(realm: String, worker: WorkerConfig, version: LavaVersion) -> [String] {
        var arguments = ["--realm", realm, "--worker", worker.worker, "--jump-start", "--heartbeat", "60",
                         "--tag", "lava-\(realm)-\(worker.worker)", "--log", "@local0", "--level", "info"]
        if !version.isOlder(than: 7, 1) { arguments.append("--log-json") }
        if let threads = worker.threads { arguments += ["--threads", String(threads)] }
        return arguments
    }

    /// SPEC §8: `__nodispatch__`, the stop signal to every daemon, heartbeats while they finish,
    /// SIGTERM then SIGKILL before the deadline, then CONTINUE exactly once, all within the budget
    /// (or the spot deadline, or the hook's GlobalTimeout, whichever ends first).
    private func drain(_ reason: StopReason, triggeredAt: Double) {
        DispatchDirectory.markNoDispatch(root: settings.root)
        let supervisor = supervisorBox.value
        supervisor?.beginDrain(signal: reason.signal)
        // Fixed at the trigger: the lifecycle lookups, which Auto Scaling may answer slowly, run
        // beside the drain, and the hook they find may only bring the deadline closer.
        var deadline = triggeredAt + budget
        if let hard = reason.deadline { deadline = min(deadline, hard) }
        let lifecycle = settings.lifecycle
        lifecycle?.update { $0.drain = DrainStatus(trigger: reason.source, deadline: Clock.wallSeconds() + (deadline - Clock.monotonicSeconds())) }
        logger.info("draining (\(reason.source)): done within \(Int(saturating: max(0, deadline - Clock.monotonicSeconds()))) s")
        let killGrace = 10.0
        // Time kept back for the completion, at most 12 s (SPEC §14), whenever there may be an
        // action: whether there is one is not known yet.
        let reserve = lifecycle == nil ? 0 : min(12, max(0, (deadline - triggeredAt) / 4))
        let lookup = lifecycle.map { lifecycle in
            DrainLookup(lifecycle: lifecycle, reason: reason, triggeredAt: triggeredAt, deadline: deadline,
                        heartbeatInterval: heartbeatInterval, logger: logger) { closer in
                supervisor?.advanceDrain(terminateAt: closer - killGrace - reserve)
            }
        }
        lookup?.start()
        supervisor?.finishDrain(terminateAt: deadline - killGrace - reserve, killGrace: killGrace)
        if let (action, until) = lookup?.finish(), let lifecycle { complete(action, lifecycle, until: until) }
    }

    private func complete(_ action: LifecycleAction, _ lifecycle: Lifecycle, until deadline: Double) {
        do throws(LavaError) {
            try action.complete(with: try lifecycle.autoScaling(), until: deadline, logger: logger)
            lifecycle.update { $0.drain?.completion = "CONTINUE accepted" }
        } catch {
            lifecycle.update { $0.drain?.completion = "failed: \(error.message)" }
        }
    }
}

