import CArchive
import LavaSource
import LavaSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// libarchive's AE_IF* and glibc's UTIME_OMIT are cast macros, which Swift does not import.
enum FileType {
    static let directory: mode_t = 0o040000
    static let regular: mode_t = 0o100000
    static let symlink: mode_t = 0o120000
    static let omitTime = (1 << 30) - 2
}

public struct ExtractionSummary: Sendable, Equatable {
    public var files = 0
    public var directories = 0
    public var links = 0
    public var bytes: Int64 = 0
}

/// Extracts a tar stream into one directory and nowhere else. Every entry is created relative to
/// directory fds opened with O_NOFOLLOW, so no symbolic link in the tree (or planted by the
/// archive) can redirect a write. Refused: absolute paths, `..`, links that leave the tree,
/// devices, FIFOs and sockets; a hard link to a symbolic link is judged as the symbolic link it
/// becomes. Owners are not restored, setuid/setgid/sticky and others' write are dropped, files
/// get at least go+r (go+x where the owner may execute), directories go+rx; mtimes are restored.
struct SafeExtractor {
    /// Top-level names the installer writes itself (`.boot`): a bundle may not bring them.
    var reservedNames: Set<String> = []
    var isCancelled: @Sendable () -> Bool = { false }

    private struct PendingDirectory {
        var components: [String]
        var mode: mode_t
        var mtime: timespec
    }

    func extract(_ reader: ArchiveReader, into destination: borrowing Directory) throws(LavaError) -> ExtractionSummary {
        let rootFD = destination.descriptor
        var cursor = DirectoryCursor(rootFD: rootFD, displayRoot: reader.displayName)
        defer { cursor.closeAll() }
        let umaskValue = SafeExtractor.processUmask()
        var summary = ExtractionSummary()
        var directories = [PendingDirectory]()
        var symlinks = [[String]]()

        while let entry = try reader.nextEntry() {
            if isCancelled() { throw LavaError(.stopped, "stopped while extracting \(reader.displayName)") }
            guard let rawPath = entry.entryPathname else {
                throw refuse(reader, "an entry whose name is not UTF-8")
            }
            let components = try SafeExtractor.components(of: rawPath, reader: reader)
            if components.isEmpty { continue }  // "./" itself
            if reservedNames.contains(components[0]) {
                throw refuse(reader, "\(rawPath): \(components[0]) is written by lava-boot, not by a bundle")
            }
            let name = components.last!
            let parentFD = try cursor.enter(Array(components.dropLast()), reader: reader)
            let mtime = timespec(tv_sec: archive_entry_mtime(entry), tv_nsec: Int(archive_entry_mtime_nsec(entry)))
            let mode = mode_t(archive_entry_perm(entry))

            if let hardlinkTarget = archive_entry_hardlink(entry).flatMap({ String(validatingCString: $0) }) {
                let target = try SafeExtractor.components(of: hardlinkTarget, reader: reader)
                guard !target.isEmpty else { throw refuse(reader, "hard link \(rawPath) to the top directory") }
                let targetParentFD = try cursor.open(Array(target.dropLast()), reader: reader)
                defer { close(targetParentFD) }
                // A hard link to a symbolic link is a symbolic link at the new place: judged as one.
                var info = stat()
                if fstatat(targetParentFD, target.last!, &info, AT_SYMLINK_NOFOLLOW) == 0, (info.st_mode & S_IFMT) == FileType.symlink {
                    let linkTarget = Directory.readLink(targetParentFD, target.last!) ?? ""
                    try checkSymlink(rawPath, linkTarget, at: components, reader: reader)
                    symlinks.append(components)
                }
                try SafeExtractor.replacing(parentFD, name) {
                    linkat(targetParentFD, target.last!, parentFD, name, 0)
                } failure: { LavaError.errno("link", rawPath).prefixed(reader.displayName) }
                summary.links += 1
                continue
            }

            switch archive_entry_filetype(entry) {
            case FileType.directory:
                if mkdirat(parentFD, name, 0o755) != 0 && errno != EEXIST {
                    throw LavaError.errno("mkdir", rawPath).prefixed(reader.displayName)
                }
                // An existing non-directory (or link) in its place is caught when something enters it.
                directories.append(PendingDirectory(components: components, mode: SafeExtractor.directoryMode(mode), mtime: mtime))
                summary.directories += 1

            case FileType.regular:
                let finalMode = SafeExtractor.fileMode(mode)
                let file = try SafeExtractor.createFile(parentFD, name, mode: finalMode, path: rawPath, reader: reader)
                let written = try SafeExtractor.copyData(reader, to: file)
                let size = archive_entry_size(entry)
                if written < size && ftruncate(file.descriptor, off_t(size)) != 0 {  // a sparse file's trailing hole
                    throw LavaError.errno("ftruncate", rawPath).prefixed(reader.displayName)
                }
                // The umask may have taken bits the contract wants (go+r); only then one more call.
                if finalMode & umaskValue != 0 { fchmod(file.descriptor, finalMode) }
                var times = [timespec(tv_sec: 0, tv_nsec: FileType.omitTime), mtime]
                futimens(file.descriptor, &times)
                summary.files += 1
                summary.bytes += size

            case FileType.symlink:
                let target = archive_entry_symlink(entry).flatMap { String(validatingCString: $0) } ?? ""
                try checkSymlink(rawPath, target, at: components, reader: reader)
                try SafeExtractor.replacing(parentFD, name) {
                    symlinkat(target, parentFD, name)
                } failure: { LavaError.errno("symlink", rawPath).prefixed(reader.displayName) }
                var times = [timespec(tv_sec: 0, tv_nsec: FileType.omitTime), mtime]
                utimensat(parentFD, name, &times, AT_SYMLINK_NOFOLLOW)
                symlinks.append(components)
                summary.links += 1

            default:
                throw refuse(reader, "\(rawPath) is a device, FIFO or socket")
            }
        }

        // Links that each stay inside can still combine to leave (`s -> .`, then `a -> s/..`):
        // resolve every one for real, through the links now on disk.
        for link in symlinks {
            guard SafeExtractor.resolvesInside(link, rootFD: rootFD) else {
                throw refuse(reader, "symbolic link \(link.joined(separator: "/")) resolves outside the release directory")
            }
        }

        // Directories last: creating their entries changed their mtimes. Setting a directory's
        // mode or times changes nothing in its parent, so they go in path order, where the
        // cursor reuses the open parents: one open per directory, not one per path component.
        cursor.closeAll()
        let createdMode = 0o755 & ~umaskValue
        for directory in directories.sorted(by: { $0.components.lexicographicallyPrecedes($1.components) }) {
            let fd = try cursor.enter(directory.components, create: false, reader: reader)
            if directory.mode != createdMode { fchmod(fd, directory.mode) }
            var times = [timespec(tv_sec: 0, tv_nsec: FileType.omitTime), directory.mtime]
            futimens(fd, &times)
        }
        cursor.closeAll()
        return summary
    }

