import LavaPlan
import LavaSource
import LavaSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// What a scriptlet's run means for the boot.
public enum ScriptletOutcome: Equatable, Sendable {
    case succeeded
    /// Exit 1: the boot stops here.
    case aborted
    /// Any other exit, a signal or the timeout: logged, the boot goes on.
    case failed(String)
    /// A stop trigger ended it: no later scriptlet runs.
    case stopped
}

/// Runs one `_boot_/` scriptlet: fetched into a private 0700 directory, run from there as
/// `./NAME SOURCE REALM WORKER` with stdin /dev/null, its output logged line by line.
public struct ScriptletRunner: Sendable {
    public var area: any CodeArea
    public var arguments: [String]
    public var timeout: Double
    public var environment: [String]
    public var logger: Logger
    /// Readable once the boot is to stop.
    public var cancel: Int32?

    public init(area: any CodeArea, arguments: [String], timeout: Double, environment: [String], cancel: Int32?, logger: Logger) {
        self.cancel = cancel
        self.area = area
        self.arguments = arguments
        self.timeout = timeout
        self.environment = environment
        self.logger = logger
    }

    public func run(_ scriptlet: ScriptletPlan) throws(LavaError) -> ScriptletOutcome {
        var log = logger.with(component: "scriptlet")
        log[metadataKey: "scriptlet"] = "\(scriptlet.name)"
        let directory = try Files.makePrivateDirectory(prefix: "lava-boot-scriptlet")
        defer { try? Files.removeTree(directory) }
        let path = Paths.join(directory, scriptlet.name)
        try area.open(scriptlet.object.key).save(to: path, mode: 0o700)
        // Relative to its directory, so a script's $0 is `./NAME` as it was under the old boot script.
        let request = SpawnRequest(executable: "./\(scriptlet.name)", arguments: arguments, environment: environment,
                                   workingDirectory: directory)
        log.info("running \(scriptlet.name)")
        let start = Clock.monotonicSeconds()
        let result = try Subprocess.run(request, timeout: .init(seconds: timeout, killAfter: 10), cancel: cancel) { line in
            log.info("\(line)")
        }
        let took = Int(Clock.monotonicSeconds() - start)
        if result.cancelled {
            log.warning("\(scriptlet.name) stopped after \(took) s for the stop (\(result.status))")
            return .stopped
        }
        if result.timedOut {
            log.error("\(scriptlet.name) timed out after \(took) s (\(result.status)); the boot goes on")
            return .failed("timed out")
        }
        switch result.status {
        case .exited(0):
            log.info("\(scriptlet.name) finished in \(took) s")
            return .succeeded
        case .exited(1):
            log.error("\(scriptlet.name) exited with status 1: aborting the boot")
            return .aborted
        default:
            log.error("\(scriptlet.name) failed (\(result.status)); the boot goes on")
            return .failed(result.status.description)
        }
    }
}
