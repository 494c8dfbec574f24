import LavaSelection
import LavaSource
import LavaSystem
import LavaTestSupport
import Testing

/// SPEC §3: which bundle a worker gets, and the decoys it must never get.
@Suite struct SelectionTests {
    /// An in-memory code area: objects are the given keys, each of size 1.
    struct FakeCodeArea: CodeArea {
        let keys: [String]

        init(_ keys: [String]) { self.keys = keys }

        var location: LavaSource.SourceLocation { .s3(bucket: "fake-bucket", prefix: "area") }

        private static func byteOrder(_ a: String, _ b: String) -> Bool {
            Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8))
        }

        private func info(_ key: String) -> ObjectInfo {
            ObjectInfo(key: key, size: 1, modified: 1_700_000_000, etag: "etag-\(key.utf8.count)")
        }

        func list(_ directory: String) throws(LavaError) -> [ObjectInfo] {
            keys.filter { Paths.parent(of: $0) == directory }.sorted(by: FakeCodeArea.byteOrder).map(info)
        }

        func listDirectories(_ directory: String) throws(LavaError) -> [String] {
            var names = Set<String>()
            for key in keys where key.hasPrefix(directory + "/") {
                let rest = key.dropFirst(directory.count + 1)
                if let slash = rest.firstIndex(of: "/") { names.insert(String(rest[..<slash])) }
            }
            return names.sorted(by: FakeCodeArea.byteOrder)
        }

        func head(_ key: String) throws(LavaError) -> ObjectInfo? {
            keys.contains(key) ? info(key) : nil
        }

        func open(_ key: String) throws(LavaError) -> any ByteStream {
            guard keys.contains(key) else { throw LavaError(.system, "no such key \(key)") }
            return EmptyStream()
        }

        func localPath(_ key: String) -> String? { nil }
    }

    final class EmptyStream: ByteStream {
        func read(into buffer: UnsafeMutableRawBufferPointer) throws(LavaError) -> Int { 0 }
    }

    static let amzn = "_dist_/pkg/amzn2023"

    /// Names without a slash live in `_dist_/pkg/<os>/`.
    static func area(_ names: [String], os: String = "amzn2023") -> FakeCodeArea {
        FakeCodeArea(names.map { $0.contains("/") ? $0 : "_dist_/pkg/\(os)/\($0)" })
    }

    static func select(_ names: [String], os: String = "amzn2023", arch: String = "x86_64", python: String? = "3.11",
                       pinned: String? = nil) throws -> SelectedPackage {
        let platform = try Platform(os: os, arch: arch, python: python)
        return try PackageSelector(area: area(names, os: os), platform: platform).select(pinned: pinned)
    }

    static func selectionError(_ names: [String], os: String = "amzn2023", arch: String = "x86_64", python: String? = "3.11",
                               pinned: String? = nil, sourceLocation: Testing.SourceLocation = #_sourceLocation) -> LavaError? {
        do {
            let chosen = try select(names, os: os, arch: arch, python: python, pinned: pinned)
            Issue.record("expected no selection, got \(chosen.name.fileName)", sourceLocation: sourceLocation)
            return nil
        } catch let error as LavaError {
            #expect(error.code == .selection, "\(error)", sourceLocation: sourceLocation)
            return error
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    static func new(_ version: String, os: String = "amzn2023", py: String = "3.11", arch: String = "x86_64") -> String {
        "lava-\(version)-\(os)-py\(py)-\(arch).tar.bz2"
    }

    static func old(_ version: String) -> String { "lava-\(version).tar.bz2" }

    // MARK: Unpinned

    @Test func newestNewStyleReleaseIsChosen() throws {
        let chosen = try SelectionTests.select([SelectionTests.new("8.1.0"), SelectionTests.new("8.2.0"), SelectionTests.new("7.9.9")])
        #expect(chosen.name.fileName == SelectionTests.new("8.2.0"))
        #expect(chosen.name.version.text == "8.2.0")
        #expect(chosen.reason == .newestNewStyle)
        #expect(chosen.reason.rawValue == "newest new-style")
        #expect(chosen.object.key == "\(SelectionTests.amzn)/\(SelectionTests.new("8.2.0"))")
    }

    @Test func aNewerOldStyleNameNeverBeatsANewStyleRelease() throws {
        let chosen = try SelectionTests.select([
            SelectionTests.old("9.0.0"), SelectionTests.old("10.0.0"), SelectionTests.new("8.2.0"),
        ])
        #expect(chosen.name.fileName == SelectionTests.new("8.2.0"))
        #expect(chosen.reason == .newestNewStyle)
    }

    static let decoys: [String] = [
        SelectionTests.new("9.0.0", os: "ubuntu24"),                     // another OS's name in this OS's directory
        SelectionTests.new("9.0.0", os: "amzn2"),                        // an OS that is a prefix of ours
        SelectionTests.new("9.0.0", os: "amzn20230"),                    // an OS ours is a prefix of
        SelectionTests.new("9.0.0", py: "3.12"),                         // another python
        SelectionTests.new("9.0.0", py: "3.1"),                          // a python ours starts with
        SelectionTests.new("9.0.0", py: "3.11.4"),                       // not major.minor
        SelectionTests.new("9.0.0", arch: "aarch64"),                    // another arch
        SelectionTests.new("9.0.0", arch: "arm64"),                      // another arch's alias
        SelectionTests.new("9.0.0", arch: "x86"),
        "_dist_/pkg/ubuntu24/" + SelectionTests.new("9.9.9", os: "ubuntu24"),  // another OS's directory
        "_dist_/pkg/ubuntu24/" + SelectionTests.new("9.9.9"),            // our name, filed under another OS
        "_dist_/pkg/ubuntu24/" + SelectionTests.old("9.9.9"),
        "_dist_/pkg/" + SelectionTests.new("9.9.9"),                     // above the OS directory
        "_dist_/" + SelectionTests.old("9.9.9"),
        "lava-9.9.9-amzn2023-py3.11-x86_64.tar.bz2.sha256",              // not a bundle
        "lava-9.9.9-amzn2023-py3.11-x86_64.tar.gz",
        "lava-9.9.9-amzn2023-x86_64.tar.bz2",
        "lava-latest.tar.bz2",
        "lava-9.9.9.tar.bz2.bak",
        "LAVA-9.9.9.tar.bz2",
        "lava-v9.9.9.tar.bz2",
    ]

    @Test(arguments: SelectionTests.decoys)
    func anotherPlatformsNewerBuildIsNeverChosen(_ decoy: String) throws {
        let chosen = try SelectionTests.select([decoy, SelectionTests.new("8.2.0")])
        #expect(chosen.name.fileName == SelectionTests.new("8.2.0"))
        #expect(chosen.reason == .newestNewStyle)
    }

    @Test func otherPlatformsBuildsNeverCountAsTheOldStyleFallback() throws {
        // The old script's `lava-*.tar.bz2` glob matched the decoys here.
        let chosen = try SelectionTests.select(SelectionTests.decoys + [SelectionTests.old("8.0.0")])
        #expect(chosen.name.fileName == SelectionTests.old("8.0.0"))
        #expect(chosen.reason == .oldStyleFallback)
        #expect(chosen.reason.rawValue == "old-style fallback")
        #expect(chosen.name.style == .oldStyle)
    }

    @Test func onlyOtherPlatformsBuildsIsAnError() {
        let error = SelectionTests.selectionError(SelectionTests.decoys)
        #expect(error?.message.contains("amzn2023/py3.11/x86_64") == true, "\(String(describing: error))")
    }

    @Test func versionsCompareNumerically() throws {
        let chosen = try SelectionTests.select(["8.9.3", "8.10.0", "8.2.0", "8.1.10", "8.9.10"].map { SelectionTests.new($0) })
        #expect(chosen.name.version.text == "8.10.0")
        let old = try SelectionTests.select(["8.9.3", "8.10.0", "8.2.0"].map(SelectionTests.old))
        #expect(old.name.fileName == SelectionTests.old("8.10.0"))
        #expect(old.reason == .oldStyleFallback)
        let major = try SelectionTests.select(["9.0.0", "10.0.0", "1.99.99"].map { SelectionTests.new($0) })
        #expect(major.name.version.text == "10.0.0")
    }

    @Test func preReleasesAreNeverChosenUnpinned() throws {
        let names = [SelectionTests.new("8.1.0"), SelectionTests.new("8.2.0rc1"), SelectionTests.new("8.1.0rc1"),
                     SelectionTests.new("9.0.0b2"), SelectionTests.new("8.3.0.dev1")]
        let chosen = try SelectionTests.select(names)
        #expect(chosen.name.version.text == "8.1.0")
        let old = try SelectionTests.select([SelectionTests.old("8.1.0"), SelectionTests.old("8.2.0rc1")])
        #expect(old.name.fileName == SelectionTests.old("8.1.0"))
    }

    @Test func notThreeComponentVersionsAreNotReleases() throws {
        let chosen = try SelectionTests.select([SelectionTests.new("8.1.0"), SelectionTests.new("9.0"), SelectionTests.new("9.0.0.1")])
        #expect(chosen.name.version.text == "8.1.0")
    }

    @Test func onlyPreReleasesIsAnErrorUnpinned() {
        let error = SelectionTests.selectionError([SelectionTests.new("8.2.0rc1"), SelectionTests.old("8.3.0rc2")])
        #expect(error != nil)
    }

    @Test func preReleaseIsChosenWhenPinned() throws {
        let names = [SelectionTests.new("8.1.0"), SelectionTests.new("8.2.0rc1"), SelectionTests.new("8.2.0")]
        let chosen = try SelectionTests.select(names, pinned: "8.2.0rc1")
        #expect(chosen.name.fileName == SelectionTests.new("8.2.0rc1"))
        #expect(chosen.reason == .pinned)
        #expect(chosen.reason.rawValue == "pinned")
        let old = try SelectionTests.select([SelectionTests.old("8.2.0rc1")], pinned: "8.2.0rc1")
        #expect(old.name.fileName == SelectionTests.old("8.2.0rc1"))
    }

    @Test func pythonPrefixTrap() throws {
        let names = [SelectionTests.new("9.0.0", py: "3.11"), SelectionTests.new("8.0.0", py: "3.1"),
                     SelectionTests.new("8.5.0", py: "3.111"), SelectionTests.new("7.0.0", py: "3.11")]
        let onPy31 = try SelectionTests.select(names, python: "3.1")
        #expect(onPy31.name.fileName == SelectionTests.new("8.0.0", py: "3.1"))
        let onPy311 = try SelectionTests.select([SelectionTests.new("9.0.0", py: "3.1"), SelectionTests.new("7.0.0", py: "3.11")],
                                                python: "3.11")
        #expect(onPy311.name.fileName == SelectionTests.new("7.0.0", py: "3.11"))
        let pinned = SelectionTests.selectionError([SelectionTests.new("9.0.0", py: "3.11")], python: "3.1", pinned: "9.0.0")
        #expect(pinned?.message.contains("py3.1/") == true, "\(String(describing: pinned))")
    }

    @Test func archAliasIsUsedWhenItIsTheOnlySpelling() throws {
        let chosen = try SelectionTests.select([SelectionTests.new("8.2.0", arch: "x64"), SelectionTests.new("8.1.0")])
        #expect(chosen.name.fileName == SelectionTests.new("8.2.0", arch: "x64"))
        #expect(chosen.reason == .newestNewStyle)
        let arm = try SelectionTests.select([SelectionTests.new("8.2.0", arch: "arm64"), SelectionTests.new("8.3.0", arch: "x64")],
                                            arch: "aarch64")
        #expect(arm.name.fileName == SelectionTests.new("8.2.0", arch: "arm64"))
    }

    @Test(arguments: [("x86_64", "x64"), ("x64", "x86_64"), ("aarch64", "arm64"), ("arm64", "aarch64")])
    func ownArchSpellingIsPreferredWhenBothExist(_ own: String, _ alias: String) throws {
        // Listed in both orders, so neither the listing order nor the byte order decides.
        for names in [[SelectionTests.new("8.2.0", arch: own), SelectionTests.new("8.2.0", arch: alias)],
                      [SelectionTests.new("8.2.0", arch: alias), SelectionTests.new("8.2.0", arch: own)]] {
            let chosen = try SelectionTests.select(names, arch: own)
            #expect(chosen.name.fileName == SelectionTests.new("8.2.0", arch: own))
            let pinned = try SelectionTests.select(names, arch: own, pinned: "8.2.0")
            #expect(pinned.name.fileName == SelectionTests.new("8.2.0", arch: own))
        }
    }

    @Test func withoutPythonOnlyOldStyleNamesMatch() throws {
        let names = [SelectionTests.new("9.0.0"), SelectionTests.new("9.0.0", py: "3.12"), SelectionTests.old("8.0.0")]
        let chosen = try SelectionTests.select(names, python: nil)
        #expect(chosen.name.fileName == SelectionTests.old("8.0.0"))
        #expect(chosen.reason == .oldStyleFallback)
        let pinned = try SelectionTests.select(names, python: nil, pinned: "8.0.0")
        #expect(pinned.name.fileName == SelectionTests.old("8.0.0"))
        #expect(pinned.reason == .pinned)
        let error = SelectionTests.selectionError(names, python: nil, pinned: "9.0.0")
        #expect(error?.message.contains("cannot find lava v9.0.0") == true, "\(String(describing: error))")
        #expect(SelectionTests.selectionError([SelectionTests.new("9.0.0")], python: nil) != nil)
    }

    @Test func nothingAtAllIsAnError() {
        let empty = SelectionTests.selectionError([])
        #expect(empty?.message.contains("amzn2023/py3.11/x86_64") == true, "\(String(describing: empty))")
        let junk = SelectionTests.selectionError(["README.md", "lava-8.2.0.zip", "checksums.txt"])
        #expect(junk != nil)
    }

    // MARK: Pinned

    @Test func pinnedVersionIsChosenOverNewer() throws {
        let names = [SelectionTests.new("8.1.0"), SelectionTests.new("8.2.0"), SelectionTests.old("8.1.0")]
        let chosen = try SelectionTests.select(names, pinned: "8.1.0")
        #expect(chosen.name.fileName == SelectionTests.new("8.1.0"))
        #expect(chosen.reason == .pinned)
        #expect(chosen.object.key == "\(SelectionTests.amzn)/\(SelectionTests.new("8.1.0"))")
    }

    @Test func pinnedUsesTheAliasWhenItIsTheOnlySpelling() throws {
        let chosen = try SelectionTests.select([SelectionTests.new("8.1.0", arch: "x64"), SelectionTests.old("8.1.0")], pinned: "8.1.0")
        #expect(chosen.name.fileName == SelectionTests.new("8.1.0", arch: "x64"))
    }

    @Test func pinnedFallsBackToTheOldStyleName() throws {
        let names = [SelectionTests.old("7.5.0"), SelectionTests.new("8.2.0"), SelectionTests.new("7.5.0", py: "3.12")]
        let chosen = try SelectionTests.select(names, pinned: "7.5.0")
        #expect(chosen.name.fileName == SelectionTests.old("7.5.0"))
        #expect(chosen.name.style == .oldStyle)
        #expect(chosen.reason == .pinned)
        #expect(chosen.object.key == "\(SelectionTests.amzn)/lava-7.5.0.tar.bz2")
    }

    @Test func pinnedMissingListsThisPlatformsVersions() {
        let names = [SelectionTests.new("8.1.0"), SelectionTests.new("8.2.0", arch: "x64"), SelectionTests.old("7.0.0"),
                     SelectionTests.new("8.5.0", py: "3.12"), SelectionTests.new("8.5.0", arch: "aarch64"),
                     SelectionTests.new("8.5.0", os: "ubuntu24"), "_dist_/pkg/ubuntu24/" + SelectionTests.old("6.6.6")]
        let error = SelectionTests.selectionError(names, pinned: "8.5.0")
        let message = error?.message ?? ""
        #expect(message.contains("cannot find lava v8.5.0 for amzn2023/py3.11/x86_64"), "\(message)")
        for version in ["8.1.0", "8.2.0", "7.0.0"] {
            #expect(message.contains(version), "\(message) should list \(version)")
        }
        #expect(!message.contains("6.6.6"), "\(message) lists another OS's version")
        // 8.5.0 exists only for other platforms, so it is only named as the version asked for.
        #expect(message.components(separatedBy: "8.5.0").count == 2, "\(message)")
    }

    @Test func pinnedMissingWithNothingForThisPlatform() {
        let error = SelectionTests.selectionError([SelectionTests.new("8.5.0", py: "3.12")], arch: "aarch64", pinned: "8.2.0")
        #expect(error?.message.contains("cannot find lava v8.2.0 for amzn2023/py3.11/aarch64") == true, "\(String(describing: error))")
    }

    @Test func pinnedNeverTakesAnotherPlatformsBuild() {
        for decoy in [SelectionTests.new("8.2.0", py: "3.12"), SelectionTests.new("8.2.0", arch: "aarch64"),
                      SelectionTests.new("8.2.0", os: "ubuntu24"), "_dist_/pkg/ubuntu24/" + SelectionTests.old("8.2.0")] {
            #expect(SelectionTests.selectionError([decoy], pinned: "8.2.0") != nil, "\(decoy)")
        }
    }

    @Test func pinnedExactVersionOnly() {
        // 8.2 is not 8.2.0, and 8.2.0 is not 8.2.0rc1.
        #expect(SelectionTests.selectionError([SelectionTests.new("8.2.0")], pinned: "8.2") != nil)
        #expect(SelectionTests.selectionError([SelectionTests.new("8.2.0rc1")], pinned: "8.2.0") != nil)
    }

    @Test func pinnedFindsTheNewStyleNameOfAnOSWithAHyphen() throws {
        let os = "opensuse-leap15"
        let names = [SelectionTests.new("8.2.0", os: os), SelectionTests.old("8.2.0")]
        let pinned = try SelectionTests.select(names, os: os, pinned: "8.2.0")
        #expect(pinned.name.fileName == SelectionTests.new("8.2.0", os: os))
        let newest = try SelectionTests.select(names, os: os)
        #expect(newest.name.fileName == SelectionTests.new("8.2.0", os: os))
    }

    // MARK: Listing

    @Test func listPackagesIsNewestFirstAndOnlyBundles() throws {
        let platform = try Platform(os: "amzn2023", arch: "x86_64", python: "3.11")
        let area = SelectionTests.area([SelectionTests.new("8.9.3"), "README.md", SelectionTests.old("8.10.0"),
                                        SelectionTests.new("8.10.0rc1"), SelectionTests.new("7.0.0", py: "3.12")])
        let listed = try PackageSelector(area: area, platform: platform).listPackages()
        #expect(listed.map(\.name.version.text) == ["8.10.0", "8.10.0rc1", "8.9.3", "7.0.0"])
        #expect(listed.allSatisfy { $0.object.key.hasPrefix(SelectionTests.amzn + "/") })
        #expect(PackageSelector.directory(os: "rocky9") == "_dist_/pkg/rocky9")
    }

    // MARK: Names and versions

    @Test func newStyleNamesParse() throws {
        let name = try #require(PackageName(fileName: "lava-8.2.0rc1-amzn2023-py3.11-x86_64.tar.bz2"))
        #expect(name.style == .newStyle)
        #expect(name.version.text == "8.2.0rc1")
        #expect(name.os == "amzn2023")
        #expect(name.python == "3.11")
        #expect(name.arch == "x86_64")
        #expect(name.stem == "lava-8.2.0rc1-amzn2023-py3.11-x86_64")
        #expect(PackageName.newStyle(version: "8.2.0", os: "ubuntu24", python: "3.12", arch: "arm64")
                == "lava-8.2.0-ubuntu24-py3.12-arm64.tar.bz2")
    }

    @Test func oldStyleNamesParse() throws {
        let name = try #require(PackageName(fileName: "lava-7.1.3.tar.bz2"))
        #expect(name.style == .oldStyle)
        #expect(name.version.text == "7.1.3")
        #expect(name.os == nil)
        #expect(name.python == nil)
        #expect(name.arch == nil)
        #expect(PackageName.oldStyle(version: "7.1.3") == "lava-7.1.3.tar.bz2")
    }

    @Test(arguments: [
        "lava-8.2.0.tar.gz", "lava-8.2.0.tar.bz2.sha256", "lava-.tar.bz2", "lava-latest.tar.bz2", "lava-v8.2.0.tar.bz2",
        "lava-8.2.0-amzn2023-x86_64.tar.bz2", "lava-8.2.0-amzn2023-py3-x86_64.tar.bz2", "lava-8.2.0-amzn2023-py3.11.2-x86_64.tar.bz2",
        "lava-8.2.0-amzn2023-3.11-x86_64.tar.bz2", "lava-8.2.0--py3.11-x86_64.tar.bz2", "lava-8.2.0-amzn2023-py3.11-.tar.bz2",
        "lava-8.2.0-amzn2023-py3.11-x86_64-extra.tar.bz2", "lava-8..2.tar.bz2", "lava-8.2.0-1.tar.bz2", "lava-8.2.0.tar.bz2/",
        "xlava-8.2.0.tar.bz2", "lava-8.2.0-amzn2023-pyx.y-x86_64.tar.bz2",
    ])
    func otherNamesAreNotPackages(_ fileName: String) {
        #expect(PackageName(fileName: fileName) == nil)
    }

    @Test(arguments: [
        ("8.10.0", "8.9.3"), ("8.2.0", "8.2.0rc1"), ("8.1.0", "8.1.0rc1"), ("8.2.0rc10", "8.2.0rc2"), ("8.2.0rc1", "8.1.9"),
        ("10.0.0", "9.99.99"), ("8.2.1", "8.2.0.9"), ("8.2.0rc1", "8.2.0b9"), ("1.0.0", "0.999999999.0"),
    ] as [(String, String)])
    func versionOrdering(_ newer: String, _ older: String) throws {
        let a = try #require(LavaVersion(newer)), b = try #require(LavaVersion(older))
        #expect(a > b)
        #expect(b < a)
        #expect(a != b)
    }

    @Test func versionParts() throws {
        let release = try #require(LavaVersion("8.10.3"))
        #expect(release.components == [8, 10, 3])
        #expect(release.suffix.isEmpty)
        #expect(release.isRelease)
        #expect(release.description == "8.10.3")
        let rc = try #require(LavaVersion("8.2.0rc1"))
        #expect(rc.components == [8, 2, 0])
        #expect(rc.suffix == "rc1")
        #expect(!rc.isRelease)
        #expect(LavaVersion("8.2")?.isRelease == false)
        #expect(LavaVersion("8.2.0.1")?.isRelease == false)
        #expect(LavaVersion("7.1.3")?.isOlder(than: 8, 0) == true)
        #expect(LavaVersion("8.0.0")?.isOlder(than: 8, 0) == false)
        #expect(LavaVersion("7.10.0")?.isOlder(than: 7, 9) == false)
    }

    @Test(arguments: ["", "v8.2.0", "8..2", "8.2.", ".8.2", "8.2.0-1", "8.2.0_rc1", "8.2.0 ", "latest", "8.2.0rc-1", "1234567890.0.0"])
    func notVersions(_ text: String) {
        #expect(LavaVersion(text) == nil)
    }

    @Test func sortingManyVersions() throws {
        let texts = ["8.10.0", "8.2.0rc1", "8.9.3", "8.2.0", "10.0.0", "8.2.0rc10", "8.2.0rc2", "7.0.0"]
        let sorted = try texts.map { try #require(LavaVersion($0)) }.sorted().map(\.text)
        #expect(sorted == ["7.0.0", "8.2.0rc1", "8.2.0rc2", "8.2.0rc10", "8.2.0", "8.9.3", "8.10.0", "10.0.0"])
    }
}
