import LavaAWS
import LavaInstall
import LavaPlan
import LavaRealm
import LavaSelection
import LavaSource
import LavaSystem
import Logging

/// AWS access, set up only when a command first needs it: a `file://` code area with a
/// realms file never touches AWS or the instance metadata service.
final class AWSAccess {
    private let global: GlobalOptions
    private let logger: Logger
    private let attempts: Int
    private var context: AWSContext?

    init(global: GlobalOptions, logger: Logger, attempts: Int) {
        self.global = global
        self.logger = logger
        self.attempts = attempts
    }

    func resolve() throws(LavaError) -> AWSContext {
        if let context { return context }
        let made = try AWSContext(environment: ProcessEnvironment.current(), region: global.region,
                                  profile: global.profile, logger: logger)
        context = made
        return made
    }

    func codeArea(_ location: SourceLocation) throws(LavaError) -> any CodeArea {
        switch location {
        case .file:
            return try CodeAreas.open(location)
        case .s3(let bucket, let prefix):
            let s3 = S3Client(client: try resolve().client(.s3, defaultAttempts: attempts))
            return S3CodeArea(s3: s3, bucket: bucket, prefix: prefix, logger: logger)
        }
    }

    func realmsTable(_ table: String, throttlingBudget: Double? = nil, cancel: Int32? = nil) throws(LavaError) -> RealmsTable {
        RealmsTable(client: try resolve().client(.dynamodb, defaultAttempts: attempts, throttlingBudget: throttlingBudget,
                                                 cancel: cancel),
                    table: table)
    }

    /// Bounded by time, not a count: a fleet of hundreds booting at once must all get through.
    /// `cancel` (a stop trigger) ends the read and the waits between throttled reads.
    func realmItem(table: String, realm: String, cancel: Int32? = nil) throws(LavaError) -> RealmItem {
        try realmsTable(table, throttlingBudget: RetryPolicy.realmsTableThrottlingBudget, cancel: cancel).item(realm: realm)
    }
}

/// Resolution shared by `plan`, `install` and `boot`.
struct Resolver {
    var target: TargetOptions
    var platform: PlatformOptions?
    var skipPatterns: [String]
    var global: GlobalOptions
    var logger: Logger
    /// Readable once a stop trigger fired (`boot`): the realm read stops waiting for the table.
    var cancel: Int32? = nil

    func plan() throws(LavaError) -> (BootPlan, any CodeArea) {
        let location = try SourceLocation(parsing: target.source)
        try RealmConfig.validateName(target.realm, what: "realm")
        try RealmConfig.validateName(target.worker, what: "worker")
        let root = try global.hostRoot()
        // Reading the realms table at boot meets a fleet-wide throttle: more attempts by default.
        let aws = AWSAccess(global: global, logger: logger, attempts: RetryPolicy.realmsTableAttempts)
        let item: RealmItem
        if let file = target.realmsFile {
            item = try RealmsFile.load(path: file, realm: target.realm)
        } else {
            item = try aws.realmItem(table: target.realmsTable, realm: target.realm, cancel: cancel)
        }
        let area = try aws.codeArea(location)
        let detector = PlatformDetector(root: root, os: platform?.os, arch: platform?.arch, python: platform?.python)
        let planner = BootPlanner(area: area, platformDetector: detector,
                                  installer: target.installer == .bundle ? .bundle : .native, skipPatterns: skipPatterns)
        let plan = try planner.plan(realm: target.realm, worker: target.worker, item: item)
        for warning in plan.warnings { logger.warning("\(warning)") }
        return (plan, area)
    }
}
