import ArgumentParser
import LavaAWS
import LavaInstall
import LavaSelection
import LavaSource
import LavaSystem

struct AMICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ami",
        abstract: "Image build steps.",
        subcommands: [OracleCommand.self])
}

struct OracleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "oracle",
        abstract: "Install Oracle Instant Client from the code area's _ami_/oracle/ zips.")

    @Argument(help: "Code area: s3://BUCKET/PREFIX or file:///abs/path.")
    var source: String

    @Option(help: "Directory that receives instantclient_NN_NN.")
    var dest: String = OracleInstantClient.defaultDestination

    @Option(help: "Package of the base zip: basiclite or basic.")
    var type: String = OracleInstantClient.defaultType

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard dest.hasPrefix("/"), !dest.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
            throw ValidationError("--dest \(dest): give an absolute path without . or .. components")
        }
        guard !type.isEmpty, type.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) }) else {
            throw ValidationError("--type \(type): expected a package name such as basiclite or basic")
        }
    }

    func run() throws {
        let logger = try global.makeLogger(component: "ami")
        let area = try AWSAccess(global: global, logger: logger, attempts: RetryPolicy.defaultAttempts)
            .codeArea(try SourceLocation(parsing: source))
        var destination = dest
        while destination.count > 1 && destination.hasSuffix("/") { destination.removeLast() }
        let client = OracleInstantClient(root: try global.hostRoot(), area: area, destination: destination, type: type,
                                         arch: try PlatformDetector.machine().oracleArch, logger: logger)
        let outcome = try client.install()
        print("Oracle Instant Client \(outcome.version) in \(outcome.directory)"
            + (outcome.changed ? "" : " (already there; nothing changed)"))
    }
}
