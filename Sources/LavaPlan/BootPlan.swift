import LavaRealm
import LavaSelection
import LavaSource
import LavaSystem
#if canImport(Glibc)
import Glibc
#endif

/// How a bundle is put on the host.
public enum InstallerKind: String, Sendable, CaseIterable {
    /// Each bundle in its own `/opt/lava/releases/<stem>/`, `current` switched atomically.
    case native
    /// The bundle's own `install.sh -c -d BASE BUNDLE`, as the old scripts did.
    case bundle
}

/// One worker of the host with the package it would run.
public struct WorkerPlan: Sendable {
    public var config: WorkerConfig
    public var package: SelectedPackage
    /// Decided here, once: `--installer bundle`, and any version before 8.0, use install.sh.
    public var installer: InstallerKind
}

/// A boot scriptlet of `_boot_/` and whether lava-boot runs it or takes its slot.
public struct ScriptletPlan: Sendable, Equatable {
    public var object: ObjectInfo
    public var skipped: Bool
    public var name: String { object.name }
}

/// Everything `boot` would do, resolved without changing anything: what `plan` prints and what
/// `install` and `boot` carry out.
public struct BootPlan: Sendable {
    public var source: SourceLocation
    public var realm: String
    public var worker: String
    public var platform: Platform
    public var host: HostConfig
    public var workers: [WorkerPlan]
    /// The host worker's package: what `current` points at.
    public var current: WorkerPlan
    public var scriptlets: [ScriptletPlan]
    /// Things worth a warning line (bad env keys, no python3).
    public var warnings: [String]

    /// Distinct packages to install, in worker order.
    public var packagesToInstall: [WorkerPlan] {
        var seen = Set<String>()
        return ([current] + workers).filter { seen.insert($0.package.name.fileName).inserted }
    }
}

public struct BootPlanner: Sendable {
    public var area: any CodeArea
    public var platformDetector: PlatformDetector
    public var installer: InstallerKind
    public var skipPatterns: [String]

    public init(area: any CodeArea, platformDetector: PlatformDetector, installer: InstallerKind, skipPatterns: [String]) {
        self.area = area
        self.platformDetector = platformDetector
        self.installer = installer
        self.skipPatterns = skipPatterns
    }

    public func plan(realm: String, worker: String, item: RealmItem) throws(LavaError) -> BootPlan {
        let config = try RealmConfig(realm: realm, item: item)
        let host = try config.host(worker: worker)
        let (platform, platformWarnings) = try platformDetector.detect()
        let selector = PackageSelector(area: area, platform: platform)
        var chosen = [String: SelectedPackage]()  // by pinned version ("" = newest): one lookup each
        func plan(for worker: WorkerConfig) throws(LavaError) -> WorkerPlan {
            let pin = worker.version ?? ""
            let package: SelectedPackage
            if let known = chosen[pin] {
                package = known
            } else {
                do {
                    package = try selector.select(pinned: worker.version)
                } catch {
                    throw error.prefixed("\(realm): worker \(worker.worker)")
                }
                chosen[pin] = package
            }
            let kind: InstallerKind = package.name.version.isOlder(than: 8, 0) ? .bundle : installer
            return WorkerPlan(config: worker, package: package, installer: kind)
        }
        let current = try plan(for: host.host)
        var workers = [WorkerPlan]()
        for worker in host.workers { workers.append(try plan(for: worker)) }
        return BootPlan(source: area.location, realm: realm, worker: worker, platform: platform, host: host,
                        workers: workers, current: current, scriptlets: try scriptlets(),
                        warnings: platformWarnings + host.warnings)
    }

    /// `_boot_/` direct children in byte order, README* left out, skip patterns marked.
    public func scriptlets() throws(LavaError) -> [ScriptletPlan] {
        try area.list("_boot_").filter { !$0.name.hasPrefix("README") }.map { object in
            ScriptletPlan(object: object, skipped: skipPatterns.contains { fnmatch($0, object.name, 0) == 0 })
        }
    }
}
