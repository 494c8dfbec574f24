import LavaBoot
import Logging
import ArgumentParser
import LavaControl
import LavaSystem
#if canImport(Glibc)
import Glibc
#endif

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show what the running agent supervises: workers, daemons, pids, versions, uptimes, restarts.")

    @Flag(help: "Print the status as JSON (schema: docs/status-json.md).")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() throws {
        _ = try global.makeLogger(component: "status")
        let status = try ControlClient.status(directory: AgentDirectory(root: try global.hostRoot()), timeout: ControlClient.defaultTimeout)
        print(json ? status.json.serialized(pretty: true) : status.text, terminator: json ? "\n" : "")
    }
}

/// `HUP`, `SIGHUP` or `1`.
struct SignalArgument: ExpressibleByArgument {
    var number: Int32

    static let names: [String: Int32] = ["HUP": SIGHUP, "INT": SIGINT, "TERM": SIGTERM, "KILL": SIGKILL,
                                         "USR1": SIGUSR1, "USR2": SIGUSR2, "QUIT": SIGQUIT]

    init?(argument: String) {
        var name = argument.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if let number = SignalArgument.names[name] {
            self.number = number
        } else if let number = Int32(argument), (1...64).contains(number) {
            self.number = number
        } else {
            return nil
        }
    }
}

struct StopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Ask the running agent to drain its workers and exit.")

    @Option(help: "Signal sent to each worker first (default HUP: finish in-flight jobs).")
    var signal: SignalArgument?

    @Flag(help: "Wait until the drain is over.")
    var wait = false

    @Flag(name: .customLong("no-dispatch"), help: "Accepted for compatibility: every drain stops dispatch first.")
    var noDispatch = false

    @Option(name: .customLong("auto-scaling-group-name"), help: "The Auto Scaling group whose lifecycle action to complete.")
    var group: String?

    @Option(name: .customLong("lifecycle-hook-name"), help: "The lifecycle hook whose action to complete.")
    var hook: String?

    @Option(name: .customLong("lifecycle-action-token"), help: "The lifecycle action's token (else the instance id names it).")
    var token: String?

    @Option(name: .customLong("instance-id"), help: "This instance's id (else from the instance metadata).")
    var instanceID: String?

    @Flag(name: .customLong("lifecycle-heartbeat"), help: "Send lifecycle heartbeats while the workers drain.")
    var lifecycleHeartbeat = false

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let logger = try global.makeLogger(component: "stop")
        let request = StopRequest(signal: signal?.number, wait: wait, noDispatch: noDispatch, autoScalingGroupName: group,
                                  lifecycleHookName: hook, lifecycleActionToken: token, instanceID: instanceID,
                                  lifecycleHeartbeat: lifecycleHeartbeat ? true : nil)
        do {
            _ = try ControlClient.send(.stop(request), directory: AgentDirectory(root: try global.hostRoot()),
                                       timeout: wait ? nil : ControlClient.defaultTimeout)
        } catch where error.code == .noAgent {
            // A terminating instance must not wait out its hook because no agent is left to drain.
            try completeWithoutAgent(logger: logger, otherwise: error)
            return
        }
        print(wait ? "stopped" : "stopping")
    }

    /// The action named, or else this instance's; `otherwise` when there is none.
    private func completeWithoutAgent(logger: Logger, otherwise noAgent: LavaError) throws(LavaError) {
        let overrides = LifecycleOverrides(group: group, hook: hook, token: token, instanceID: instanceID)
        logger.info("no lava-boot agent is running: completing this instance's lifecycle action")
        let lifecycle = try LifecycleSetup.make(global: global, logger: logger)
        guard let action = try lifecycle.completeTermination(overrides, limit: 600, heartbeatInterval: 60) else { throw noAgent }
        print("completed the lifecycle action of \(action.instanceID) (group \(action.group), hook \(action.hook)): CONTINUE")
    }
}
