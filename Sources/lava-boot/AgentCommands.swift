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

    @OptionGroup var global: GlobalOptions

    func run() throws {
        _ = try global.makeLogger(component: "stop")
        let request = StopRequest(signal: signal?.number, wait: wait, noDispatch: noDispatch)
        _ = try ControlClient.send(.stop(request), directory: AgentDirectory(root: try global.hostRoot()),
                                   timeout: wait ? nil : ControlClient.defaultTimeout)
        print(wait ? "stopped" : "stopping")
    }
}
