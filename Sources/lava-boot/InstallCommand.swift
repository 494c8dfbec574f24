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
        let installer = Installer(root: root, area: area, logger: logger)
        let releases = try installer.installAll(plan.packagesToInstall)
        for release in releases {
            print("\(release.reused ? "reused   " : "installed") \(release.package.fileName) -> \(release.path)")
        }
        if let current = releases.first, current.kind == .native {
            print("current   -> \(current.package.stem)")
        }
    }
}
