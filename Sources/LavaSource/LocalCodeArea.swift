import LavaSystem
#if canImport(Glibc)
import Glibc
#endif

/// A code area on local disk (`file:///abs/path`): the same layout as in S3.
public struct LocalCodeArea: CodeArea {
    public let root: String
    public var location: SourceLocation { .file(path: root) }

    public init(root: String) { self.root = root }

    public func list(_ directory: String) throws(LavaError) -> [ObjectInfo] {
        let path = Paths.join(root, directory)
        guard let names = try Files.list(path) else { return [] }
        var objects = [ObjectInfo]()
        for name in names {
            if let object = try info(Paths.join(directory, name)) { objects.append(object) }
        }
        return objects.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
    }

    public func listDirectories(_ directory: String) throws(LavaError) -> [String] {
        let path = Paths.join(root, directory)
        return (try Files.list(path) ?? []).filter { Files.isDirectory(Paths.join(path, $0)) }
            .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    public func head(_ key: String) throws(LavaError) -> ObjectInfo? { try info(key) }

    /// Regular files only: directories are not objects, and a link is followed as S3 cannot have one.
    private func info(_ key: String) throws(LavaError) -> ObjectInfo? {
        let path = Paths.join(root, key)
        var status = stat()
        if stat(path, &status) != 0 {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw .errno("stat", path)
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else { return nil }
        let modified = Double(status.st_mtim.tv_sec) + Double(status.st_mtim.tv_nsec) / 1e9
        return ObjectInfo(key: key, size: Int64(status.st_size), modified: modified,
                          etag: "\(status.st_size)-\(status.st_mtim.tv_sec).\(status.st_mtim.tv_nsec)")
    }

    public func open(_ key: String) throws(LavaError) -> any ByteStream {
        try FileObjectStream(opening: Paths.join(root, key))
    }

    public func localPath(_ key: String) -> String? { Paths.join(root, key) }
}

/// A file on local disk, read front to back: a local code area's object, or a downloaded one.
public final class FileObjectStream: ByteStream {
    private let fd: Int32
    private let path: String

    public init(opening path: String) throws(LavaError) {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .errno("open", path) }
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(LavaError) -> Int {
        let n = Files.retryingEINTR { Glibc.read(fd, buffer.baseAddress, buffer.count) }
        if n < 0 { throw .errno("read", path) }
        return n
    }
}
