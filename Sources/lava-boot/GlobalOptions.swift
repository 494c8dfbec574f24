import ArgumentParser
import LavaLog
import LavaSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The logger of a `--log` target other than stderr, for the fatal error line.
let fatalErrorLogger = SharedValue<Logger>()

enum LevelName: String, ExpressibleByArgument, CaseIterable {
    case debug, info, warning, error
}

/// Options every command takes, before or after its positionals.
struct GlobalOptions: ParsableArguments {
    @Option(help: "AWS region (else AWS_REGION, AWS_DEFAULT_REGION, the profile's, or the instance's).")
    var region: String?

    @Option(help: "AWS profile from the shared config and credentials files (else AWS_PROFILE).")
    var profile: String?

    @Option(help: "Log level: debug, info, warning or error.")
    var level: LevelName = .info

    @Option(name: .customLong("log"), help: "Log target: - (stderr), @local0 (syslog facility) or a file path.")
    var logTarget: String = "-"

    @Flag(name: .customLong("log-json"), help: "Log one JSON object per line.")
    var logJSON = false

    @Option(help: "Prefix for every host path lava-boot touches (/opt/lava, /usr/local/bin, /etc/os-release, ...).")
    var root: String?

    func validate() throws {
        // An empty --root would quietly act on the live system.
        if root == "" { throw ValidationError("--root needs a directory; leave it out to act on this host") }
    }

    /// The root as an absolute path without a trailing slash.
    func hostRoot() throws(LavaError) -> HostRoot {
        guard let root else { return HostRoot(nil) }
        var path = root
        if !path.hasPrefix("/") {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
            guard getcwd(&buffer, buffer.count) != nil else { throw .errno("getcwd") }
            path = Paths.join(String(cString: buffer), path)
        }
        guard Files.isDirectory(path) else {
            throw LavaError(.invalidConfig, "--root \(root): no such directory")
        }
        return HostRoot(path == "/" ? nil : path)
    }

    /// Sets up the process's logging once, and returns the logger for `component`.
    func makeLogger(component: String) throws(LavaError) -> Logger {
        let target = try LogTarget(parsing: logTarget)
        let sink = try LogSink(target)
        let level = Logger.Level(cliName: level.rawValue) ?? .info
        let json = logJSON
        var timestamps = true
        if case .syslog = target { timestamps = false }
        let stamped = timestamps
        LoggingSystem.bootstrap { _ in LineLogHandler(sink: sink, level: level, json: json, timestamps: stamped) }
        var logger = Logger(label: "lava-boot")
        logger[metadataKey: LogField.component] = "\(component)"
        if logTarget != "-" { fatalErrorLogger.set(logger) }
        return logger
    }
}

/// `--os/--arch/--python`: the platform to resolve for, instead of this machine's.
struct PlatformOptions: ParsableArguments {
    @Option(help: "OS to select packages for (e.g. amzn2023), instead of this machine's.")
    var os: String?

    @Option(help: "Architecture to select packages for (x86_64, x64, aarch64, arm64).")
    var arch: String?

    @Option(help: "Python major.minor to select packages for (e.g. 3.11).")
    var python: String?
}

/// The positionals and options `plan`, `install` and `boot` share.
struct TargetOptions: ParsableArguments {
    @Argument(help: "Code area: s3://BUCKET/PREFIX or file:///abs/path.")
    var source: String

    @Argument(help: "Realm name (the realms table's key).")
    var realm: String

    @Argument(help: "This host's worker name.")
    var worker: String

    @Option(name: .customLong("realms-file"), help: "Read the realm item from this JSON file instead of DynamoDB.")
    var realmsFile: String?

    @Option(name: .customLong("realms-table"), help: "DynamoDB table holding the realms.")
    var realmsTable: String = "lava.realms"

    @Option(help: "Installer: native (releases under /opt/lava/releases) or bundle (the bundle's install.sh).")
    var installer: InstallerName = .native
}

enum InstallerName: String, ExpressibleByArgument, CaseIterable {
    case native, bundle
}
