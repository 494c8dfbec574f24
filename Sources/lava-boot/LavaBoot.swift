import ArgumentParser
import LavaLog
import LavaSystem
#if canImport(Glibc)
import Glibc
#endif

@main
struct LavaBoot: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "lava-boot",
        abstract: "Boot, install and supervise lava workers on an EC2 instance.",
        version: version,
        subcommands: [BootCommand.self, StatusCommand.self, StopCommand.self, PlanCommand.self, InstallCommand.self, VersionsCommand.self,
                      PinCommand.self, UnpinCommand.self, PinsCommand.self, AMICommand.self]
    )

    /// Usage errors exit 64 with the reason and the usage (ArgumentParser's own handling);
    /// runtime failures exit 1 with exactly one line that says what to do.
    static func main() {
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot()
            // A child's group that ignored its SIGTERM gets the SIGKILL before lava-boot leaves.
            defer { Leftovers.shared.awaitKills() }
            try command.run()
            LogSink.flushActive()
        } catch let error as LavaError {
            fail(error.message)
        } catch {
            LogSink.flushActive()
            exit(withError: error)
        }
    }

    static func fail(_ message: String) -> Never {
        // The one-line fatal error reaches the --log target too, not only stderr.
        fatalErrorLogger.value?.error("\(message)")
        LogSink.flushActive()
        let line = "lava-boot: error: " + message.replacingNewlines() + "\n"
        _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
        Glibc.exit(1)
    }
}

extension String {
    /// One line, whatever a message quoted.
    func replacingNewlines() -> String {
        String(map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
