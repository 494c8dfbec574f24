#if canImport(Glibc)
import Glibc
#endif

/// Plain POSIX file operations with errors that name the call and the path.
public enum Files {
    /// The one place EINTR is retried: `body` again until it succeeds or fails otherwise.
    @inline(__always)
    public static func retryingEINTR<T: BinaryInteger>(_ body: () -> T) -> T {
        while true {
            let result = body()
            if result >= 0 || errno != EINTR { return result }
        }
    }

    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// The whole file, or nil when it does not exist.
    public static func read(_ path: String) throws(LavaError) -> [UInt8]? {
        let fd = retryingEINTR { open(path, O_RDONLY | O_CLOEXEC) }
        if fd < 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw .errno("open", path)
        }
        defer { close(fd) }
        var result = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { buffer in
                retryingEINTR { Glibc.read(fd, buffer.baseAddress, buffer.count) }
            }
            if n < 0 { throw .errno("read", path) }
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
        }
    }

    public static func readText(_ path: String) throws(LavaError) -> String? {
        try read(path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Writes a whole file, replacing it atomically (temporary name, then rename).
    public static func writeAtomically(_ path: String, _ bytes: some Collection<UInt8>, mode: mode_t = 0o644) throws(LavaError) {
        try Directory.open(trusted: Paths.parent(of: path)).writeFileAtomically(Paths.lastComponent(of: path), Array(bytes), mode: mode)
    }

    /// The target of a symbolic link, or nil when `path` is not one.
    public static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `mkdir -p`; existing directories are fine.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(LavaError) {
        if isDirectory(path) { return }
        let parent = Paths.parent(of: path)
        if parent != path { try makeDirectories(parent, mode: mode) }
        if mkdir(path, mode) != 0 && errno != EEXIST { throw .errno("mkdir", path) }
    }

    /// `rm -rf` that never follows a symbolic link out of the tree. Missing paths are fine.
    public static func removeTree(_ path: String) throws(LavaError) {
        var info = stat()
        if lstat(path, &info) != 0 {
            if errno == ENOENT { return }
            throw .errno("lstat", path)
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            let parentFD = open(Paths.parent(of: path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if parentFD < 0 { throw .errno("open", Paths.parent(of: path)) }
            defer { close(parentFD) }
            try removeEntry(parentFD, Paths.lastComponent(of: path), isDirectory: true, displayPath: path)
        } else if unlink(path) != 0 && errno != ENOENT {
            throw .errno("unlink", path)
        }
    }

    static func removeEntry(_ parentFD: Int32, _ name: String, isDirectory: Bool, displayPath: String) throws(LavaError) {
        if isDirectory {
            let fd = openat(parentFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd < 0 { throw .errno("open", displayPath) }
            guard let dir = fdopendir(fd) else {
                close(fd)
                throw .errno("fdopendir", displayPath)
            }
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                let child = entryName(entry)
                if child == "." || child == ".." { continue }
                var info = stat()
                if fstatat(fd, child, &info, AT_SYMLINK_NOFOLLOW) != 0 { continue }
                try removeEntry(fd, child, isDirectory: (info.st_mode & S_IFMT) == S_IFDIR,
                                displayPath: "\(displayPath)/\(child)")
            }
        }
        if unlinkat(parentFD, name, isDirectory ? AT_REMOVEDIR : 0) != 0 && errno != ENOENT {
            throw .errno(isDirectory ? "rmdir" : "unlink", displayPath)
        }
    }

    /// A new directory only this user can enter (mode 0700), `/tmp/<prefix>.XXXXXX`.
    public static func makePrivateDirectory(prefix: String) throws(LavaError) -> String {
        var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
        guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw .errno("mkdtemp", "/tmp")
        }
        return String(cString: created)
    }

    static func entryName(_ entry: UnsafeMutablePointer<dirent>) -> String {
        withUnsafeBytes(of: entry.pointee.d_name) { raw in String(cString: raw.bindMemory(to: CChar.self).baseAddress!) }
    }

    /// Names in a directory (not `.`/`..`), or nil when it does not exist.
    public static func list(_ path: String) throws(LavaError) -> [String]? {
        guard let dir = opendir(path) else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw .errno("opendir", path)
        }
        defer { closedir(dir) }
        var names = [String]()
        while let entry = readdir(dir) {
            let name = entryName(entry)
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

/// Lexical path helpers for absolute, slash-separated paths.
public enum Paths {
    public static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    public static func lastComponent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    public static func join(_ base: String, _ relative: String) -> String {
        if relative.isEmpty { return base }
        if base.hasSuffix("/") { return base + relative }
        return "\(base)/\(relative)"
    }
}

/// Host paths under `--root`: every path lava-boot touches on the host goes through here, so
/// tests and image builds can work on a directory instead of the live system.
public struct HostRoot: Sendable, Equatable {
    /// The prefix, without a trailing slash; empty for the live system.
    public let prefix: String

    public init(_ root: String?) {
        var prefix = root ?? ""
        while prefix.hasSuffix("/") { prefix.removeLast() }
        self.prefix = prefix
    }

    /// `/opt/lava` → `<root>/opt/lava`.
    public func path(_ imagePath: String) -> String { prefix + imagePath }

    /// The directory at `imagePath` under the root. The root itself is the operator's choice and
    /// opened as given; below it no component may be a link.
    public func openDirectory(_ imagePath: String, create: Bool = false, mode: mode_t = 0o755) throws(LavaError) -> Directory {
        try Directory.open(trusted: prefix.isEmpty ? "/" : prefix).openDirectory(imagePath, create: create, mode: mode)
    }
}
