import LavaSystem
#if canImport(Glibc)
import Glibc
#endif

/// Where the code area lives: `s3://BUCKET/PREFIX` or `file:///abs/path`.
public enum SourceLocation: Sendable, Equatable, CustomStringConvertible {
    case file(path: String)
    case s3(bucket: String, prefix: String)

    public init(parsing text: String) throws(LavaError) {
        let hint = "expected s3://BUCKET/PREFIX or file:///ABSOLUTE/PATH"
        if text.hasPrefix("file://") {
            var path = String(text.dropFirst("file://".count))
            guard path.hasPrefix("/") else {
                throw LavaError(.invalidSource, "\(text): not a code area: a file:// source needs an absolute path (file:///abs/path)")
            }
            while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
            guard !path.split(separator: "/").contains("..") else {
                throw LavaError(.invalidSource, "\(text): not a code area: '..' is not allowed in the path")
            }
            self = .file(path: path)
        } else if text.hasPrefix("s3://") {
            let rest = text.dropFirst("s3://".count)
            let bucket = String(rest.prefix { $0 != "/" })
            guard SourceLocation.isValidBucketName(bucket) else {
                throw LavaError(.invalidSource, "\(text): not a code area: \(bucket.isEmpty ? "no bucket name" : "invalid bucket name \"\(bucket)\""); \(hint)")
            }
            var prefix = String(rest.dropFirst(bucket.count))
            while prefix.hasPrefix("/") { prefix.removeFirst() }
            while prefix.hasSuffix("/") { prefix.removeLast() }
            self = .s3(bucket: bucket, prefix: prefix)
        } else {
            throw LavaError(.invalidSource, "\(text): not a code area; \(hint)")
        }
    }

    /// S3's bucket naming rules: 3-63 of lower-case letters, digits, '.', '-', alphanumeric ends,
    /// no "..", and not an IP address. The name becomes part of a host name, so nothing else.
    static func isValidBucketName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (3...63).contains(bytes.count), !name.contains("..") else { return false }
        let isDigit = { (b: UInt8) in b >= 0x30 && b <= 0x39 }
        let isAlphanumeric = { (b: UInt8) in isDigit(b) || (b >= 0x61 && b <= 0x7A) }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        if labels.count == 4 && labels.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy(isDigit) }) { return false }
        return isAlphanumeric(bytes.first!) && isAlphanumeric(bytes.last!)
            && bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    public var description: String {
        switch self {
        case .file(let path): return "file://\(path)"
        case .s3(let bucket, let prefix): return prefix.isEmpty ? "s3://\(bucket)" : "s3://\(bucket)/\(prefix)"
        }
    }
}

/// One object of the code area. Keys are relative to the area (`_dist_/pkg/amzn2023/lava-8.2.0.tar.bz2`).
public struct ObjectInfo: Sendable, Equatable {
    public var key: String
    public var size: Int64
    /// Seconds since the epoch.
    public var modified: Double
    /// S3's ETag; for local files, size and modification time stand in for it.
    public var etag: String?

    public init(key: String, size: Int64, modified: Double, etag: String?) {
        self.key = key
        self.size = size
        self.modified = modified
        self.etag = etag
    }

    public var name: String { Paths.lastComponent(of: key) }
}

/// A code area's objects, whatever the backend.
public protocol CodeArea: Sendable {
    var location: SourceLocation { get }
    /// Objects directly under `directory` (no deeper keys), in byte order of their keys.
    func list(_ directory: String) throws(LavaError) -> [ObjectInfo]
    /// The object, or nil when it does not exist.
    /// Names of the "directories" directly under `directory` (S3: common prefixes).
    func listDirectories(_ directory: String) throws(LavaError) -> [String]
    func head(_ key: String) throws(LavaError) -> ObjectInfo?
    func open(_ key: String) throws(LavaError) -> any ByteStream
    /// A path on local disk holding the object, when the area is local.
    func localPath(_ key: String) -> String?
}

extension CodeArea {
    /// How an object is named in messages: `s3://bucket/prefix/_boot_/10-x.sh`.
    public func displayName(_ key: String) -> String { Paths.join(location.description, key) }
}

public enum CodeAreas {
    /// A local code area; S3 ones come from the AWS layer.
    public static func open(_ location: SourceLocation) throws(LavaError) -> any CodeArea {
        guard case .file(let path) = location else {
            preconditionFailure("\(location) is not a local code area")
        }
        guard Files.isDirectory(path) else {
            throw LavaError(.invalidSource, "\(location): no such directory")
        }
        return LocalCodeArea(root: path)
    }
}
