import LavaSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Decompresses a bzip2 input (one or more concatenated streams) on every core, as lbzip2 and
/// pbzip2 do, and hands out the output in order through `ByteStream`.
///
/// A reader thread pulls the compressed input and cuts it at every block magic (found at any bit
/// offset); each candidate becomes a standalone one-block stream that a pool of workers decodes
/// with the Swift block decoder. A candidate's output reaches the caller only once the decoder has verified its CRC, so
/// a magic that occurs by chance inside compressed data costs a retry (the candidate joined with
/// the next one), never wrong bytes. Stream CRCs are checked against the trailers.
///
/// Memory is bounded: at most `2 * threads + 2` candidates (~1 MB each) are pending and at most
/// `maxBufferedBytes` of output is buffered; a block whose output is larger than the hold limit
/// (only highly repetitive data: up to ~46 MB per block) is verified first, then decoded again and
/// streamed when its turn comes.
///
/// `read` is for one thread at a time. Dropping the decoder stops and joins its threads.
public final class ParallelBzip2Decoder: ByteStream {
    private static let counter = Atomic<Int>(0)

    /// Numbers the decoder's threads (named `bz2-<id>-r` and `bz2-<id>-w<n>`).
    let id = ParallelBzip2Decoder.counter.add(1, ordering: .relaxed).newValue
    private let pipeline: Pipeline
    private var threads: [JoinableThread] = []
    private let onCompressedBytes: ((Int) -> Void)?
    private var reportedCompressed = 0

    // Consumer state: used only by `read`.
    private var current: Chunk?
    private var currentOffset = 0
    private var combinedCRC: UInt32 = 0
    private var blocksDone = 0
    private var outcome: LavaError?
    private var finished = false

    /// Decoding threads when `threads` is nil: one per CPU this process may run on, at least 2,
    /// at most `maximumDefaultThreads`. `LAVA_BOOT_DECODE_THREADS` overrides it (tests and
    /// benchmarks).
    public static var defaultThreads: Int {
        if let text = getenv("LAVA_BOOT_DECODE_THREADS").map({ String(cString: $0) }), let value = Int(text), value > 0 {
            return min(value, 64)
        }
        return min(max(CPUs.available, 2), maximumDefaultThreads)
    }

    /// Each thread holds ~8 MB of tables: the cap keeps an install under its memory bar on any
    /// machine, and four of these threads decode faster than lbzip2 on eight cores.
    public static let maximumDefaultThreads = 4

    /// - Parameters:
    ///   - source: the compressed input, read on the decoder's reader thread only.
    ///   - threads: decoding threads (default `defaultThreads`).
    ///   - maxBufferedBytes: decoded output buffered ahead of the caller, at most.
    ///   - onCompressedBytes: called from `read` (on the caller's thread) with the compressed bytes
    ///     read since the last call, for progress.
    public convenience init(source: any ByteStream, threads: Int? = nil, maxBufferedBytes: Int = 6 << 20,
                            onCompressedBytes: ((Int) -> Void)? = nil) {
        self.init(source: source, threads: threads, maxBufferedBytes: maxBufferedBytes,
                  onCompressedBytes: onCompressedBytes, falseCuts: [])
    }

    /// `falseCuts`: for tests, bit offsets the reader cuts at as if a block magic were there.
    init(source: any ByteStream, threads: Int?, maxBufferedBytes: Int,
         onCompressedBytes: ((Int) -> Void)?, falseCuts: [Int]) {
        let workers = max(threads ?? Self.defaultThreads, 1)
        let chunkSize = 256 * 1024
        let maxChunks = max(maxBufferedBytes / chunkSize, 8)
        pipeline = Pipeline(chunkSize: chunkSize, maxChunks: maxChunks,
                            holdChunks: min(maxChunks / 2, 32), maxBlocksPending: 2 * workers + 2)
        self.onCompressedBytes = onCompressedBytes
        let reader = Reader(source: source, pipeline: pipeline, falseCuts: falseCuts)
        let id = self.id
        self.threads.append(JoinableThread(name: "bz2-\(id)-r") { reader.run() })
        for n in 0..<workers {
            let pipeline = self.pipeline
            self.threads.append(JoinableThread(name: "bz2-\(id)-w\(n)") { Worker(pipeline: pipeline).run() })
        }
    }