    /// The one lexical rule for a symbolic link, however it was made: a relative, non-empty
    /// target that stays inside the tree when read from the link's own directory.
    private func checkSymlink(_ rawPath: String, _ target: String, at components: [String], reader: ArchiveReader) throws(LavaError) {
        guard !target.isEmpty else { throw refuse(reader, "symbolic link \(rawPath) without a valid target") }
        guard SafeExtractor.staysInside(target, from: Array(components.dropLast())) else {
            throw refuse(reader, "symbolic link \(rawPath) -> \(target) leaves the release directory")
        }
    }

    private func refuse(_ reader: ArchiveReader, _ what: String) -> LavaError {
        LavaError(.unsafeArchive, "refusing \(reader.displayName): \(what)")
    }

    /// The current entry's data into `file`; returns the end offset written.
    static func copyData(_ reader: ArchiveReader, to file: borrowing FileDescriptor) throws(LavaError) -> Int64 {
        var end: Int64 = 0
        try reader.readData { block, offset throws(LavaError) in
            do throws(LavaError) {
                try file.writeAll(block, at: offset)
            } catch {
                throw error.prefixed(reader.displayName)
            }
            end = max(end, offset + Int64(block.count))
        }
        return end
    }

    /// `a/./b/` → [a, b]; absolute paths and `..` are refused.
    static func components(of path: String, reader: ArchiveReader) throws(LavaError) -> [String] {
        if path.hasPrefix("/") {
            throw LavaError(.unsafeArchive, "refusing \(reader.displayName): absolute path \(path)")
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init).filter { $0 != "." }
        if parts.contains("..") {
            throw LavaError(.unsafeArchive, "refusing \(reader.displayName): path \(path) contains '..'")
        }
        return parts
    }

