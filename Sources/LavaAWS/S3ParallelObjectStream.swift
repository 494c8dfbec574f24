import LavaCrypto
import LavaSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A large object fetched as parallel ranged GETs, so the bzip2 decoders on every core are not
/// held to one connection's rate: `connections` threads each fetch the next part not yet taken
/// (`If-Match` pins every part to the ETag HEAD gave; each part resumes on its own), and `read`
/// hands the parts out in order. At most `connections + 1` parts are held at once. The whole
/// object's size, and its SHA-256 when S3 has one, are checked as it is read.
public final class S3ParallelObjectStream: ByteStream {
    private struct State {
        /// The next part a fetcher takes.
        var nextPart = 0
        /// The part `read` hands out next; parts before it are done with.
        var readingPart = 0
        var fetched: [Int: [UInt8]] = [:]
        var failure: LavaError?
        var closed = false
    }

    private let object: S3Object
    private let name: String
    private let partSize: Int64
    private let partCount: Int
    private let window: Int
    private let monitor = Monitor(State())
    private var threads: [pthread_t] = []

    // Reader state: used by `read` only.
    private var current: [UInt8] = []
    private var offset = 0
    private var delivered: Int64 = 0
    private var hasher: SHA256?
    private var finished = false

    /// Parts of 4 MiB, four connections: enough to keep 8 cores decoding from a distant region.
    public static let defaultPartSize: Int64 = 4 << 20
    public static let defaultConnections = 4

    /// - Parameter object: the object as HEAD described it; it must have an ETag.
    public init(s3: S3Client, bucket: String, object: S3Object, partSize: Int64 = defaultPartSize,
                connections: Int = defaultConnections, logger: Logger) throws(LavaError) {
        self.object = object
        name = "s3://\(bucket)/\(object.key)"
        self.partSize = partSize
        partCount = Int((object.size + partSize - 1) / partSize)
        window = connections + 1
        hasher = object.checksumSHA256 == nil ? nil : SHA256()
        let etag = object.etag ?? ""
        for number in 0..<max(min(connections, partCount), 1) {
            let thread = try Threads.start(name: "s3-part-\(number)", joinable: true) { [monitor, partSize, partCount, window, object] in
                S3ParallelObjectStream.fetchParts(monitor: monitor, window: window, partCount: partCount) { part throws(LavaError) in
                    let start = Int64(part) * partSize
                    let range = start..<min(start + partSize, object.size)
                    let stream = try S3ObjectStream(s3: s3, bucket: bucket, key: object.key, part: range, etag: etag, logger: logger)
                    return try stream.readAll(capacity: Int(range.upperBound - range.lowerBound))
                }
            }
            threads.append(thread)
        }
    }

    deinit {
        monitor.withLock { $0.closed = true }
        for thread in threads { Threads.join(thread) }
    }

    /// One fetcher: takes parts in order while they fit in the window, until every part is taken
    /// or the stream failed or closed.
    private static func fetchParts(monitor: Monitor<State>, window: Int, partCount: Int,
                                   fetch: (Int) throws(LavaError) -> [UInt8]) {
        while true {
            monitor.wait(until: nil) { state in
                state.closed || state.failure != nil || state.nextPart >= partCount || state.nextPart < state.readingPart + window
            }
            // nil: nothing more to fetch; -1: another fetcher took the part this one woke for.
            let taken: Int? = monitor.withLock { state in
                if state.closed || state.failure != nil || state.nextPart >= partCount { return nil }
                guard state.nextPart < state.readingPart + window else { return -1 }
                defer { state.nextPart += 1 }
                return state.nextPart
            }
            guard let part = taken else { return }
            if part < 0 { continue }
            do throws(LavaError) {
                let bytes = try fetch(part)
                monitor.withLock { $0.fetched[part] = bytes }
            } catch {
                monitor.withLock { state in
                    if state.failure == nil { state.failure = error }
                }
                return
            }
        }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(LavaError) -> Int {
        if finished { return 0 }
        while offset == current.count {
            let part = monitor.withLock { $0.readingPart }
            if part == partCount { return try finish() }
            monitor.wait(until: nil) { $0.fetched[part] != nil || $0.failure != nil }
            let (bytes, failure): ([UInt8]?, LavaError?) = monitor.withLock { state in
                guard let bytes = state.fetched.removeValue(forKey: part) else { return (nil, state.failure) }
                state.readingPart += 1
                return (bytes, nil)
            }
            guard let bytes else { throw failure! }
            current = bytes
            offset = 0
        }
        let count = min(buffer.count, current.count - offset)
        current.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress! + offset, byteCount: count)
        }
        hasher?.update(UnsafeRawBufferPointer(start: buffer.baseAddress, count: count))
        offset += count
        delivered += Int64(count)
        return count
    }

    private func finish() throws(LavaError) -> Int {
        guard delivered == object.size else {
            throw LavaError(.aws, "\(name): received \(delivered) bytes, expected \(object.size)")
        }
        finished = true
        if let expected = object.checksumSHA256, let hasher = hasher.take() {
            let actual = Base64.encode(hasher.finalize())
            guard actual == expected else {
                throw LavaError(.aws, "\(name): SHA-256 \(actual) does not match x-amz-checksum-sha256 \(expected)")
            }
        }
        return 0
    }
}

extension ByteStream {
    /// The rest of the stream, which should be about `capacity` bytes.
    func readAll(capacity: Int) throws(LavaError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: capacity)
        var filled = 0
        while true {
            if filled == bytes.count { bytes.append(contentsOf: [UInt8](repeating: 0, count: max(capacity / 4, 4096))) }
            var failure: LavaError?
            let count = bytes.withUnsafeMutableBytes { buffer in
                do throws(LavaError) {
                    return try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
                } catch {
                    failure = error
                    return 0
                }
            }
            if let failure { throw failure }
            if count == 0 { break }
            filled += count
        }
        bytes.removeLast(bytes.count - filled)
        return bytes
    }
}
