import ArgumentParser
import LavaInstall
import LavaPlan
import LavaSystem

struct InstallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Select and install the releases this host's workers need; start nothing.")

    @OptionGroup var target: TargetOptions
    @OptionGroup var platform: PlatformOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        var logger = try global.makeLogger(component: "install")
        logger[metadataKey: "realm"] = "\(target.realm)"
        logger[metadataKey: "worker"] = "\(target.worker)"
        let root = try global.hostRoot()
        let resolver = Resolver(target: target, platform: platform, skipPatterns: [], global: global, logger: logger)
        let (plan, area) = try resolver.plan()
        let installer = Installer(root: root, area: area, preferred: target.installer == .bundle ? .bundle : .native, logger: logger)
        let releases = try installReleases(plan, installer: installer)
        for release in releases {
            print("\(release.reused ? "reused   " : "installed") \(release.package.fileName) -> \(release.path)")
        }
        if let current = releases.first, current.kind == .native {
            print("current   -> \(current.package.stem)")
        }
    }
}

/// Installs every distinct package of the plan, then points `current` at the host worker's.
/// Nothing switches until every install has succeeded.
func installReleases(_ plan: BootPlan, installer: Installer) throws(LavaError) -> [InstalledRelease] {
    var releases = [InstalledRelease]()
    for worker in plan.packagesToInstall {
        releases.append(try installer.install(worker.package))
    }
    try installer.makeCurrent(releases[0])
    return releases
}
