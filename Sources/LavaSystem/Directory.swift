#if canImport(Glibc)
import Glibc
#endif

/// An open directory that every write below it goes through. It was reached one component at a
/// time with `O_NOFOLLOW`, so no symbolic link planted on the way (in `/tmp`, or by a bundle) can
/// redirect what is written through it. Owns its descriptor; closed when it goes away.
public struct Directory: ~Copyable {
    public let descriptor: Int32
    /// For messages only: never opened again by this name.
    public let displayPath: String

    public init(adopting descriptor: Int32, displayPath: String) {
        self.descriptor = descriptor
        self.displayPath = displayPath
    }

    deinit { close(descriptor) }

    /// Opens an absolute path the caller trusts as given (the `--root` an operator named, say).
    public static func open(trusted path: String) throws(LavaError) -> Directory {
        let fd = Files.retryingEINTR { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        if fd < 0 { throw .errno("open", path) }
        return Directory(adopting: fd, displayPath: path)
    }

    /// `relative` below this directory, walked one component at a time, never through a link;
    /// missing directories are created with `mode` when `create` is set.
    public func openDirectory(_ relative: String, create: Bool = false, mode: mode_t = 0o755) throws(LavaError) -> Directory {
        var current = Directory(adopting: dup(descriptor), displayPath: displayPath)
        for name in relative.split(separator: "/", omittingEmptySubsequences: true) where name != "." {
            current = try current.openChild(String(name), create: create, mode: mode)
        }
        return current
    }

    private func openChild(_ name: String, create: Bool, mode: mode_t) throws(LavaError) -> Directory {
        let path = Paths.join(displayPath, name)
        let flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
        var fd = Files.retryingEINTR { openat(descriptor, name, flags) }
        if fd < 0 && errno == ENOENT && create {
            if mkdirat(descriptor, name, mode) != 0 && errno != EEXIST { throw .errno("mkdir", path) }
            fd = Files.retryingEINTR { openat(descriptor, name, flags) }
        }
        if fd >= 0 { return Directory(adopting: fd, displayPath: path) }
        if errno == ELOOP || errno == ENOTDIR {
            throw LavaError(.system, "\(path) is a symbolic link or a file, not a directory")
        }
        throw .errno("open", path)
    }

    /// What stands at `name`, links not followed; nil when nothing does.
    public func status(_ name: String, followingLinks: Bool = false) -> stat? {
        var info = stat()
        return fstatat(descriptor, name, &info, followingLinks ? 0 : AT_SYMLINK_NOFOLLOW) == 0 ? info : nil
    }

    public func status() -> stat? {
        var info = stat()
        return fstat(descriptor, &info) == 0 ? info : nil
    }

    /// The target of the link `name`, or nil when `name` is not a link.
    public func readLink(_ name: String) -> String? { Directory.readLink(descriptor, name) }

    public static func readLink(_ descriptor: Int32, _ name: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in readlinkat(descriptor, name, raw.baseAddress!.assumingMemoryBound(to: CChar.self), raw.count) }
            guard n >= 0 else { return nil }
            if n < buffer.count { return String(decoding: buffer[0..<n], as: UTF8.self) }
            buffer = [UInt8](repeating: 0, count: buffer.count * 2)
        }
    }

    public func names() throws(LavaError) -> [String] {
        let fd = Files.retryingEINTR { openat(descriptor, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        if fd < 0 { throw .errno("open", displayPath) }
        guard let dir = fdopendir(fd) else {
            close(fd)
            throw .errno("fdopendir", displayPath)
        }
        defer { closedir(dir) }
        var names = [String]()
        while let entry = readdir(dir) {
            let name = Files.entryName(entry)
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The whole file `name` (links not followed at its last component), or nil when it is
    /// missing, unreadable or larger than `limit`.
    public func readFile(_ name: String, limit: Int) -> [UInt8]? {
        let fd = Files.retryingEINTR { openat(descriptor, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { buffer in Files.retryingEINTR { read(fd, buffer.baseAddress, buffer.count) } }
            if n < 0 || result.count + n > limit { return nil }
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
        }
    }

    public func makeDirectory(_ name: String, mode: mode_t) throws(LavaError) {
        if mkdirat(descriptor, name, mode) != 0 { throw .errno("mkdir", Paths.join(displayPath, name)) }
    }

    /// Points `name` at `target` atomically: a new link under a temporary name, renamed over
    /// whatever stood there (never a directory).
    public func replaceSymlink(_ name: String, target: String) throws(LavaError) {
        let temporary = ".\(name).link-\(getpid())"
        unlinkat(descriptor, temporary, 0)
        if symlinkat(target, descriptor, temporary) != 0 { throw .errno("symlink", Paths.join(displayPath, temporary)) }
        if renameat(descriptor, temporary, descriptor, name) != 0 {
            let error = LavaError.errno("rename", Paths.join(displayPath, name))
            unlinkat(descriptor, temporary, 0)
            throw error
        }
    }

    /// A new file, created exclusively (never through a link), open for writing.
    public func createFile(_ name: String, mode: mode_t) throws(LavaError) -> FileDescriptor {
        let fd = Files.retryingEINTR { openat(descriptor, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode) }
        if fd < 0 { throw .errno("create", Paths.join(displayPath, name)) }
        return FileDescriptor(adopting: fd, displayPath: Paths.join(displayPath, name))
    }

    /// Writes a whole file, replacing `name` atomically (temporary name, then rename).
    public func writeFileAtomically(_ name: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws(LavaError) {
        let temporary = ".\(name).tmp-\(getpid())"
        unlinkat(descriptor, temporary, 0)
        do throws(LavaError) {
            let file = try createFile(temporary, mode: mode)
            try file.writeAll(bytes)
        } catch {
            unlinkat(descriptor, temporary, 0)
            throw error
        }
        if renameat(descriptor, temporary, descriptor, name) != 0 {
            let error = LavaError.errno("rename", Paths.join(displayPath, name))
            unlinkat(descriptor, temporary, 0)
            throw error
        }
    }

    public func rename(_ name: String, to newName: String) throws(LavaError) {
        if renameat(descriptor, name, descriptor, newName) != 0 { throw .errno("rename", Paths.join(displayPath, newName)) }
    }

    /// Removes `name` whatever it is: a directory with everything in it (never following a link
    /// out), a file or a link itself. Nothing there is fine.
    public func remove(_ name: String) throws(LavaError) {
        guard let info = status(name) else { return }
        try Files.removeEntry(descriptor, name, isDirectory: (info.st_mode & S_IFMT) == S_IFDIR,
                              displayPath: Paths.join(displayPath, name))
    }
}

/// An open file this process owns; closed when it goes away.
public struct FileDescriptor: ~Copyable {
    public let descriptor: Int32
    public let displayPath: String

    public init(adopting descriptor: Int32, displayPath: String) {
        self.descriptor = descriptor
        self.displayPath = displayPath
    }

    deinit { close(descriptor) }

    public func writeAll(_ bytes: [UInt8], at offset: Int64? = nil) throws(LavaError) {
        let failure: LavaError? = bytes.withUnsafeBytes { buffer in
            do throws(LavaError) { try writeAll(buffer, at: offset) } catch { return error }
            return nil
        }
        if let failure { throw failure }
    }

    /// Writes all of `buffer` at the current offset, or at `offset` when one is given.
    public func writeAll(_ buffer: UnsafeRawBufferPointer, at offset: Int64? = nil) throws(LavaError) {
        try FileDescriptor.writeAll(descriptor, buffer, at: offset, displayPath: displayPath)
    }

    /// The one write-everything loop, for descriptors this type does not own (a log target).
    public static func writeAll(_ descriptor: Int32, _ buffer: UnsafeRawBufferPointer, at offset: Int64? = nil,
                                displayPath: String) throws(LavaError) {
        var written = 0
        while written < buffer.count {
            let start = buffer.baseAddress! + written
            let count = buffer.count - written
            let n = Files.retryingEINTR {
                if let offset { return pwrite(descriptor, start, count, off_t(offset) + off_t(written)) }
                return write(descriptor, start, count)
            }
            if n < 0 { throw .errno("write", displayPath) }
            written += n
        }
    }
}
