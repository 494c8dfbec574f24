import LavaCrypto
import LavaHTTP
import LavaSystem
import Logging

/// A GetObject body that survives broken connections and proves it arrived whole: a transfer
/// cut short resumes with `Range` + `If-Match: <etag>` (an object changed meanwhile is an
/// error, never a mix), the total must equal the first response's Content-Length, and with S3
/// checksums present the SHA-256 must match `x-amz-checksum-sha256`. Given a `part`, the same
/// for that byte range of the object with the given ETag (the whole object's checksum is then
/// the caller's to check).
public final class S3ObjectStream: ByteStream {
    private let s3: S3Client
    private let bucket: String
    private let key: String
    private let logger: Logger
    private let part: Range<Int64>?
    private var current: HTTPResponseStream?
    private var received: Int64 = 0
    private var total: Int64?
    private var etag: String?
    private var expectedChecksum: String?
    private var hasher: SHA256?
    private var resumes = 0
    private var finished = false

    public init(s3: S3Client, bucket: String, key: String, logger: Logger) throws(LavaError) {
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.logger = logger
        part = nil
        hasher = SHA256()
        try open()
    }

    /// Bytes `part` of the object whose ETag is `etag`.
    public init(s3: S3Client, bucket: String, key: String, part: Range<Int64>, etag: String, logger: Logger) throws(LavaError) {
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.logger = logger
        self.part = part
        self.etag = etag
        total = part.upperBound - part.lowerBound
        try open()
    }

    private var name: String { "s3://\(bucket)/\(key)" }

    private func open() throws(LavaError) {
        let start = (part?.lowerBound ?? 0) + received
        let stream = try s3.get(bucket: bucket, key: key, from: start, to: part?.upperBound,
                                ifMatch: received > 0 || part != nil ? etag : nil)
        switch stream.status {
        case 404:
            stream.close()
            throw LavaError(.aws, "\(name): no such object")
        case 412:
            stream.close()
            throw LavaError(.aws, "\(name) changed while it was being downloaded (ETag no longer \(etag ?? "?")); run again")
        case 206 where received > 0 || part != nil:
            break
        case 200 where received == 0 && part == nil:
            total = stream.expectedLength
            etag = stream.headers["ETag"].map(S3Client.unquote)
            expectedChecksum = S3Client.wholeObjectChecksum(stream.headers["x-amz-checksum-sha256"])
        default:
            stream.close()
            throw LavaError(.aws, "\(name): unexpected HTTP \(stream.status) for GetObject")
        }
        current = stream
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(LavaError) -> Int {
        if finished { return 0 }
        while true {
            if current == nil { try open() }
            do throws(LavaError) {
                let count = try current!.read(into: buffer)
                if count == 0 {
                    try verify()
                    finished = true
                    current = nil
                    return 0
                }
                received += Int64(count)
                hasher?.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                return count
            } catch {
                current?.close()
                current = nil
                resumes += 1
                guard error.isTransientHTTPFailure, resumes < s3.client.retry.maxAttempts else {
                    throw error.prefixed(name)
                }
                let delay = s3.client.retry.delay(afterAttempt: resumes)
                logger.info("\(name): connection broke after \(received) bytes; resuming (\(resumes) of \(s3.client.retry.maxAttempts - 1))")
                Clock.sleep(seconds: delay)
            }
        }
    }

    private func verify() throws(LavaError) {
        if let total, received != total {
            throw LavaError(.aws, "\(name): received \(received) bytes, expected \(total)")
        }
        if let expectedChecksum, let hasher = hasher.take() {
            let actual = Base64.encode(hasher.finalize())
            guard actual == expectedChecksum else {
                throw LavaError(.aws, "\(name): SHA-256 \(actual) does not match x-amz-checksum-sha256 \(expectedChecksum)")
            }
        }
    }
}
