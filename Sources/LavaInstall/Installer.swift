import CArchive
import CShim
import LavaJSON
import LavaPlan
import LavaSelection
import LavaSource
import LavaSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// An installed release, and how to run its worker.
public struct InstalledRelease: Sendable, Equatable {
    public var package: PackageName
    public var kind: InstallerKind
    /// `<root>/opt/lava/releases/<stem>` for native installs; the BASE for bundle installs.
    public var path: String
    public var reused: Bool
    /// The `lava-worker` this release's daemons run.
    public var workerExecutable: String
}

public struct Installer: Sendable {
    public let root: HostRoot
    public let area: any CodeArea
    public let logger: Logger
    /// Polled between packages and archive entries: a stop requested meanwhile ends the
    /// install (nothing half-installed: the partial tree is removed).
    public var isCancelled: @Sendable () -> Bool = { false }

    public init(root: HostRoot, area: any CodeArea, logger: Logger) {
        self.root = root
        self.area = area
        self.logger = logger
    }

    static let lavaHome = "/opt/lava"
    /// What `current` and `/usr/local/bin` links name: relative, so the tree stays valid as `/`.
    static let binLinkPrefix = "../../../opt/lava/current"
    /// Names a bundle may not bring: the installer writes them.
    static let reservedNames: Set<String> = [".boot"]
    /// Where a command in `/usr/local/bin` would shadow a system one for root.
    static let systemCommandDirectories = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]

    /// Installs each package (the first is the host worker's, which `current` names), holding
    /// the root's install lock, then switches `current`: nothing switches until all succeeded.
    public func installAll(_ plans: [WorkerPlan]) throws(LavaError) -> [InstalledRelease] {
        let lock = try InstallLock(root: root, logger: logger)
        let result = Result { () throws(LavaError) -> [InstalledRelease] in
            let releases = try plans.map { (plan) throws(LavaError) in
                if isCancelled() { throw LavaError(.stopped, "stopped before \(plan.package.name.fileName) was installed") }
                return try install(plan.package, as: plan.installer)
            }
            if let current = releases.first { try makeCurrent(current) }
            return releases
        }
        lock.release()
        return try result.get()
    }

    func install(_ selected: SelectedPackage, as kind: InstallerKind) throws(LavaError) -> InstalledRelease {
        do {
            switch kind {
            case .native: return try installNative(selected)
            case .bundle: return try installWithScript(selected)
            }
        } catch {
            throw error.prefixed("installing \(selected.name.fileName)")
        }
    }

    // MARK: native

    func installNative(_ selected: SelectedPackage) throws(LavaError) -> InstalledRelease {
        let stem = selected.name.stem
        let releasesPath = root.path("\(Installer.lavaHome)/releases")
        let final = Paths.join(releasesPath, stem)
        let release = InstalledRelease(package: selected.name, kind: .native, path: final, reused: true,
                                       workerExecutable: Paths.join(final, ".boot/bin/lava-worker"))
        let releases = try root.openDirectory("\(Installer.lavaHome)/releases", create: true)
        if let boot = try? releases.openDirectory("\(stem)/.boot"),
           isInstalled(selected, InstallMarker.read(boot, InstallMarker.fileName)) {
            return release
        }
        // Under the install lock every partial tree is one an install that died left behind.
        for name in try releases.names() where name.hasPrefix(".\(stem).partial-") {
            try releases.remove(name)
        }
        let partialName = ".\(stem).partial-\(getpid())"
        try releases.makeDirectory(partialName, mode: 0o755)
        do {
            let partial = try releases.openDirectory(partialName)
            let summary = try extract(selected, into: partial)
            try Installer.requireWorker(partial, stem: stem)
            let boot = try partial.openDirectory(".boot", create: true)
            try linkExecutables(partial, into: boot.openDirectory("bin", create: true))
            try InstallMarker(selected.object).write(to: boot, InstallMarker.fileName)
            try moveIntoPlace(releases, partialName, stem)
            logger.info("installed \(stem): \(summary.files) files, \(summary.directories) directories, \(summary.links) links, \(formatBytes(summary.bytes))")
        } catch {
            try? releases.remove(partialName)
            throw error
        }
        var installed = release
        installed.reused = false
        return installed
    }

    /// Does `recorded` name the selected object (key, ETag, size)? Says so when it does.
    private func isInstalled(_ selected: SelectedPackage, _ recorded: InstallMarker?) -> Bool {
        guard recorded == InstallMarker(selected.object) else { return false }
        logger.info("\(selected.name.stem) is already installed from the same object; reusing it")
        return true
    }

    /// A native release runs `bin/lava-worker`: without one it must not become `current`.
    static func requireWorker(_ release: borrowing Directory, stem: String) throws(LavaError) {
        guard hasWorker(release) else {
            throw LavaError(.install, "the bundle has no executable bin/lava-worker; refusing to install \(stem)")
        }
    }

    /// Is there an executable `bin/lava-worker` below `directory` (a release, or a bundle's BASE)?
    static func hasWorker(_ directory: borrowing Directory) -> Bool {
        guard let info = directory.status("bin/lava-worker", followingLinks: true) else { return false }
        return (info.st_mode & S_IFMT) == FileType.regular && info.st_mode & 0o111 != 0
    }

    private func extract(_ selected: SelectedPackage, into directory: borrowing Directory) throws(LavaError) -> ExtractionSummary {
        let stream = try area.open(selected.object.key)
        // The install peaks while extracting; the code that parsed, planned and listed is done.
        ResidentPages.releaseStartupPages()
        let progress = ProgressReporter(logger: logger, label: "extracting \(selected.name.fileName)", total: selected.object.size)
        let clock = CPUClocks()
        let reader = try ArchiveReader(stream: stream, displayName: area.displayName(selected.object.key)) { progress.add($0) }
        let summary = try SafeExtractor(reservedNames: Installer.reservedNames, isCancelled: isCancelled).extract(reader, into: directory)
        // Where the time went (bench/install-s3.sh reads this line).
        let (wall, thread, process) = clock.elapsed()
        let timing = "timing \(selected.name.fileName): \(formatSeconds(wall)) wall, \(formatBytes(progress.bytes)) read; "
            + "extraction waited \(formatSeconds(reader.waitingSeconds)) for decoded data and spent \(formatSeconds(wall - reader.waitingSeconds)) "
            + "on tar and files; CPU \(formatSeconds(thread)) extraction, \(formatSeconds(process - thread)) decoding and download"
        logger.debug("\(timing)")
        return summary
    }

    /// The new tree takes the final name; an older tree of the same name is swapped out
    /// atomically (a link to it never dangles) and then removed.
    private func moveIntoPlace(_ releases: borrowing Directory, _ partial: String, _ final: String) throws(LavaError) {
        if renameat(releases.descriptor, partial, releases.descriptor, final) == 0 { return }
        guard errno == EEXIST || errno == ENOTEMPTY else { throw .errno("rename", Paths.join(releases.displayPath, final)) }
        if lava_rename_exchange(releases.descriptor, partial, final) != 0 { throw .errno("rename", Paths.join(releases.displayPath, final)) }
        try releases.remove(partial)
    }

    /// `<release>/.boot/bin/NAME` for every executable of `<release>/bin/`: python scripts run
    /// through the release's `lava-run`, anything else is linked to itself.
    func linkExecutables(_ release: borrowing Directory, into links: borrowing Directory) throws(LavaError) {
        for (name, target) in try executableLinks(release, prefix: "../..") {
            try links.replaceSymlink(name, target: target)
        }
    }

    /// (name, link target) for each executable of `<release>/bin`, targets starting at `prefix`.
    func executableLinks(_ release: borrowing Directory, prefix: String) throws(LavaError) -> [(String, String)] {
        let bin = try release.openDirectory("bin")
        let hasRunner = release.status("lava-run", followingLinks: true) != nil
        var links = [(String, String)]()
        for name in try bin.names().sorted() {
            guard let info = bin.status(name, followingLinks: true), (info.st_mode & S_IFMT) == FileType.regular,
                  info.st_mode & 0o111 != 0 else { continue }
            if Installer.isPythonScript(bin, name) {
                if hasRunner {
                    links.append((name, "\(prefix)/lava-run"))
                    continue
                }
                logger.warning("\(name) is a python script but the release has no lava-run; linking it to itself")
            }
            links.append((name, "\(prefix)/bin/\(name)"))
        }
        return links
    }

    /// Does the first line (`#!...`) name python?
    static func isPythonScript(_ bin: borrowing Directory, _ name: String) -> Bool {
        let fd = openat(bin.descriptor, name, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 256)
        let n = head.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 2, head[0] == UInt8(ascii: "#"), head[1] == UInt8(ascii: "!") else { return false }
        let firstLine = head[0..<n].prefix { $0 != UInt8(ascii: "\n") }
        return String(decoding: firstLine, as: UTF8.self).contains("python")
    }

    /// Is this `/usr/local/bin` entry a link lava-boot made (one into `/opt/lava/`)?
    static func isOwnLink(_ target: String) -> Bool {
        target.hasPrefix("../../../opt/lava/") || target.hasPrefix("/opt/lava/")
    }

    /// Points `current` at the release and `/usr/local/bin` at `current`'s executables. Only
    /// lava-boot's own links there are replaced or removed; anything else is left with a warning.
    func makeCurrent(_ release: InstalledRelease) throws(LavaError) {
        guard release.kind == .native else { return }
        let stem = Paths.lastComponent(of: release.path)
        let home = try root.openDirectory(Installer.lavaHome, create: true)
        let links = try executableLinks(home.openDirectory("releases/\(stem)"), prefix: Installer.binLinkPrefix)
        try home.replaceSymlink("current", target: "releases/\(stem)")
        let bin = try root.openDirectory("/usr/local/bin", create: true)
        var wanted = Set<String>()
        for (name, target) in links {
            if let system = systemCommand(named: name) {
                logger.warning("not linking /usr/local/bin/\(name): it would shadow \(system) for root")
                continue
            }
            if bin.status(name) != nil, !(bin.readLink(name).map(Installer.isOwnLink) ?? false) {
                logger.warning("leaving /usr/local/bin/\(name) alone: it is not a link lava-boot made")
                continue
            }
            try bin.replaceSymlink(name, target: target)
            wanted.insert(name)
        }
        // Links of ours that `current` no longer provides would dangle or run an old release.
        for name in try bin.names() where !wanted.contains(name) {
            if let target = bin.readLink(name), target.hasPrefix(Installer.binLinkPrefix + "/") {
                unlinkat(bin.descriptor, name, 0)
            }
        }
        logger.info("current -> \(stem)")
    }

    /// The system command a `/usr/local/bin/NAME` would shadow, if any.
    private func systemCommand(named name: String) -> String? {
        for directory in Installer.systemCommandDirectories {
            if let handle = try? root.openDirectory(directory), handle.status(name) != nil {
                return Paths.join(directory, name)
            }
        }
        return nil
    }

    // MARK: bundle (install.sh)

    func installWithScript(_ selected: SelectedPackage) throws(LavaError) -> InstalledRelease {
        let imageBase = selected.name.version.isOlder(than: 8, 0) ? "/usr/local" : Installer.lavaHome
        let base = root.path(imageBase)
        var release = InstalledRelease(package: selected.name, kind: .bundle, path: base, reused: true,
                                       workerExecutable: Paths.join(base, "bin/lava-worker"))
        let baseDirectory = try root.openDirectory(imageBase, create: true)
        // What install.sh put in each BASE is recorded in `/opt/lava/.boot/`: `.boot` is the name
        // lava-boot keeps for its own records (no bundle may bring one, and install.sh lays out
        // the bundle's tree), and native releases live apart, in `releases/`.
        let markers = try root.openDirectory("\(Installer.lavaHome)/.boot/bundle-installs\(imageBase)", create: true)
        let markerName = "\(selected.name.stem).json"
        if Installer.hasWorker(baseDirectory), isInstalled(selected, InstallMarker.read(markers, markerName)) {
            return release
        }
        // install.sh overwrites whatever an earlier one put in BASE, for this release or another:
        // no marker there stays true, and none may survive a failed run.
        for name in try markers.names() { try markers.remove(name) }

        let scratch = try Files.makePrivateDirectory(prefix: "lava-boot")
        defer { try? Files.removeTree(scratch) }
        // install.sh takes the bundle as a file: a remote one is downloaded next to it, once.
        let bundlePath: String
        if let local = area.localPath(selected.object.key) {
            bundlePath = local
        } else {
            bundlePath = Paths.join(scratch, selected.name.fileName)
            try download(selected, to: bundlePath)
        }
        let script = Paths.join(scratch, "install.sh")
        try extractInstallScript(from: FileObjectStream(opening: bundlePath), named: area.displayName(selected.object.key),
                                 to: Directory.open(trusted: scratch), "install.sh")
        let request = SpawnRequest(executable: script, arguments: ["-c", "-d", base, bundlePath],
                                   environment: ["PATH=\(root.path("/usr/local/bin")):/usr/bin:/bin", "HOME=\(scratch)"],
                                   workingDirectory: scratch)
        logger.info("running install.sh -c -d \(base) \(bundlePath)")
        let scriptLogger = logger.with(component: "install.sh")
        let result = try Subprocess.run(request, timeout: .init(seconds: 1800)) { line in scriptLogger.info("\(line)") }
        guard result.status.isSuccess else {
            throw LavaError(.install, "install.sh failed (\(result.timedOut ? "timed out, " : "")\(result.status)); see its output above")
        }
        try InstallMarker(selected.object).write(to: markers, markerName)
        release.reused = false
        return release
    }

    /// `install.sh` at the top of the bundle or inside its single top directory, streamed to
    /// `name` in `directory` like any other entry.
    private func extractInstallScript(from bundle: any ByteStream, named displayName: String, to directory: borrowing Directory,
                                      _ name: String) throws(LavaError) {
        let reader = try ArchiveReader(stream: bundle, displayName: displayName) { _ in }
        while let entry = try reader.nextEntry() {
            guard let path = entry.entryPathname else { continue }
            let parts = path.split(separator: "/").filter { $0 != "." }
            guard parts.last == "install.sh", parts.count <= 2, !parts.contains(".."),
                  archive_entry_filetype(entry) == FileType.regular else { continue }
            let file = try directory.createFile(name, mode: 0o700)
            _ = try SafeExtractor.copyData(reader, to: file)
            return
        }
        throw LavaError(.install, "\(displayName) holds no install.sh; use --installer native for lava ≥ 8.0")
    }

    private func download(_ selected: SelectedPackage, to path: String) throws(LavaError) {
        let progress = ProgressReporter(logger: logger, label: "downloading \(selected.name.fileName)", total: selected.object.size)
        try area.open(selected.object.key).save(to: path, mode: 0o600) { progress.add($0) }
    }
}

