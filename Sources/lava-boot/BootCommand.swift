import LavaPlan
import Logging
import LavaSource
import LavaAWS
import CShim
import ArgumentParser
import LavaBoot
import LavaInstall
import LavaSupervisor
import LavaSystem
#if canImport(Glibc)
import Glibc
#endif

/// `30s`, `1.5m`, `2h`, or bare seconds: digits, an optional fraction, an optional unit, and
/// nothing else (no sign, exponent or hex, which Double's own parser would take). At most
/// 720h, so no deadline, sleep or conversion to whole units of one can overflow.
struct DurationArgument: Sendable {
    static let maximum = 720.0 * 3600

    /// Why a value is refused; ArgumentParser prints it after the option and the value.
    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    var seconds: Double

    init(seconds: Double) {
        self.seconds = seconds
    }

    /// `positive`: 0 is refused too (an interval of 0 would repeat without pause).
    init(_ argument: String, positive: Bool = false) throws(Invalid) {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
        var text = Substring(argument)
        var scale = 1.0
        if let last = text.last, let unit = units[last] {
            scale = unit
            text = text.dropLast()
        }
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let isDigits = { (part: Substring) in !part.isEmpty && part.allSatisfy { $0.isASCII && $0.isNumber } }
        guard parts.allSatisfy(isDigits), let value = Double(text) else {
            throw Invalid(description: "a duration is digits with an optional fraction and unit s, m or h (30s, 1.5m, 90)")
        }
        seconds = value * scale
        guard seconds <= DurationArgument.maximum else { throw Invalid(description: "longer than 720h, the longest duration lava-boot takes") }
        guard seconds > 0 || !positive else { throw Invalid(description: "must be longer than 0") }
    }
}

struct BootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot",
        abstract: "Run the boot scriptlets, install the workers' releases, start and supervise the daemons until stopped.")

    @OptionGroup var target: TargetOptions
    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("skip-script"), help: "Scriptlet glob lava-boot takes the slot of (repeatable).")
    var skipScripts: [String] = ["50-lava.sh"]

    @Option(name: .customLong("script-timeout"), help: "Longest a scriptlet may run (Ns, Nm, Nh; default 30m, at most 720h).",
            transform: { try DurationArgument($0) })
    var scriptTimeout = DurationArgument(seconds: 30 * 60)

    @Option(name: .customLong("stop-timeout"), help: "Graceful-stop budget, overriding the realm's stop_minutes.",
            transform: { try DurationArgument($0) })
    var stopTimeout: DurationArgument?

    @Option(name: .customLong("heartbeat-interval"), help: "Lifecycle heartbeat period during a drain, overriding the realm's heartbeat_minutes (more than 0).",
            transform: { try DurationArgument($0, positive: true) })
    var heartbeatInterval: DurationArgument?

    @Option(name: .customLong("ready-after"), help: "How long every daemon must stay up before the launch lifecycle action is completed (default 30s; 0s: once all started).",
            transform: { try DurationArgument($0) })
    var readyAfter = DurationArgument(seconds: 30)

    @Flag(name: .customLong("user-mode"), help: "No accounts or privilege changes: workers run as the invoking user.")
    var userMode = false

    func run() throws {
        // Before any thread exists, so every thread inherits the blocked mask.
        let trigger = StopTrigger()
        try trigger.catchTerminationSignals()
        _ = lava_become_subreaper()
        var logger = try global.makeLogger(component: "boot")
        logger[metadataKey: "realm"] = "\(target.realm)"
        logger[metadataKey: "worker"] = "\(target.worker)"
        if !userMode && getuid() != 0 {
            throw LavaError(.invalidConfig, "boot creates worker accounts and needs root; run it as root, or pass --user-mode")
        }
        let root = try global.hostRoot()
        // The lock and socket come first: a second agent on this root changes nothing.
        let agentBox = SharedValue<Agent>()
        let control = try AgentControl(root: root, agent: { agentBox.value }, trigger: trigger, startedAt: Clock.wallSeconds(),
                                       identity: (target.realm, target.worker, target.source), logger: logger.with(component: "control"))
        defer { control.finish() }
        let source = try SourceLocation(parsing: target.source)
        let lifecycle = LifecycleSetup.make(source: source, global: global, logger: logger.with(component: "lifecycle"))
        var resolver = Resolver(target: target, platform: nil, skipPatterns: skipScripts, global: global, logger: logger)
        resolver.cancel = trigger.descriptor
        let plan: BootPlan, area: any CodeArea
        do {
            (plan, area) = try resolver.plan()
        } catch {
            let stoppedEarly = error.code == .stopped ? trigger.current : nil
            if let stop = stoppedEarly {
                logger.info("stopped (\(stop.reason.source)) while reading the realm; nothing was started")
            } else {
                lifecycle?.abandonLaunch(because: error.message, stoppingOn: trigger)
            }
            // Nothing started, so nothing drains; a terminating action still completes, also after
            // a stop that ended the ABANDON retries.
            if let stop = trigger.current, let lifecycle {
                do {
                    _ = try lifecycle.completeTermination(stop.reason.lifecycle ?? LifecycleOverrides(),
                                                          limit: stop.at + (stopTimeout?.seconds ?? 300) - Clock.monotonicSeconds(),
                                                          heartbeatInterval: heartbeatInterval?.seconds ?? 60)
                } catch {
                    logger.error("\(error.message)")
                }
            }
            if stoppedEarly != nil { return }
            throw error
        }
        var settings = BootSettings(root: root, scriptTimeout: scriptTimeout.seconds, stopTimeout: stopTimeout?.seconds,
                                    userMode: userMode, environment: ProcessEnvironment.current().map { "\($0.key)=\($0.value)" })
        settings.records = control.records
        settings.heartbeatInterval = heartbeatInterval?.seconds
        settings.lifecycle = lifecycle
        settings.readyAfter = readyAfter.seconds
        // For tests: restarts that wait this long first, instead of 1 s.
        if let base = ProcessEnvironment.current()["LAVA_BOOT_RESTART_BASE_SECONDS"].flatMap(Double.init), base > 0 {
            settings.restartBackoff = RestartBackoff(initial: base)
        }
        let agent = Agent(plan: plan, area: area, settings: settings, trigger: trigger, logger: logger)
        agentBox.set(agent)
        try agent.run()
    }
}


