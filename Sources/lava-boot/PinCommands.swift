import ArgumentParser
import LavaAWS
import LavaJSON
import LavaRealm
import LavaSelection
import LavaSource
import LavaSystem
import Logging

/// `--realm` and `--realms-table`: the item `pin`, `unpin` and `pins` work on.
struct RealmItemOptions: ParsableArguments {
    @Option(help: "Realm name (the realms table's key).")
    var realm: String

    @Option(name: .customLong("realms-table"), help: "DynamoDB table holding the realms.")
    var realmsTable: String = RealmsTable.defaultName

    func validate() throws {
        try RealmConfig.validateName(realm, what: "realm")
    }

    func table(_ global: GlobalOptions, logger: Logger) throws(LavaError) -> RealmsTable {
        try AWSAccess(global: global, logger: logger, attempts: RetryPolicy.defaultAttempts).realmsTable(realmsTable)
    }
}

/// `--worker`: `_` names the defaults every worker falls back to.
struct PinnedWorkerOption: ParsableArguments {
    @Option(help: "Worker whose version to set; _ for the realm's default.")
    var worker: String

    func validate() throws {
        try RealmConfig.validateName(worker, what: "worker")
        if worker != RealmConfig.defaultsKey, let problem = RealmConfig.accountNameProblem(worker: worker) {
            throw ValidationError("worker \(worker): \(problem)")
        }
    }
}

extension PinChange {
    /// `core: 8.2.0 → 8.3.0`
    var line: String {
        if !changed {
            return new.map { "\(worker): already \($0); nothing changed" } ?? "\(worker): nothing pinned; nothing changed"
        }
        return "\(worker): \(old ?? "(none)") → \(new ?? "(none)")"
    }
}

struct PinCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pin",
        abstract: "Pin a worker's lava version in the realms table, after checking the code area holds it.")

    @OptionGroup var item: RealmItemOptions
    @OptionGroup var worker: PinnedWorkerOption

    @Argument(help: "The lava version to pin, e.g. 8.3.0.")
    var version: String

    @Option(help: "Code area that must hold the version: s3://BUCKET/PREFIX or file:///abs/path.")
    var source: String?

    @Option(help: "Write only if the pinned version is this one now.")
    var expect: String?

    @OptionGroup var platform: PlatformOptions
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        for (name, value) in [("version", version), ("--expect", expect ?? "0")] where !RealmConfig.isValidVersion(value) {
            throw ValidationError("\(name) \"\(value)\" is not a lava version such as 8.2.0")
        }
        if source == nil && (platform.os != nil || platform.arch != nil || platform.python != nil) {
            throw ValidationError("--os, --arch and --python name the platform to check in --source; give --source too")
        }
    }

    func run() throws {
        let logger = try global.makeLogger(component: "pin")
        if let source {
            let access = AWSAccess(global: global, logger: logger, attempts: RetryPolicy.defaultAttempts)
            let area = try access.codeArea(try SourceLocation(parsing: source))
            let filter = try PlatformFilter(os: platform.os, arch: platform.arch, python: platform.python)
            var seen = Set<String>()
            let platforms = try VersionSearch.require(version, for: filter, in: area).map(\.platformText)
                .filter { seen.insert($0).inserted }
            print("\(version) is in \(area.displayName("_dist_/pkg")) for: \(platforms.joined(separator: ", "))")
        } else {
            logger.warning("no --source: not checking that the code area holds \(version)")
        }
        let change = try item.table(global, logger: logger)
            .pin(realm: item.realm, worker: worker.worker, version: version, expect: expect)
        print(change.line)
    }
}

struct UnpinCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unpin",
        abstract: "Remove a worker's pinned version; it then runs the newest release for its platform.")

    @OptionGroup var item: RealmItemOptions
    @OptionGroup var worker: PinnedWorkerOption
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let logger = try global.makeLogger(component: "pin")
        print(try item.table(global, logger: logger).unpin(realm: item.realm, worker: worker.worker).line)
    }
}

