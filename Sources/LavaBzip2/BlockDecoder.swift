import CBzip2
#if canImport(Glibc)
import Glibc
#endif

/// Keeps libbz2's large allocations (the decoder state and the `level * 400 kB` block array)
/// for the next block, so a worker does not map and fault in ~4 MB per block.
final class BZAllocatorCache {
    private struct Entry {
        var pointer: UnsafeMutableRawPointer
        var size: Int
        var inUse: Bool
    }
    private var entries: [Entry] = []

    func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
        if let i = entries.firstIndex(where: { !$0.inUse && $0.size == size }) {
            entries[i].inUse = true
            return entries[i].pointer
        }
        guard let pointer = malloc(max(size, 1)) else { return nil }
        if entries.count < 8 {
            entries.append(Entry(pointer: pointer, size: size, inUse: true))
        }
        return pointer
    }

    func release(_ pointer: UnsafeMutableRawPointer) {
        if let i = entries.firstIndex(where: { $0.pointer == pointer }) {
            entries[i].inUse = false
        } else {
            free(pointer)
        }
    }

    deinit {
        for entry in entries { free(entry.pointer) }
    }
}

/// One worker's libbz2 decompressor, reused block after block. Not thread-safe: one owner.
final class BlockDecoder {
    enum Step { case more, end, failed }

    /// libbz2 keeps a pointer to its `bz_stream`, so the struct lives at a fixed address.
    private let stream: UnsafeMutablePointer<bz_stream>
    private let cache = BZAllocatorCache()
    private var active = false

    init() {
        stream = .allocate(capacity: 1)
        stream.initialize(to: bz_stream())
    }

    deinit {
        end()
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// Starts decoding a complete bzip2 stream held in `input`; false if libbz2 refuses.
    func begin(input: UnsafeRawPointer, count: Int) -> Bool {
        end()
        stream.pointee = bz_stream()
        stream.pointee.opaque = Unmanaged.passUnretained(cache).toOpaque()
        stream.pointee.bzalloc = { opaque, items, size in
            let cache = Unmanaged<BZAllocatorCache>.fromOpaque(opaque!).takeUnretainedValue()
            return cache.allocate(Int(items) * Int(size))
        }
        stream.pointee.bzfree = { opaque, pointer in
            guard let pointer else { return }
            let cache = Unmanaged<BZAllocatorCache>.fromOpaque(opaque!).takeUnretainedValue()
            cache.release(pointer)
        }
        guard BZ2_bzDecompressInit(stream, 0, 0) == BZ_OK else { return false }
        active = true
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.assumingMemoryBound(to: CChar.self))
        stream.pointee.avail_in = UInt32(count)
        return true
    }

    /// Decodes into `output`: `.more` when it is full, `.end` at the verified end of the stream
    /// (block CRC and combined CRC checked), `.failed` for any error or missing input.
    func step(into output: UnsafeMutableRawPointer, capacity: Int) -> (produced: Int, step: Step) {
        guard active else { return (0, .failed) }
        stream.pointee.next_out = output.assumingMemoryBound(to: CChar.self)
        stream.pointee.avail_out = UInt32(capacity)
        while true {
            let before = (stream.pointee.avail_in, stream.pointee.avail_out)
            let result = BZ2_bzDecompress(stream)
            let produced = capacity - Int(stream.pointee.avail_out)
            if result == BZ_STREAM_END {
                return (produced, stream.pointee.avail_in == 0 ? .end : .failed)
            }
            guard result == BZ_OK else { return (produced, .failed) }
            if stream.pointee.avail_out == 0 { return (produced, .more) }
            // libbz2 returns BZ_OK with room left only when it wants input: the block ended early.
            if stream.pointee.avail_in == 0 { return (produced, .failed) }
            if (stream.pointee.avail_in, stream.pointee.avail_out) == before { return (produced, .failed) }
        }
    }

    func end() {
        if active {
            BZ2_bzDecompressEnd(stream)
            active = false
        }
    }
}
