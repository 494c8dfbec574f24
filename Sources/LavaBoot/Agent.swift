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
    /// Auto Scaling and IMDS, when the agent watches the instance's lifecycle.
    public var lifecycle: Lifecycle?

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
        if let lifecycle = settings.lifecycle {
            lifecycle.discover(budget: budget, heartbeatInterval: heartbeatInterval)
            try lifecycle.watch(trigger)
        }
        let runner = ScriptletRunner(area: area, arguments: [plan.source.description, plan.realm, plan.worker],
                                     timeout: settings.scriptTimeout, environment: settings.environment,
                                     cancel: trigger.descriptor, logger: logger)
        var started = false
        for scriptlet in plan.scriptlets {
            if trigger.current != nil { break }
            if scriptlet.skipped {
                if !started {
                    logger.info("\(scriptlet.name) is lava-boot's: installing and starting the workers in its slot")
                    try installAndStart()
                    started = true
                } else {
                    logger.info("skipping \(scriptlet.name)")
                }
                continue
            }
            let outcome = try runner.run(scriptlet)
            if outcome == .stopped { break }
            if outcome == .aborted {
                throw LavaError(.process, "scriptlet \(scriptlet.name) exited with status 1; boot aborted"
                                + (started ? "" : " before the workers were installed"))
            }
        }
        if !started && trigger.current == nil { try installAndStart() }

        let (reason, triggeredAt) = trigger.wait()
        logger.info("stopping (\(reason.source)): draining the workers")
        drain(reason, triggeredAt: triggeredAt)
        logger.info("all workers stopped")
    }

    private func installAndStart() throws(LavaError) {
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
            return
        }

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
        let supervisor = try Supervisor(specs: specs, logger: logger.with(component: "supervisor"), records: settings.records)
        supervisorBox.set(supervisor)
        supervisor.start()
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
        let lifecycle = settings.lifecycle
        var deadline = triggeredAt + budget
        if let global = lifecycle?.globalTimeout { deadline = min(deadline, triggeredAt + global) }
        if let hard = reason.deadline { deadline = min(deadline, hard) }
        let action = lifecycle?.action(reason.lifecycle)
        let wallDeadline = Clock.wallSeconds() + (deadline - Clock.monotonicSeconds())
        lifecycle?.update { $0.drain = DrainStatus(trigger: reason.source, deadline: wallDeadline) }
        let target = action.map { "lifecycle action of group \($0.group), hook \($0.hook), instance \($0.instanceID)" } ?? "no lifecycle action"
        logger.info("draining (\(reason.source)): done within \(Int(max(0, deadline - Clock.monotonicSeconds()))) s; \(target)")
        DispatchDirectory.markNoDispatch(root: settings.root)
        let killGrace = 10.0
        // Time kept back for the completion, at most 12 s (SPEC §14).
        let reserve = action == nil ? 0 : min(12, max(0, (deadline - triggeredAt) / 4))
        let terminateAt = deadline - killGrace - reserve
        var heartbeats: HeartbeatLoop? = nil
        if let action, let lifecycle, reason.lifecycle?.heartbeat != false {
            heartbeats = HeartbeatLoop(action: action, lifecycle: lifecycle, interval: lifecycle.heartbeatInterval(heartbeatInterval), logger: logger)
        }
        supervisorBox.value?.drain(signal: reason.signal, terminateAt: terminateAt, killGrace: killGrace)
        heartbeats?.finish()
        if let action, let lifecycle { complete(action, lifecycle, until: deadline) }
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