/// The agent watches the instance's lifecycle wherever IMDS is there to watch: an S3 code area
/// means EC2; a `file://` one only with `AWS_EC2_METADATA_SERVICE_ENDPOINT` named (air-gapped
/// hosts, tests), so a laptop or a test never probes the link-local address.
enum LifecycleSetup {
    static func make(source: SourceLocation, global: GlobalOptions, logger: Logger) -> Lifecycle? {
        let environment = ProcessEnvironment.current()
        if case .file = source, (environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"] ?? "").isEmpty { return nil }
        guard let imds = try? IMDSClient.fromEnvironment(environment, logger: logger) else { return nil }
        return try? make(imds: imds, global: global, logger: logger)
    }

    /// For `stop` with no agent: IMDS unless it is turned off.
    static func make(global: GlobalOptions, logger: Logger) throws(LavaError) -> Lifecycle {
        try make(imds: try IMDSClient.fromEnvironment(ProcessEnvironment.current(), logger: logger), global: global, logger: logger)
    }

    private static func make(imds: IMDSClient?, global: GlobalOptions, logger: Logger) throws(LavaError) -> Lifecycle {
        let environment = ProcessEnvironment.current()
        let poll = environment["LAVA_BOOT_LIFECYCLE_POLL_SECONDS"].flatMap(Double.init).flatMap { $0 > 0 ? $0 : nil } ?? 5
        let (region, profile) = (global.region, global.profile)
        let backoff = try RetryPolicy.from(environment: environment, defaultAttempts: RetryPolicy.defaultAttempts)
        return Lifecycle(imds: imds, pollInterval: poll, backoff: backoff, logger: logger) { () throws(LavaError) in
            let context = try AWSContext(environment: environment, region: region, profile: profile, logger: logger)
            return AutoScalingClient(client: try context.client(.autoscaling))
        }
    }
}
