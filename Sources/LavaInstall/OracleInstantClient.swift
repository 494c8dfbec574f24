import CShim
import LavaSource
import LavaSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// `ami oracle` (SPEC §10): Oracle Instant Client from the code area's `_ami_/oracle/` into the
/// image, extracted under the bundles' rules, registered with the dynamic linker, `sqlplus`
/// linked onto the PATH.
public struct OracleInstantClient {
    public var root: HostRoot
    public var area: any CodeArea
    /// Image path of the directory that receives `instantclient_NN_NN` (`/opt/oracle`).
    public var destination: String
    /// The package type of the base zip (`basiclite`, `basic`).
    public var type: String
    /// Oracle's spelling of this machine's architecture: `x64` or `arm64`.
    public var arch: String
    public var logger: Logger

    public static let defaultDestination = "/opt/oracle"
    public static let defaultType = "basiclite"
    static let configDirectory = "/etc/ld.so.conf.d"
    static let configName = "oracle-instantclient.conf"

    public struct Outcome: Sendable, Equatable {
        /// `19.25`
        public var version: String
        /// Image path of the client directory.
        public var directory: String
        public var changed: Bool
    }

    public init(root: HostRoot, area: any CodeArea, destination: String, type: String, arch: String, logger: Logger) {
        self.root = root
        self.area = area
        self.destination = destination
        self.type = type
        self.arch = arch
        self.logger = logger
    }

    public func install() throws(LavaError) -> Outcome {
        // Both zips are found before anything is written: a missing one changes nothing.
        let zips = [try find(type), try find("sqlplus")]
        let destinationDirectory = try root.openDirectory(destination, create: true)
        let staging = ".instantclient.partial-\(getpid())"
        try destinationDirectory.remove(staging)
        try destinationDirectory.makeDirectory(staging, mode: 0o755)
        defer { try? destinationDirectory.remove(staging) }
        let stagingDirectory = try destinationDirectory.openDirectory(staging)

        var clientName: String?
        var firstZip = ""
        for zip in zips {
            try extract(zip, into: stagingDirectory)
            let names = try stagingDirectory.names().filter(OracleInstantClient.isClientDirectoryName).sorted()
            guard let name = names.first(where: { $0 != clientName }) ?? clientName else {
                throw LavaError(.install, "\(area.displayName(zip.key)) holds no instantclient_NN_NN directory")
            }
            if let clientName, names.count > 1 {
                throw LavaError(.install, "the zips are of two versions: \(area.displayName(firstZip)) unpacks to \(clientName), "
                    + "\(area.displayName(zip.key)) to \(name); upload zips of one version")
            }
            if names.count > 1 {
                throw LavaError(.install, "\(area.displayName(zip.key)) holds more than one client directory: \(names.joined(separator: ", "))")
            }
            clientName = name
            firstZip = zip.key
        }
        let name = clientName!
        let version = OracleInstantClient.version(ofDirectory: name)
        let imageDirectory = Paths.join(destination, name)
        if destinationDirectory.status(name) != nil {
            logger.info("Oracle Instant Client \(version) is already in \(root.path(imageDirectory)); nothing changed")
            return Outcome(version: version, directory: imageDirectory, changed: false)
        }
        guard let sqlplus = stagingDirectory.status("\(name)/sqlplus"), (sqlplus.st_mode & S_IFMT) == FileType.regular,
              sqlplus.st_mode & 0o100 != 0 else {
            throw LavaError(.install, "\(area.displayName(zips[1].key)) has no executable \(name)/sqlplus")
        }
        if renameat(stagingDirectory.descriptor, name, destinationDirectory.descriptor, name) != 0 {
            throw .errno("rename", root.path(imageDirectory))
        }
        try root.openDirectory(OracleInstantClient.configDirectory, create: true)
            .writeFileAtomically(OracleInstantClient.configName, Array("\(imageDirectory)\n".utf8))
        try runLdconfig()
        try linkSqlplus(to: Paths.join(imageDirectory, "sqlplus"))
        logger.info("installed Oracle Instant Client \(version) (\(type), sqlplus) in \(root.path(imageDirectory))")
        return Outcome(version: version, directory: imageDirectory, changed: true)
    }

