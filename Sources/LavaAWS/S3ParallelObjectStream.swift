import LavaCrypto
import LavaSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A large object fetched as parallel ranged GETs, so the bzip2 decoders on every core are not
/// held to one connection's rate: `connections` threads each fetch the next part not yet taken
/// (`If-Match` pins every part to the ETag HEAD gave; each part resumes on its own) into a slot of
/// one buffer, and `read` hands the parts out in order. The slots are fixed, `connections + 1` of
/// them (one being read, the others filling), so memory is bounded whatever the allocator does. The whole object's size, and its
/// SHA-256 when S3 has one, are checked as it is read.
public final class S3ParallelObjectStream: ByteStream {
    private struct State {
        /// The next part a fetcher takes.
        var nextPart = 0
        /// The part `read` hands out next; parts before it are done with.
        var readingPart = 0
        /// Fetched parts: the slot each is in and its length.
        var fetched: [Int: (slot: Int, count: Int)] = [:]
        var freeSlots: [Int]
        var failure: LavaError?
        var closed = false
    }

    /// The parts' memory, one slot per part in flight or waiting to be read.
    private struct Slots: @unchecked Sendable {  // a slot has one user at a time, handed over under the monitor's lock
        let base: UnsafeMutableRawPointer
        let slotSize: Int
        let count: Int

        func slot(_ index: Int) -> UnsafeMutableRawBufferPointer {
            UnsafeMutableRawBufferPointer(start: base + index * slotSize, count: slotSize)
        }
    }

    private let object: S3Object
    private let name: String
    private let partCount: Int
    private let slots: Slots
    private let monitor: Monitor<State>
    private var threads: [pthread_t] = []

    // Reader state: used by `read` only.
    private var current: (slot: Int, count: Int)?
    private var offset = 0
    private var delivered: Int64 = 0
    private var hasher: SHA256?
    private var finished = false

    /// Parts of 2 MiB, three connections: enough to keep 8 cores decoding from a distant region,
    /// in 8 MiB.
    public static let defaultPartSize: Int64 = 2 << 20
    public static let defaultConnections = 3

    /// - Parameter object: the object as HEAD described it; it must have an ETag.
    public init(s3: S3Client, bucket: String, object: S3Object, partSize: Int64 = defaultPartSize,
                connections: Int = defaultConnections, logger: Logger) throws(LavaError) {
        self.object = object
        name = "s3://\(bucket)/\(object.key)"
        partCount = Int((object.size + partSize - 1) / partSize)
        let fetchers = max(min(connections, partCount), 1)
        let slotCount = fetchers + 1
        // Its own mapping: pages are touched only as parts fill them, and all go back at the end.
        guard let base = mmap(nil, slotCount * Int(partSize), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              base != MAP_FAILED else {
            throw .errno("mmap \(slotCount * Int(partSize)) bytes for \(name)")
        }
        slots = Slots(base: base, slotSize: Int(partSize), count: slotCount)
        monitor = Monitor(State(freeSlots: Array(0..<slotCount)))
        hasher = object.checksumSHA256 == nil ? nil : SHA256()
        let etag = object.etag ?? ""
        for number in 0..<fetchers {
            let thread = try Threads.start(name: "s3-part-\(number)", joinable: true) { [monitor, slots, partCount, object] in
                S3ParallelObjectStream.fetchParts(monitor: monitor, partCount: partCount) { part, slot throws(LavaError) in
                    let start = Int64(part) * partSize
                    let range = start..<min(start + partSize, object.size)
                    let stream = try S3ObjectStream(s3: s3, bucket: bucket, key: object.key, part: range, etag: etag, logger: logger)
                    let buffer = slots.slot(slot)
                    var filled = 0
                    while true {
                        let count = try stream.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
                        if count == 0 { return filled }
                        filled += count
                    }
                }
            }
            threads.append(thread)
        }
    }

    deinit {
        monitor.withLock { $0.closed = true }
        for thread in threads { Threads.join(thread) }
        munmap(slots.base, slots.count * slots.slotSize)
    }

    /// One fetcher: takes the next part and a free slot, until every part is taken or the stream
    /// failed or closed. `fetch` fills the slot and returns the part's length.
    private static func fetchParts(monitor: Monitor<State>, partCount: Int,
                                   fetch: (_ part: Int, _ slot: Int) throws(LavaError) -> Int) {
        while true {
            monitor.wait(until: nil) { state in
                state.closed || state.failure != nil || state.nextPart >= partCount || !state.freeSlots.isEmpty
            }
            // nil: nothing more to fetch; -1: another fetcher took the slot this one woke for.
            let taken: (part: Int, slot: Int)? = monitor.withLock { state in
                if state.closed || state.failure != nil || state.nextPart >= partCount { return nil }
                guard let slot = state.freeSlots.popLast() else { return (-1, -1) }
                defer { state.nextPart += 1 }
                return (state.nextPart, slot)
            }
            guard let (part, slot) = taken else { return }
            if part < 0 { continue }
            do throws(LavaError) {
                let count = try fetch(part, slot)
                monitor.withLock { $0.fetched[part] = (slot, count) }
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
        while current == nil || offset == current!.count {
            let part: Int = monitor.withLock { state in
                if let done = current { state.freeSlots.append(done.slot) }
                return state.readingPart
            }
            current = nil
            if part == partCount { return try finish() }
            monitor.wait(until: nil) { $0.fetched[part] != nil || $0.failure != nil }
            let (next, failure): ((slot: Int, count: Int)?, LavaError?) = monitor.withLock { state in
                guard let next = state.fetched.removeValue(forKey: part) else { return (nil, state.failure) }
                state.readingPart += 1
                return (next, nil)
            }
            guard let next else { throw failure! }
            current = next
            offset = 0
        }
        let (slot, available) = current!
        let count = min(buffer.count, available - offset)
        buffer.baseAddress!.copyMemory(from: slots.slot(slot).baseAddress! + offset, byteCount: count)
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
