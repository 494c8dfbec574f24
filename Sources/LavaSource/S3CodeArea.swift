import LavaAWS
import LavaSystem
import Logging

/// A code area in S3 (`s3://BUCKET/PREFIX`).
public struct S3CodeArea: CodeArea {
    public let s3: S3Client
    public let bucket: String
    public let prefix: String
    let logger: Logger

    public init(s3: S3Client, bucket: String, prefix: String, logger: Logger) {
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.logger = logger
    }

    public var location: SourceLocation { .s3(bucket: bucket, prefix: prefix) }

    func fullKey(_ relative: String) -> String { prefix.isEmpty ? relative : "\(prefix)/\(relative)" }

    func relativeKey(_ full: String) -> String {
        prefix.isEmpty ? full : String(full.dropFirst(prefix.count + 1))
    }

    public func list(_ directory: String) throws(LavaError) -> [ObjectInfo] {
        let listing = try s3.list(bucket: bucket, prefix: fullKey(directory) + "/", delimiter: "/")
        return listing.objects.filter { !$0.key.hasSuffix("/") }.map { object in
            ObjectInfo(key: relativeKey(object.key), size: object.size, modified: object.modified, etag: object.etag)
        }.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
    }

    public func listDirectories(_ directory: String) throws(LavaError) -> [String] {
        let listing = try s3.list(bucket: bucket, prefix: fullKey(directory) + "/", delimiter: "/")
        return listing.prefixes.map { Paths.lastComponent(of: String($0.dropLast())) }
    }

    public func head(_ key: String) throws(LavaError) -> ObjectInfo? {
        try s3.head(bucket: bucket, key: fullKey(key)).map { object in
            ObjectInfo(key: key, size: object.size, modified: object.modified, etag: object.etag)
        }
    }

    /// A large object as parallel ranged GETs (after a HEAD for its ETag and checksum), anything
    /// smaller as one GET.
    public func open(_ key: String) throws(LavaError) -> any ByteStream {
        let fullKey = fullKey(key)
        if let object = try s3.head(bucket: bucket, key: fullKey), object.etag != nil,
           object.size >= S3CodeArea.parallelThreshold {
            return try S3ParallelObjectStream(s3: s3, bucket: bucket, object: object, logger: logger)
        }
        return try S3ObjectStream(s3: s3, bucket: bucket, key: fullKey, logger: logger)
    }

    /// Two parts or more: one connection's rate can hold up the decoders.
    static let parallelThreshold = 2 * S3ParallelObjectStream.defaultPartSize

    public func localPath(_ key: String) -> String? { nil }
}