    /// `instantclient_19_25` (digits, one underscore between the two numbers).
    static func isClientDirectoryName(_ name: String) -> Bool {
        guard name.hasPrefix("instantclient_") else { return false }
        let parts = name.dropFirst("instantclient_".count).split(separator: "_", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
    }

    /// `instantclient_19_25` → `19.25`
    static func version(ofDirectory name: String) -> String {
        String(name.dropFirst("instantclient_".count).map { $0 == "_" ? "." : $0 })
    }

    /// The zip of `package` for this arch: `linux-<A>`, else Oracle's own `linuxx64` spelling.
    private func find(_ package: String) throws(LavaError) -> ObjectInfo {
        let keys = ["-linux-\(arch)", "-linux\(arch)"].map { "_ami_/oracle/instantclient-\(package)\($0).zip" }
        for key in keys {
            if let object = try area.head(key) { return object }
        }
        throw LavaError(.install, "missing \(area.displayName(keys[0])) (looked for \(Paths.lastComponent(of: keys[1])) too); "
            + "upload Oracle's \(package) zip for \(arch) there")
    }

    /// A zip is read from its end (the central directory), so a remote one is first copied to
    /// an unnamed temporary file.
    private func extract(_ zip: ObjectInfo, into directory: borrowing Directory) throws(LavaError) {
        let name = area.displayName(zip.key)
        let file: FileDescriptor
        if let local = area.localPath(zip.key) {
            let fd = open(local, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            if fd < 0 { throw .errno("open", local) }
            file = FileDescriptor(adopting: fd, displayPath: local)
        } else {
            let directory = ProcessEnvironment.current()["TMPDIR"] ?? "/tmp"
            let fd = lava_open_unnamed_file(directory)
            if fd < 0 { throw .errno("create a temporary file in", directory) }
            file = FileDescriptor(adopting: fd, displayPath: name)
            let progress = ProgressReporter(logger: logger, label: "downloading \(zip.name)", total: zip.size)
            try area.open(zip.key).copy(to: file) { progress.add($0) }
            lseek(file.descriptor, 0, SEEK_SET)
        }
        let reader = try ArchiveReader(zipFile: file.descriptor, displayName: name)
        let summary = try SafeExtractor().extract(reader, into: directory)
        logger.info("extracted \(zip.name): \(summary.files) files, \(summary.links) links, \(formatBytes(summary.bytes))")
    }

    /// `ldconfig`, or `ldconfig -r ROOT` for a tree that becomes an image's `/`.
    private func runLdconfig() throws(LavaError) {
        guard let tool = ProcessEnvironment.findExecutable("ldconfig", path: "/usr/sbin:/sbin") else {
            throw LavaError(.system, "ldconfig not found in /usr/sbin or /sbin")
        }
        let arguments = root.prefix.isEmpty ? [] : ["-r", root.prefix]
        let ldconfigLogger = logger.with(component: "ldconfig")
        let result = try Subprocess.run(SpawnRequest(executable: tool, arguments: arguments, environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]),
                                        timeout: .init(seconds: 300)) { line in ldconfigLogger.warning("\(line)") }
        guard result.status.isSuccess else {
            throw LavaError(.system, "ldconfig \(arguments.joined(separator: " ")) failed (\(result.status)); see its output above")
        }
    }

    /// `/usr/bin/sqlplus` → the client's; a file of someone else's there is not replaced.
    private func linkSqlplus(to target: String) throws(LavaError) {
        let bin = try root.openDirectory("/usr/bin", create: true)
        if let existing = bin.status("sqlplus"), (existing.st_mode & S_IFMT) != FileType.symlink {
            throw LavaError(.install, "\(root.path("/usr/bin/sqlplus")) exists and is not a link; remove it and run again")
        }
        try bin.replaceSymlink("sqlplus", target: target)
    }
}
