import CArchive
import CShim
import LavaJSON
import LavaSelection
import LavaSource
import LavaSystem
import LavaLog
import Logging
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
    public let preferred: InstallerKind
    public let logger: Logger

    public init(root: HostRoot, area: any CodeArea, preferred: InstallerKind, logger: Logger) {
        self.root = root
        self.area = area
        self.preferred = preferred
        self.logger = logger
    }

    static let lavaHome = "/opt/lava"
    var releasesDirectory: String { root.path("\(Installer.lavaHome)/releases") }
    var currentLink: String { root.path("\(Installer.lavaHome)/current") }
    /// What `current` and `/usr/local/bin` links name: relative, so the tree stays valid as `/`.
    static let binLinkPrefix = "../../../opt/lava/current"
    static let markerPath = ".boot/source.json"

    /// `--installer bundle`, and any version before 8.0, go through the bundle's install.sh.
    public func kind(for package: PackageName) -> InstallerKind {
        package.version.isOlder(than: 8, 0) ? .bundle : preferred
    }

    public func install(_ selected: SelectedPackage) throws(LavaError) -> InstalledRelease {
        do {
            switch kind(for: selected.name) {
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
        let final = Paths.join(releasesDirectory, stem)
        let marker = InstallMarker(key: selected.object.key, etag: selected.object.etag, size: selected.object.size)
        let release = InstalledRelease(package: selected.name, kind: .native, path: final, reused: true,
                                       workerExecutable: Paths.join(final, ".boot/bin/lava-worker"))
        if InstallMarker.read(Paths.join(final, Installer.markerPath)) == marker {
            logger.info("\(stem) is already installed from the same object; reusing it")
            return release
        }
        try Files.makeDirectories(releasesDirectory)
        try removeStalePartials(stem)
        let partial = Paths.join(releasesDirectory, ".\(stem).partial-\(getpid())")
        if mkdir(partial, 0o755) != 0 { throw .errno("mkdir", partial) }
        do {
            let summary = try extract(selected, into: partial)
            try linkExecutables(release: partial)
            try Files.makeDirectories(Paths.join(partial, ".boot"))
            try Files.writeAtomically(Paths.join(partial, Installer.markerPath), Array(marker.json.utf8))
            try moveIntoPlace(partial, final)
            logger.info("installed \(stem): \(summary.files) files, \(summary.directories) directories, \(summary.links) links, \(formatBytes(summary.bytes))")
        } catch {
            try? Files.removeTree(partial)
            throw error
        }
        var installed = release
        installed.reused = false
        return installed
    }

    /// Partial trees left by an install that died (power loss, SIGKILL).
    private func removeStalePartials(_ stem: String) throws(LavaError) {
        for name in try Files.list(releasesDirectory) ?? [] where name.hasPrefix(".\(stem).partial-") {
            try Files.removeTree(Paths.join(releasesDirectory, name))
        }
    }

    private func extract(_ selected: SelectedPackage, into directory: String) throws(LavaError) -> ExtractionSummary {
        let stream = try area.open(selected.object.key)
        let progress = ProgressReporter(logger: logger, label: "extracting \(selected.name.fileName)", total: selected.object.size)
        let reader = try ArchiveReader(stream: stream, displayName: area.displayName(selected.object.key)) { progress.add($0) }
        let summary = try SafeExtractor(destination: directory, logger: logger).extract(reader)
        let seconds = progress.elapsed
        logger.debug("read \(formatBytes(progress.bytes)) in \(Int(seconds * 1000)) ms")
        return summary
    }

    /// The new tree takes the final name; an older tree of the same name is swapped out
    /// atomically (a link to it never dangles) and then removed.
    private func moveIntoPlace(_ partial: String, _ final: String) throws(LavaError) {
        if rename(partial, final) == 0 { return }
        guard errno == EEXIST || errno == ENOTEMPTY else { throw .errno("rename", final) }
        if lava_rename_exchange(partial, final) != 0 { throw .errno("rename", final) }
        try Files.removeTree(partial)
    }

    /// `<release>/.boot/bin/NAME` for every executable of `<release>/bin/`: python scripts run
    /// through the release's `lava-run`, anything else is linked to itself.
    func linkExecutables(release: String) throws(LavaError) {
        let linkDirectory = Paths.join(release, ".boot/bin")
        try Files.makeDirectories(linkDirectory)
        for (name, target) in try executableLinks(release: release, prefix: "../..") {
            if symlink(target, Paths.join(linkDirectory, name)) != 0 { throw .errno("symlink", Paths.join(linkDirectory, name)) }
        }
    }

    /// (name, link target) for each executable of `<release>/bin`, targets starting at `prefix`.
    func executableLinks(release: String, prefix: String) throws(LavaError) -> [(String, String)] {
        let bin = Paths.join(release, "bin")
        var links = [(String, String)]()
        for name in (try Files.list(bin) ?? []).sorted() {
            let path = Paths.join(bin, name)
            var status = stat()
            guard stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG, status.st_mode & 0o111 != 0 else { continue }
            if Installer.isPythonScript(path) {
                if !Files.exists(Paths.join(release, "lava-run")) {
                    logger.warning("\(name) is a python script but the release has no lava-run; linking it to itself")
                    links.append((name, "\(prefix)/bin/\(name)"))
                } else {
                    links.append((name, "\(prefix)/lava-run"))
                }
            } else {
                links.append((name, "\(prefix)/bin/\(name)"))
            }
        }
        return links
    }

    /// Does the first line (`#!...`) name python?
    static func isPythonScript(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 256)
        let n = head.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 2, head[0] == UInt8(ascii: "#"), head[1] == UInt8(ascii: "!") else { return false }
        let firstLine = head[0..<n].prefix { $0 != UInt8(ascii: "\n") }
        return String(decoding: firstLine, as: UTF8.self).contains("python")
    }

    /// Points `current` at the release and `/usr/local/bin` at `current`'s executables.
    public func makeCurrent(_ release: InstalledRelease) throws(LavaError) {
        guard release.kind == .native else { return }
        try Files.makeDirectories(root.path(Installer.lavaHome))
        try Files.replaceSymlink(at: currentLink, target: "releases/\(Paths.lastComponent(of: release.path))")
        let bin = root.path("/usr/local/bin")
        try Files.makeDirectories(bin)
        var wanted = Set<String>()
        for (name, target) in try executableLinks(release: release.path, prefix: Installer.binLinkPrefix) {
            let path = Paths.join(bin, name)
            if Files.isDirectory(path) && Files.readLink(path) == nil {
                throw LavaError(.install, "cannot link \(path): a directory is in the way")
            }
            try Files.replaceSymlink(at: path, target: target)
            wanted.insert(name)
        }
        // Links of ours that the new release no longer has would dangle: remove them.
        for name in try Files.list(bin) ?? [] where !wanted.contains(name) {
            let path = Paths.join(bin, name)
            if let target = Files.readLink(path), target.hasPrefix(Installer.binLinkPrefix + "/"), access(path, F_OK) != 0 {
                unlink(path)
            }
        }
        logger.info("current -> \(Paths.lastComponent(of: release.path))")
    }

    // MARK: bundle (install.sh)

    func installWithScript(_ selected: SelectedPackage) throws(LavaError) -> InstalledRelease {
        let base = root.path(selected.name.version.isOlder(than: 8, 0) ? "/usr/local" : Installer.lavaHome)
        let scratch = try Files.makePrivateDirectory(prefix: "lava-boot")
        defer { try? Files.removeTree(scratch) }
        // install.sh takes the bundle as a file: a remote one is downloaded next to it first.
        let bundlePath: String
        if let local = area.localPath(selected.object.key) {
            bundlePath = local
        } else {
            bundlePath = Paths.join(scratch, selected.name.fileName)
            try download(selected, to: bundlePath)
        }
        let script = Paths.join(scratch, "install.sh")
        try extractInstallScript(selected, to: script)
        try Files.makeDirectories(base)
        let request = SpawnRequest(executable: script, arguments: ["-c", "-d", base, bundlePath],
                                   environment: ["PATH=\(root.path("/usr/local/bin")):/usr/bin:/bin", "HOME=\(scratch)"],
                                   workingDirectory: scratch)
        logger.info("running install.sh -c -d \(base) \(bundlePath)")
        let scriptLogger = logger.with(component: "install.sh")
        let result = try Subprocess.run(request, timeout: .init(seconds: 1800)) { line in scriptLogger.info("\(line)") }
        guard result.status.isSuccess else {
            throw LavaError(.install, "install.sh failed (\(result.timedOut ? "timed out, " : "")\(result.status)); see its output above")
        }
        let worker = root.path(selected.name.version.isOlder(than: 8, 0) ? "/usr/local/bin/lava-worker" : "\(Installer.lavaHome)/bin/lava-worker")
        return InstalledRelease(package: selected.name, kind: .bundle, path: base, reused: false, workerExecutable: worker)
    }

    /// `install.sh` at the top of the bundle or inside its single top directory.
    private func extractInstallScript(_ selected: SelectedPackage, to path: String) throws(LavaError) {
        let stream = try area.open(selected.object.key)
        let reader = try ArchiveReader(stream: stream, displayName: area.displayName(selected.object.key)) { _ in }
        while let entry = try reader.nextEntry() {
            guard let name = entry.entryPathname else { continue }
            let parts = name.split(separator: "/").filter { $0 != "." }
            guard parts.last == "install.sh", parts.count <= 2, !parts.contains(".."),
                  archive_entry_filetype(entry) == FileType.regular else { continue }
            var bytes = [UInt8]()
            try reader.readData { block, _ in
                bytes.append(contentsOf: block)
            }
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o700)
            if fd < 0 { throw .errno("create", path) }
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            if written != bytes.count { throw .errno("write", path) }
            return
        }
        throw LavaError(.install, "\(area.displayName(selected.object.key)) holds no install.sh; use --installer native for lava ≥ 8.0")
    }

    private func download(_ selected: SelectedPackage, to path: String) throws(LavaError) {
        let progress = ProgressReporter(logger: logger, label: "downloading \(selected.name.fileName)", total: selected.object.size)
        try area.open(selected.object.key).save(to: path, mode: 0o600) { progress.add($0) }
    }
}

/// What a native release was installed from, so a reboot reuses it instead of downloading again.
struct InstallMarker: Equatable {
    var key: String
    var etag: String?
    var size: Int64

    var json: String {
        var members = [JSONMember("key", .string(key)), JSONMember("size", .number(String(size)))]
        if let etag { members.append(JSONMember("etag", .string(etag))) }
        return JSONValue.object(members).serialized(pretty: true) + "\n"
    }

    static func read(_ path: String) -> InstallMarker? {
        guard let bytes = try? Files.read(path), let json = try? JSONValue(parsing: bytes),
              let key = json["key"]?.stringValue, case .number(let sizeText)? = json["size"], let size = Int64(sizeText) else {
            return nil
        }
        return InstallMarker(key: key, etag: json["etag"]?.stringValue, size: size)
    }
}
