import Dispatch
import LavaBzip2Block
import LavaSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A buffer of decoded bytes.
struct Chunk: @unchecked Sendable {  // one holder at a time (pool, worker, item or consumer), handed over under the lock
    let base: UnsafeMutableRawPointer
    var count: Int
}

/// A candidate block: the bits from one magic to the next, as a standalone one-block bzip2 stream.
final class Item: @unchecked Sendable {  // the `let`s are immutable; every `var` is touched only under Pipeline.state's lock
    enum Phase {
        case queued
        case decoding
        /// Too big to hold, so verified first and decoded again as the head, chunks published as they fill.
        case streaming
        case done
        case failed
    }

    /// `BZh<level>`, the block's bits from its magic on, the end-of-stream magic, the block's CRC.
    let stream: UnsafeMutablePointer<UInt8>
    let streamBytes: Int
    /// Bits of the block itself (from `stream` byte 4 on).
    let bodyBits: Int
    let level: Int
    let streamIndex: Int
    /// As stored after the block magic; trusted once the decoder has verified the block against it.
    let blockCRC: UInt32

    var phase = Phase.queued
    var chunks: [Chunk] = []
    var releasedAny = false
    var cancelled = false

    /// Builds the standalone stream from `bits` bits of `source` starting at `bitPos`.
    init(level: Int, streamIndex: Int, parts: [(source: UnsafePointer<UInt8>, bytes: Int, bitPos: Int, bits: Int)]) {
        let bodyBits = parts.reduce(0) { $0 + $1.bits }
        let capacity = 4 + (bodyBits + 7) / 8 + 10 + 16
        stream = .allocate(capacity: capacity)
        var writer = BitWriter(base: stream)
        writer.put(0x425A_6800 | UInt64(0x30 + level), bits: 32)
        for part in parts {
            writer.copyBits(from: part.source, sourceBytes: part.bytes, bitPos: part.bitPos, count: part.bits)
        }
        let crc = bodyBits >= 80 ? UInt32(readBits(stream, at: 32 + 48, count: 32)) : 0
        writer.put(BZMagic.endOfStream >> 16, bits: 32)
        writer.put(BZMagic.endOfStream & 0xFFFF, bits: 16)
        writer.put(UInt64(crc), bits: 32)
        writer.finish()
        self.streamBytes = writer.byteCount
        self.bodyBits = bodyBits
        self.level = level
        self.streamIndex = streamIndex
        self.blockCRC = crc
    }

    /// This candidate followed by the next one: for a magic that was a chance pattern in the data.
    func joined(with next: Item) -> Item {
        let streamBytesA = streamBytes, streamBytesB = next.streamBytes
        return Item(level: level, streamIndex: streamIndex, parts: [
            (UnsafePointer(stream), streamBytesA, 32, bodyBits),
            (UnsafePointer(next.stream), streamBytesB, 32, next.bodyBits),
        ])
    }

    deinit { stream.deallocate() }
}

enum Entry {
    case block(Item)
    case streamEnd(crc: UInt32)
    case failure(LavaError)
    case end
}

struct PipelineState {
    /// What the consumer gets next, in order; `pending[0]` is the head.
    var pending: [Entry] = []
    var blocksPending = 0
    var closed = false
    var freeChunks: [Chunk] = []
    var chunksInUse = 0
    var compressedBytes = 0
    /// Each waiting worker's own semaphore: one shared semaphore would let a worker take the
    /// wake-up meant for another and leave that one asleep.
    var workerWaiters: [DispatchSemaphore] = []
    var consumerWaiting = false
    var readerWaiting = false

    func isHead(_ item: Item) -> Bool {
        if case .block(let head)? = pending.first { return head === item }
        return false
    }

    var headIsQueued: Bool {
        if case .block(let head)? = pending.first { return head.phase == .queued }
        return false
    }
}

/// Who to wake once the lock is released.
struct Wakeups {
    var workers: [DispatchSemaphore] = []
    var consumer = false
    var reader = false

    static func all(_ s: inout PipelineState) -> Wakeups {
        var w = Wakeups()
        w.add(workers: &s, consumer: true, reader: true)
        return w
    }

    mutating func add(workers s: inout PipelineState, consumer: Bool = false, reader: Bool = false) {
        workers += s.workerWaiters
        s.workerWaiters = []
        if consumer && s.consumerWaiting { self.consumer = true; s.consumerWaiting = false }
        if reader && s.readerWaiting { self.reader = true; s.readerWaiting = false }
    }

    mutating func addConsumer(_ s: inout PipelineState) {
        if s.consumerWaiting { consumer = true; s.consumerWaiting = false }
    }

    mutating func addReader(_ s: inout PipelineState) {
        if s.readerWaiting { reader = true; s.readerWaiting = false }
    }
}

/// Everything the reader, the workers and the consumer share.
final class Pipeline: Sendable {
    let state = Mutex(PipelineState())
    let consumerSignal = DispatchSemaphore(value: 0)
    let readerSignal = DispatchSemaphore(value: 0)