    deinit {
        pipeline.close()
        for thread in threads { thread.join() }
        if let current { pipeline.recycle([current]) }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(LavaError) -> Int {
        defer { reportProgress() }
        guard buffer.count > 0 else { return 0 }
        while true {
            if let chunk = current {
                let n = min(buffer.count, chunk.count - currentOffset)
                if n > 0 {
                    buffer.baseAddress!.copyMemory(from: chunk.base + currentOffset, byteCount: n)
                    currentOffset += n
                    return n
                }
                current = nil
                pipeline.recycle([chunk])
            }
            if let outcome { throw outcome }
            if finished { return 0 }
            switch nextChunk() {
            case .chunk(let chunk):
                current = chunk
                currentOffset = 0
            case .wait:
                pipeline.consumerSignal.wait()
            case .failure(let error):
                outcome = error
            case .end:
                finished = true
            }
        }
    }

    private func reportProgress() {
        guard let onCompressedBytes else { return }
        let total = pipeline.state.withLock { $0.compressedBytes }
        if total > reportedCompressed {
            let delta = total - reportedCompressed
            reportedCompressed = total
            onCompressedBytes(delta)
        }
    }

    private enum Next {
        case chunk(Chunk)
        case wait
        case failure(LavaError)
        case end
    }

    /// The next chunk of output in order, settling finished blocks, failed candidates and stream
    /// trailers on the way.
    private func nextChunk() -> Next {
        var combined = combinedCRC
        var done = blocksDone
        var stale: [Chunk] = []
        let (next, wake) = pipeline.state.withLock { s -> (Next, Wakeups) in
            var wake = Wakeups()
            while true {
                guard let head = s.pending.first else {
                    s.consumerWaiting = true
                    return (.wait, wake)
                }
                switch head {
                case .block(let item):
                    if !item.chunks.isEmpty {
                        return (.chunk(item.chunks.removeFirst()), wake)
                    }
                    switch item.phase {
                    case .done:
                        combined = (combined << 1 | combined >> 31) ^ item.blockCRC
                        done += 1
                        s.pending.removeFirst()
                        s.blocksPending -= 1
                        wake.add(workers: &s, reader: true)
                        continue
                    case .failed:
                        if item.releasedAny { return (.failure(BZErrors.corruptBlock(done + 1)), wake) }
                        guard s.pending.count >= 2 else {
                            s.consumerWaiting = true
                            return (.wait, wake)
                        }
                        guard case .block(let next) = s.pending[1], next.streamIndex == item.streamIndex,
                              item.bodyBits + next.bodyBits <= BZMagic.maxBlockBits(level: item.level) else {
                            return (.failure(BZErrors.corruptBlock(done + 1)), wake)
                        }
                        // The magic that ended this candidate may have been a chance pattern in
                        // the data: try the two candidates as one block.
                        next.cancelled = true
                        stale.append(contentsOf: next.chunks)
                        next.chunks = []
                        s.pending.removeFirst(2)
                        s.pending.insert(.block(item.joined(with: next)), at: 0)
                        s.blocksPending -= 1
                        wake.add(workers: &s, reader: true)
                        continue
                    case .queued, .decoding, .streaming:
                        s.consumerWaiting = true
                        return (.wait, wake)
                    }
                case .streamEnd(let crc):
                    if crc != combined { return (.failure(BZErrors.crcMismatch), wake) }
                    combined = 0
                    s.pending.removeFirst()
                    continue
                case .failure(let error):
                    return (.failure(error), wake)
                case .end:
                    return (.end, wake)
                }
            }
        }
        combinedCRC = combined
        blocksDone = done
        pipeline.fire(wake)
        pipeline.recycle(stale)
        return next
    }
}

/// A decoding thread, joined when the decoder goes away.
final class JoinableThread {
    private let handle: pthread_t
    private var joined = false

    init(name: String, _ body: @escaping @Sendable () -> Void) {
        do {
            handle = try Threads.start(name: name, joinable: true, body)
        } catch {
            // The decoder cannot work without its threads; the machine is out of them.
            preconditionFailure(error.message)
        }
    }

    func join() {
        guard !joined else { return }
        joined = true
        Threads.join(handle)
    }
}
