import LavaInstall
import LavaPlan
import LavaRealm
import LavaSelection
import LavaSource
import LavaSystem
import Logging

/// Resolution shared by `plan`, `install` and (later) `boot`.
struct Resolver {
    var target: TargetOptions
    var platform: PlatformOptions?
    var skipPatterns: [String]
    var root: HostRoot
    var logger: Logger

    func plan() throws(LavaError) -> (BootPlan, any CodeArea) {
        let location = try SourceLocation(parsing: target.source)
        try RealmConfig.validateName(target.realm, what: "realm")
        try RealmConfig.validateName(target.worker, what: "worker")
        let item = try loadItem()
        let area = try CodeAreas.open(location)
        let detector = PlatformDetector(root: root, os: platform?.os, arch: platform?.arch, python: platform?.python)
        let planner = BootPlanner(area: area, platformDetector: detector,
                                  installer: target.installer == .bundle ? .bundle : .native, skipPatterns: skipPatterns)
        let plan = try planner.plan(realm: target.realm, worker: target.worker, item: item)
        for warning in plan.warnings { logger.warning("\(warning)") }
        return (plan, area)
    }

    private func loadItem() throws(LavaError) -> RealmItem {
        guard let file = target.realmsFile else {
            throw LavaError(.unsupported, "reading the realms table from DynamoDB is not supported yet by this build; pass --realms-file FILE")
        }
        return try RealmsFile.load(path: file, realm: target.realm)
    }
}
