import LavaSource
import LavaSystem

/// Why a package was chosen; the strings are part of `plan`'s output and its JSON schema.
public enum SelectionReason: String, Sendable {
    case pinned = "pinned"
    case newestNewStyle = "newest new-style"
    case oldStyleFallback = "old-style fallback"
}

public struct SelectedPackage: Sendable, Equatable {
    public var object: ObjectInfo
    public var name: PackageName
    public var reason: SelectionReason
}

/// A package of the code area with its parsed name.
public struct ListedPackage: Sendable, Equatable {
    public var object: ObjectInfo
    public var name: PackageName

    public init(object: ObjectInfo, name: PackageName) {
        self.object = object
        self.name = name
    }
}

/// SPEC §3's selection over `_dist_/pkg/<OS>/`. Never picks another platform's package.
public struct PackageSelector: Sendable {
    public let area: any CodeArea
    public let platform: Platform

    public init(area: any CodeArea, platform: Platform) {
        self.area = area
        self.platform = platform
    }

    public static func directory(os: String) -> String { "_dist_/pkg/\(os)" }
    var directory: String { PackageSelector.directory(os: platform.os) }

    /// Every parsable package in the OS directory, newest first.
    public func listPackages() throws(LavaError) -> [ListedPackage] {
        PackageSelector.parse(try area.list(directory))
    }

    public static func parse(_ objects: [ObjectInfo]) -> [ListedPackage] {
        objects.compactMap { object in
            PackageName(fileName: object.name).map { ListedPackage(object: object, name: $0) }
        }.sorted { ($0.name.version, $1.name.fileName) > ($1.name.version, $0.name.fileName) }
    }

    /// Does this package belong to this exact platform (old-style names belong to every platform of the OS)?
    public func matches(_ name: PackageName) -> Bool {
        switch name.style {
        case .oldStyle: return true
        case .newStyle:
            return name.os == platform.os && platform.python != nil && name.python == platform.python
                && name.arch.map(platform.archSpellings.contains) == true
        }
    }

    public func select(pinned version: String?) throws(LavaError) -> SelectedPackage {
        if let version { return try selectPinned(version) }
        return try selectNewest()
    }

    /// Pinned: own arch spelling, then the alias, then the old-style name; existence by HEAD.
    private func selectPinned(_ version: String) throws(LavaError) -> SelectedPackage {
        var candidates = [String]()
        if let python = platform.python {
            for arch in platform.archSpellings {
                candidates.append(PackageName.newStyle(version: version, os: platform.os, python: python, arch: arch))
            }
        }
        candidates.append(PackageName.oldStyle(version: version))
        for fileName in candidates {
            guard let name = PackageName(fileName: fileName),
                  let object = try area.head(Paths.join(directory, fileName)) else { continue }
            return SelectedPackage(object: object, name: name, reason: .pinned)
        }
        let available = try listPackages().filter { matches($0.name) }.map(\.name.version.text)
        var seen = Set<String>()
        let versions = available.reversed().filter { seen.insert($0).inserted }
        throw LavaError(.selection, "cannot find lava v\(version) for \(platform) in \(area.displayName(directory)); "
            + (versions.isEmpty ? "no versions exist for this platform" : "versions for this platform: \(versions.joined(separator: ", "))"))
    }

    /// Unpinned: the newest release of exactly this platform, else the newest old-style release.
    private func selectNewest() throws(LavaError) -> SelectedPackage {
        let packages = try listPackages()
        let releases = packages.filter { $0.name.version.isRelease && matches($0.name) }
        let newStyle = releases.filter { $0.name.style == .newStyle }
        // Newest version; between the two arch spellings of one version, the machine's own.
        if let best = newStyle.max(by: { a, b in
            (a.name.version, a.name.arch == platform.arch ? 1 : 0) < (b.name.version, b.name.arch == platform.arch ? 1 : 0)
        }) {
            return SelectedPackage(object: best.object, name: best.name, reason: .newestNewStyle)
        }
        if let best = releases.filter({ $0.name.style == .oldStyle }).max(by: { $0.name.version < $1.name.version }) {
            return SelectedPackage(object: best.object, name: best.name, reason: .oldStyleFallback)
        }
        throw LavaError(.selection, "no lava release for \(platform) in \(area.displayName(directory))"
            + (packages.isEmpty ? "" : " (its \(packages.count) package(s) are for other platforms or pre-releases)")
            + "; pin a version or publish a bundle for this platform")
    }
}