struct PinsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pins",
        abstract: "Show each worker's effective configuration in a realm, and where each value comes from.")

    @OptionGroup var item: RealmItemOptions

    @Flag(help: "Print as JSON (schema: docs/pins-json.md).")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let logger = try global.makeLogger(component: "pins")
        let table = try item.table(global, logger: logger)
        let config = try RealmConfig(realm: item.realm, item: try table.item(realm: item.realm, consistent: true))
        var names = config.configuredWorkers
        if config.hasDefaults {
            names.insert(RealmConfig.defaultsKey, at: 0)
        }
        let rows = names.map { EffectiveWorker(config: config, worker: $0) }
        if json {
            print(JSONValue.object([
                JSONMember("realm", .string(item.realm)),
                JSONMember("table", .string(item.realmsTable)),
                JSONMember("workers", .array(rows.map(\.json))),
            ]).serialized(pretty: true))
        } else {
            print("realm \(item.realm) (table \(item.realmsTable)); \"(_)\": from _, \"(value)\": the default, no key set")
            if rows.isEmpty {
                print("no workers configured: every worker runs the defaults")
            } else {
                print(formatTable(header: EffectiveWorker.header, rows: rows.map(\.cells)), terminator: "")
            }
        }
        let invalid = rows.filter { $0.problem != nil }
        if !invalid.isEmpty {
            throw LavaError(.invalidConfig, "\(item.realm): \(invalid.count) worker(s) with an invalid configuration: "
                + invalid.map { $0.problem! }.joined(separator: "; "))
        }
    }
}

/// One worker's effective value of each key of SPEC §2, and where it comes from.
struct EffectiveWorker {
    struct Field {
        var key: String
        var text: String
        var json: JSONValue
        var origin: ConfigOrigin
    }

    var worker: String
    var fields: [Field] = []
    var problem: String?

    static let header = ["WORKER", "VERSION", "THREADS", "DAEMONS", "WORKERS", "ENV (keys)", "STOP MIN", "HEARTBEAT MIN"]

    init(config: RealmConfig, worker: String) {
        self.worker = worker
        do throws(LavaError) {
            var warnings = [String]()
            let effective = try config.worker(worker, warnings: &warnings)
            // `_` runs nothing itself: without a `workers` key of its own it names none.
            let workersOrigin = try config.origin(of: "workers", worker: worker)
            let hosted = worker == RealmConfig.defaultsKey && workersOrigin == .builtIn ? [] : try config.workerNames(host: worker)
            let env = effective.environment.map(\.name)
            func field(_ key: String, _ text: String, _ json: JSONValue) throws(LavaError) -> Field {
                Field(key: key, text: text, json: json, origin: try config.origin(of: key, worker: worker))
            }
            fields = [
                try field("version", effective.version ?? "newest", effective.version.map { .string($0) } ?? .null),
                try field("threads", effective.threads.map(String.init) ?? "-", effective.threads.map { .number($0) } ?? .null),
                try field("daemons", String(effective.daemons), .number(effective.daemons)),
                try field("workers", hosted.isEmpty ? "-" : hosted.joined(separator: " "), .array(hosted.map { .string($0) })),
                try field("env", env.isEmpty ? "-" : env.joined(separator: " "), .array(env.map { .string($0) })),
                try field("stop_minutes", String(effective.stopMinutes), .number(effective.stopMinutes)),
                try field("heartbeat_minutes", String(effective.heartbeatMinutes), .number(effective.heartbeatMinutes)),
            ]
        } catch {
            problem = error.message
        }
    }

    var cells: [String] {
        guard problem == nil else { return [worker, "invalid (see below)", "", "", "", "", "", ""] }
        return [worker] + fields.map { field in
            switch field.origin {
            case .own: return field.text
            case .defaults: return "\(field.text) (_)"
            case .builtIn: return field.text == "-" ? "-" : "(\(field.text))"
            }
        }
    }

    var json: JSONValue {
        var members = [JSONMember("worker", .string(worker))]
        if let problem {
            members.append(JSONMember("error", .string(problem)))
        } else {
            for field in fields {
                members.append(JSONMember(field.key, .object([JSONMember("value", field.json),
                                                              JSONMember("from", .string(field.origin.rawValue))])))
            }
        }
        return .object(members)
    }
}
