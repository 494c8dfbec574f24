import LavaSource
import LavaSystem

/// A package of the code area together with the OS directory it sits in.
public struct PlatformPackage: Sendable, Equatable {
    public var os: String
    public var package: ListedPackage

    /// `amzn2023/py3.11/x86_64`; an old-style name serves every Python and arch of its OS.
    public var platformText: String {
        let name = package.name
        if name.style == .oldStyle { return "\(os) (old-style, any python/arch)" }
        return "\(os)/py\(name.python ?? "?")/\(name.arch ?? "?")"
    }
}

/// The platform a version is asked for: any field left out matches every value.
public struct PlatformFilter: Sendable {
    public var os: String?
    public var archSpellings: [String]?
    public var python: String?

    public init(os: String?, arch: String?, python: String?) throws(LavaError) {
        self.os = os
        self.archSpellings = try arch.map { arch throws(LavaError) in try Platform(os: "", arch: arch, python: nil).archSpellings }
        self.python = python
    }

    public var isEmpty: Bool { os == nil && archSpellings == nil && python == nil }

    func matches(_ candidate: PlatformPackage) -> Bool {
        if let os, candidate.os != os { return false }
        let name = candidate.package.name
        guard name.style == .newStyle else { return true }
        if let python, name.python != python { return false }
        if let archSpellings, !archSpellings.contains(name.arch ?? "") { return false }
        return true
    }

    public var description: String {
        "\(os ?? "any OS")/py\(python ?? "any")/\(archSpellings?.first ?? "any arch")"
    }
}

/// Does the code area hold a version (`pin`'s check before it writes)?
public enum VersionSearch {
    /// Every package of `version` under `_dist_/pkg/`, in OS order.
    public static func packages(of version: String, in area: any CodeArea) throws(LavaError) -> [PlatformPackage] {
        var found = [PlatformPackage]()
        for os in try area.listDirectories("_dist_/pkg").sorted() {
            for package in PackageSelector.parse(try area.list(PackageSelector.directory(os: os)))
            where package.name.version.text == version {
                found.append(PlatformPackage(os: os, package: package))
            }
        }
        return found
    }

    /// The packages of `version` that `filter` admits; an error listing where the version does
    /// exist (or that no platform has it) when none does.
    public static func require(_ version: String, for filter: PlatformFilter, in area: any CodeArea) throws(LavaError) -> [PlatformPackage] {
        let all = try packages(of: version, in: area)
        let matching = all.filter(filter.matches)
        if !matching.isEmpty { return matching }
        let place = area.displayName("_dist_/pkg")
        if all.isEmpty {
            throw LavaError(.selection, "no platform has lava \(version) in \(place); publish it first or check the version")
        }
        var seen = Set<String>()
        let platforms = all.map(\.platformText).filter { seen.insert($0).inserted }
        throw LavaError(.selection, "lava \(version) is not in \(place) for \(filter.description); it exists for: \(platforms.joined(separator: ", "))")
    }
}