    let chunkSize: Int
    /// Chunks in use at most; the head may use them all.
    let maxChunks: Int
    /// Output a candidate holds until it is verified; beyond that it is verified first, then
    /// decoded again as the head and streamed.
    let holdChunks: Int
    /// Candidates queued or in progress at most.
    let maxBlocksPending: Int

    init(chunkSize: Int, maxChunks: Int, holdChunks: Int, maxBlocksPending: Int) {
        self.chunkSize = chunkSize
        self.maxChunks = maxChunks
        self.holdChunks = holdChunks
        self.maxBlocksPending = maxBlocksPending
    }

    deinit {
        state.withLock { s in
            for chunk in s.freeChunks { chunk.base.deallocate() }
            s.freeChunks = []
            for case .block(let item) in s.pending {
                for chunk in item.chunks { chunk.base.deallocate() }
                item.chunks = []
            }
        }
    }

    func fire(_ wake: Wakeups) {
        for worker in wake.workers { worker.signal() }
        if wake.consumer { consumerSignal.signal() }
        if wake.reader { readerSignal.signal() }
    }

    /// Returns chunks to the pool; wakes workers waiting for one.
    func recycle(_ chunks: [Chunk]) {
        guard !chunks.isEmpty else { return }
        let wake = state.withLock { s in
            for chunk in chunks { s.freeChunks.append(chunk) }
            s.chunksInUse -= chunks.count
            var wake = Wakeups()
            wake.add(workers: &s)
            return wake
        }
        fire(wake)
    }

    func close() {
        let wake = state.withLock { s in
            s.closed = true
            return Wakeups.all(&s)
        }
        fire(wake)
    }

    // MARK: Reader side

    /// Appends an entry; for a block, waits while too many are pending. False once closed.
    func push(_ entry: Entry, compressedBytes: Int = 0) -> Bool {
        while true {
            let (pushed, wait, wake) = state.withLock { s -> (Bool, Bool, Wakeups) in
                var wake = Wakeups()
                if s.closed { return (false, false, wake) }
                if case .block = entry, s.blocksPending >= maxBlocksPending {
                    s.readerWaiting = true
                    return (false, true, wake)
                }
                s.pending.append(entry)
                if case .block = entry {
                    s.blocksPending += 1
                    wake.add(workers: &s)
                }
                wake.addConsumer(&s)
                return (true, false, wake)
            }
            fire(wake)
            if !wait { return pushed }
            readerSignal.wait()
        }
    }

    func addCompressed(_ count: Int) {
        state.withLock { $0.compressedBytes += count }
    }

    // MARK: Worker side

    private enum Grant {
        case chunk(Chunk)
        case allocate
        case wait
        case stop
        case preempt
    }

    /// The first queued candidate, or nil once closed.
    func nextJob(signal: DispatchSemaphore) -> Item? {
        while true {
            let job = state.withLock { s -> (Item?, Bool) in
                if s.closed { return (nil, false) }
                for case .block(let item) in s.pending where item.phase == .queued {
                    item.phase = .decoding
                    return (item, false)
                }
                s.workerWaiters.append(signal)
                return (nil, true)
            }
            if job.1 { signal.wait(); continue }
            return job.0
        }
    }

    enum Acquired {
        case chunk(Chunk)
        /// Closed, or the candidate was cancelled.
        case stop
        /// The head is queued while this worker waits: give this candidate back and take the head.
        case preempt
    }

    /// A chunk for `item`'s output. A candidate that is not the head may only use the chunks
    /// that leave `holdChunks` for the head, so the head can always make progress.
    func acquireChunk(for item: Item, signal: DispatchSemaphore) -> Acquired {
        while true {
            let grant = state.withLock { s -> Grant in
                if s.closed || item.cancelled { return .stop }
                let limit = s.isHead(item) ? maxChunks : maxChunks - holdChunks
                if s.chunksInUse < limit {
                    s.chunksInUse += 1
                    if let chunk = s.freeChunks.popLast() { return .chunk(chunk) }
                    return .allocate
                }
                if s.headIsQueued { return .preempt }
                s.workerWaiters.append(signal)
                return .wait
            }
            switch grant {
            case .chunk(var chunk):
                chunk.count = 0
                return .chunk(chunk)
            case .allocate:
                return .chunk(Chunk(base: .allocate(byteCount: chunkSize, alignment: 64), count: 0))
            case .wait:
                signal.wait()
            case .stop:
                return .stop
            case .preempt:
                return .preempt
            }
        }
    }

    /// Waits until `item` is the head. False if closed or cancelled, or if the head is queued
    /// (this worker should give `item` back and take the head).
    func waitUntilHead(_ item: Item, signal: DispatchSemaphore) -> (head: Bool, preempt: Bool) {
        while true {
            let result = state.withLock { s -> (Bool, Bool, Bool) in
                if s.closed || item.cancelled { return (false, false, false) }
                if s.isHead(item) {
                    item.phase = .streaming
                    return (true, false, false)
                }
                if s.headIsQueued { return (false, true, false) }
                s.workerWaiters.append(signal)
                return (false, false, true)
            }
            if result.2 { signal.wait(); continue }
            return (result.0, result.1)
        }
    }