/// What a release was installed from, so a reboot reuses it instead of downloading again.
struct InstallMarker: Equatable {
    var key: String
    var etag: String?
    var size: Int64

    var json: String {
        var members = [JSONMember("key", .string(key)), JSONMember("size", .number(String(size)))]
        if let etag { members.append(JSONMember("etag", .string(etag))) }
        return JSONValue.object(members).serialized(pretty: true) + "\n"
    }

    /// A native release's marker: `.boot/source.json` in the release.
    static let fileName = "source.json"

    /// The marker `name` in `directory`, or nil when it is missing or unreadable.
    static func read(_ directory: borrowing Directory, _ name: String) -> InstallMarker? {
        guard let bytes = directory.readFile(name, limit: 1 << 16), let json = try? JSONValue(parsing: bytes),
              let key = json["key"]?.stringValue, case .number(let sizeText)? = json["size"], let size = Int64(sizeText) else {
            return nil
        }
        return InstallMarker(key: key, etag: json["etag"]?.stringValue, size: size)
    }

    func write(to directory: borrowing Directory, _ name: String) throws(LavaError) {
        try directory.writeFileAtomically(name, Array(json.utf8))
    }
}

extension InstallMarker {
    init(_ object: ObjectInfo) {
        self.init(key: object.key, etag: object.etag, size: object.size)
    }
}
