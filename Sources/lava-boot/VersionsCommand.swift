import ArgumentParser
import LavaAWS
import LavaInstall
import LavaSelection
import LavaSource
import LavaSystem

struct VersionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "versions",
        abstract: "List the lava packages in a code area, parsed.")

    @Argument(help: "Code area: s3://BUCKET/PREFIX or file:///abs/path.")
    var source: String

    @OptionGroup var platform: PlatformOptions

    @Flag(help: "Every package of every OS, not only this platform's.")
    var all = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if all && (platform.os != nil || platform.arch != nil || platform.python != nil) {
            throw ValidationError("--all lists every platform; it cannot be combined with --os, --arch or --python")
        }
    }

    func run() throws {
        let logger = try global.makeLogger(component: "versions")
        let location = try SourceLocation(parsing: source)
        let area = try AWSAccess(global: global, logger: logger, attempts: RetryPolicy.defaultAttempts).codeArea(location)
        var rows = [(os: String, package: ListedPackage)]()
        if all {
            for os in try area.listDirectories("_dist_/pkg") {
                let packages = PackageSelector.parse(try area.list(PackageSelector.directory(os: os)))
                rows += packages.map { (os, $0) }
            }
        } else {
            let detector = PlatformDetector(root: try global.hostRoot(), os: platform.os, arch: platform.arch, python: platform.python)
            let (detected, warnings) = try detector.detect()
            for warning in warnings { logger.warning("\(warning)") }
            let selector = PackageSelector(area: area, platform: detected)
            rows = try selector.listPackages().filter { selector.matches($0.name) }.map { (detected.os, $0) }
            print("platform: \(detected)")
        }
        if rows.isEmpty {
            print("no lava packages found in \(area.displayName("_dist_/pkg"))")
            return
        }
        let header = ["VERSION", "OS", "PYTHON", "ARCH", "STYLE", "SIZE", "MODIFIED (UTC)", "FILE"]
        let table = rows.map { row in
            [row.package.name.version.text, row.os, row.package.name.python ?? "-", row.package.name.arch ?? "-",
             row.package.name.style.rawValue + (row.package.name.version.isRelease ? "" : " (pre-release)"),
             formatBytes(row.package.object.size),
             CivilTime(epochSeconds: row.package.object.modified).shortDisplay, row.package.name.fileName]
        }
        print(formatTable(header: header, rows: table), terminator: "")
    }
}

/// Left-aligned columns two spaces apart.
func formatTable(header: [String], rows: [[String]]) -> String {
    var widths = header.map(\.count)
    for row in rows {
        for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
    }
    var out = ""
    for row in [header] + rows {
        var line = ""
        for (index, cell) in row.enumerated() {
            line += index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count + 2)
        }
        out += line + "\n"
    }
    return out
}