    func isStopped(_ item: Item) -> Bool {
        state.withLock { s in s.closed || item.cancelled }
    }

    /// Puts a candidate back in the queue (its worker is needed for the head).
    func requeue(_ item: Item) {
        let wake = state.withLock { s in
            if !item.cancelled { item.phase = .queued }
            var wake = Wakeups()
            wake.add(workers: &s)
            return wake
        }
        fire(wake)
    }

    /// Hands a decoded (or failed) candidate's output to the consumer.
    func finish(_ item: Item, chunks: [Chunk], failed: Bool) {
        var stale: [Chunk] = []
        let wake = state.withLock { s in
            if item.cancelled || s.closed {
                stale = chunks
            } else {
                item.chunks.append(contentsOf: chunks)
                item.phase = failed ? .failed : .done
            }
            var wake = Wakeups()
            wake.addConsumer(&s)
            return wake
        }
        fire(wake)
        recycle(stale)
    }

    /// Publishes one chunk of the streaming head.
    func publish(_ item: Item, chunk: Chunk) -> Bool {
        var stale: [Chunk] = []
        let (ok, wake) = state.withLock { s -> (Bool, Wakeups) in
            var wake = Wakeups()
            if item.cancelled || s.closed {
                stale = [chunk]
                return (false, wake)
            }
            item.chunks.append(chunk)
            item.releasedAny = true
            wake.addConsumer(&s)
            return (true, wake)
        }
        fire(wake)
        recycle(stale)
        return ok
    }
}

/// One decoding thread: takes candidates in order and decodes them with the Swift block decoder.
final class Worker {
    let pipeline: Pipeline
    let decoder = SwiftBlockDecoder()
    /// Wakes this worker (see `PipelineState.workerWaiters`).
    let signal = DispatchSemaphore(value: 0)
    private var discard: UnsafeMutableRawPointer?

    init(pipeline: Pipeline) { self.pipeline = pipeline }

    deinit { discard?.deallocate() }

    func run() {
        while let item = pipeline.nextJob(signal: signal) {
            decode(item)
            decoder.end()
        }
    }

    private func decode(_ item: Item) {
        guard decoder.begin(input: item.stream, count: item.streamBytes) else {
            pipeline.finish(item, chunks: [], failed: true)
            return
        }
        // Hold the output until the decoder has verified the whole block: a candidate cut at a chance
        // magic must never leak bytes.
        var held: [Chunk] = []
        while true {
            let chunk: Chunk
            switch pipeline.acquireChunk(for: item, signal: signal) {
            case .chunk(let granted): chunk = granted
            case .stop:
                pipeline.recycle(held)
                return
            case .preempt:
                pipeline.recycle(held)
                pipeline.requeue(item)
                return
            }
            var filled = chunk
            let (produced, step) = decoder.step(into: chunk.base, capacity: pipeline.chunkSize)
            filled.count = produced
            if produced > 0 { held.append(filled) } else { pipeline.recycle([filled]) }
            switch step {
            case .end:
                pipeline.finish(item, chunks: held, failed: false)
                return
            case .failed:
                pipeline.recycle(held)
                pipeline.finish(item, chunks: [], failed: true)
                return
            case .more:
                if held.count >= pipeline.holdChunks {
                    pipeline.recycle(held)
                    decodeLarge(item)
                    return
                }
            }
        }
    }

    /// A block whose output is too big to hold: verify it with the output thrown away, then
    /// decode it again once it is the head, publishing chunks as they fill.
    private func decodeLarge(_ item: Item) {
        let scratch = discard ?? UnsafeMutableRawPointer.allocate(byteCount: pipeline.chunkSize, alignment: 64)
        discard = scratch
        verifying: while true {
            if pipeline.isStopped(item) { return }
            switch decoder.step(into: scratch, capacity: pipeline.chunkSize).step {
            case .more: continue
            case .end: break verifying
            case .failed:
                pipeline.finish(item, chunks: [], failed: true)
                return
            }
        }
        decoder.end()
        let (head, preempt) = pipeline.waitUntilHead(item, signal: signal)
        if preempt { pipeline.requeue(item) }
        guard head else { return }
        guard decoder.begin(input: item.stream, count: item.streamBytes) else {
            pipeline.finish(item, chunks: [], failed: true)
            return
        }
        while true {
            guard case .chunk(var chunk) = pipeline.acquireChunk(for: item, signal: signal) else { return }
            let (produced, step) = decoder.step(into: chunk.base, capacity: pipeline.chunkSize)
            chunk.count = produced
            if produced > 0 {
                guard pipeline.publish(item, chunk: chunk) else { return }
            } else {
                pipeline.recycle([chunk])
            }
            switch step {
            case .more: continue
            case .end:
                pipeline.finish(item, chunks: [], failed: false)
                return
            case .failed:
                pipeline.finish(item, chunks: [], failed: true)
                return
            }
        }
    }
}