    /// Lexical check: does `target`, read from directory `base`, stay inside the tree?
    static func staysInside(_ target: String, from base: [String]) -> Bool {
        if target.hasPrefix("/") { return false }
        var depth = base.count
        for part in target.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                depth -= 1
                if depth < 0 { return false }
            } else {
                depth += 1
            }
        }
        return true
    }

    /// Resolves a link inside the tree the way the kernel would, following the links on disk,
    /// through directory descriptors (so at any path length). A component that does not exist
    /// (or is no directory) ends the real walk; the rest is judged lexically, since the
    /// installer may still create it.
    static func resolvesInside(_ link: [String], rootFD: Int32) -> Bool {
        var walked = [Int32]()          // real directories below the root, never a link
        defer { walked.forEach { close($0) } }
        var lexicalDepth = 0            // components past the end of the real walk
        var pending = Array(link.reversed())
        var hops = 0
        while let part = pending.popLast() {
            if part == "." || part.isEmpty { continue }
            if part == ".." {
                if lexicalDepth > 0 {
                    lexicalDepth -= 1
                } else {
                    guard let fd = walked.popLast() else { return false }
                    close(fd)
                }
                continue
            }
            if lexicalDepth > 0 {
                lexicalDepth += 1
                continue
            }
            let directory = walked.last ?? rootFD
            if let target = Directory.readLink(directory, part) {
                hops += 1
                if hops > 40 || target.hasPrefix("/") { return false }
                pending.append(contentsOf: target.split(separator: "/", omittingEmptySubsequences: true).map(String.init).reversed())
                continue
            }
            let fd = openat(directory, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd >= 0 {
                walked.append(fd)
            } else {
                lexicalDepth = 1
            }
        }
        return true
    }

    /// Owner's bits kept, setuid/setgid/sticky and others' write dropped, at least go+r
    /// (go+x where the owner may execute).
    static func fileMode(_ mode: mode_t) -> mode_t {
        var result = mode & 0o775 | 0o444
        if result & 0o100 != 0 { result |= 0o011 }
        return result
    }

    static func directoryMode(_ mode: mode_t) -> mode_t { mode & 0o775 | 0o755 }

    /// The process's umask, read without changing it (another thread may be creating a file).
    static func processUmask() -> mode_t {
        guard let text = try? Files.readText("/proc/self/status"),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Umask:") }),
              let value = mode_t(String(line.dropFirst(6).filter { $0 != " " && $0 != "\t" }), radix: 8) else {
            return 0o777  // unknown: always set the mode explicitly
        }
        return value
    }

    static func createFile(_ parentFD: Int32, _ name: String, mode: mode_t, path: String, reader: ArchiveReader) throws(LavaError) -> FileDescriptor {
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        var fd = openat(parentFD, name, flags, mode)
        if fd < 0 && errno == EEXIST {
            // A later entry of the same name replaces the earlier one, as tar does.
            if unlinkat(parentFD, name, 0) != 0 {
                throw LavaError(.unsafeArchive, "refusing \(reader.displayName): \(path) would replace a directory")
            }
            fd = openat(parentFD, name, flags, mode)
        }
        if fd < 0 { throw LavaError.errno("create", path).prefixed(reader.displayName) }
        return FileDescriptor(adopting: fd, displayPath: path)
    }

    /// Runs `create`; when the name exists, removes it (never a directory) and tries once more.
    static func replacing(_ parentFD: Int32, _ name: String, create: () -> Int32, failure: () -> LavaError) throws(LavaError) {
        if create() == 0 { return }
        if errno == EEXIST && unlinkat(parentFD, name, 0) == 0 && create() == 0 { return }
        throw failure()
    }
}

/// The chain of open directory fds from the tree's root to the directory entries go into now.
/// Tar lists a directory's entries together, so moving between neighbours costs few syscalls.
struct DirectoryCursor {
    let rootFD: Int32
    let displayRoot: String
    private var names = [String]()
    private var fds = [Int32]()

    init(rootFD: Int32, displayRoot: String) {
        self.rootFD = rootFD
        self.displayRoot = displayRoot
    }

    /// The fd of `components` (created as needed unless `create` is false), owned by the cursor.
    mutating func enter(_ components: [String], create: Bool = true, reader: ArchiveReader) throws(LavaError) -> Int32 {
        var common = 0
        while common < names.count, common < components.count, names[common] == components[common] { common += 1 }
        while names.count > common {
            close(fds.removeLast())
            names.removeLast()
        }
        for name in components[common...] {
            let parent = fds.last ?? rootFD
            let fd = try DirectoryCursor.openDirectory(parent, name, create: create, path: (names + [name]).joined(separator: "/"), reader: reader)
            names.append(name)
            fds.append(fd)
        }
        return fds.last ?? rootFD
    }

    /// A new fd for `components` (which must exist), owned by the caller.
    func open(_ components: [String], reader: ArchiveReader) throws(LavaError) -> Int32 {
        var fd = dup(rootFD)
        var walked = [String]()
        for name in components {
            walked.append(name)
            let next: Int32
            do {
                next = try DirectoryCursor.openDirectory(fd, name, create: false, path: walked.joined(separator: "/"), reader: reader)
            } catch {
                close(fd)
                throw error
            }
            close(fd)
            fd = next
        }
        return fd
    }

    mutating func closeAll() {
        for fd in fds { close(fd) }
        fds.removeAll()
        names.removeAll()
    }

    static func openDirectory(_ parent: Int32, _ name: String, create: Bool, path: String, reader: ArchiveReader) throws(LavaError) -> Int32 {
        let flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
        var fd = openat(parent, name, flags)
        if fd < 0 && errno == ENOENT && create {
            if mkdirat(parent, name, 0o755) != 0 && errno != EEXIST {
                throw LavaError.errno("mkdir", path).prefixed(reader.displayName)
            }
            fd = openat(parent, name, flags)
        }
        if fd >= 0 { return fd }
        if errno == ELOOP || errno == ENOTDIR {
            throw LavaError(.unsafeArchive, "refusing \(reader.displayName): \(path) is a symbolic link or a file, not a directory")
        }
        throw LavaError.errno("open", path).prefixed(reader.displayName)
    }
}
