import LavaSystem
#if canImport(Glibc)
import Glibc
#endif

/// Reads the compressed input, finds stream headers, block boundaries and stream trailers, and
/// queues each candidate block as a standalone stream.
final class Reader: @unchecked Sendable {  // created before its thread starts, then used by that thread alone
    private let source: any ByteStream
    private let pipeline: Pipeline
    private var window: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    /// Absolute offset of `window[0]`.
    private var base = 0
    private var count = 0
    /// Absolute offset before which bytes may be dropped.
    private var keepFrom = 0
    private var eof = false
    private let readSize: Int
    /// Tests: bit offsets treated as block magics although none is there (chance patterns).
    private let falseCuts: [Int]
    private var falseCutIndex = 0

    private static let closedCode = LavaError.Code("bzip2-decoder-closed")

    init(source: any ByteStream, pipeline: Pipeline, readSize: Int = 512 * 1024, falseCuts: [Int] = []) {
        self.source = source
        self.falseCuts = falseCuts.sorted()
        self.pipeline = pipeline
        self.readSize = readSize
        capacity = 2 * 1024 * 1024
        window = .allocate(capacity: capacity)
    }

    deinit { window.deallocate() }

    func run() {
        do {
            try parse()
            _ = pipeline.push(.end)
        } catch {
            if error.code != Reader.closedCode { _ = pipeline.push(.failure(error)) }
        }
    }

    // MARK: Input

    private var end: Int { base + count }

    private func byte(_ offset: Int) -> UInt8 { window[offset - base] }

    private func bits(at bitPos: Int, count n: Int) -> UInt64 {
        readBits(window, at: bitPos - base * 8, count: n)
    }

    /// Reads until the input holds `absEnd` bytes or ends; true if it holds them.
    private func ensure(_ absEnd: Int) throws(LavaError) -> Bool {
        while end < absEnd && !eof { try readMore() }
        return end >= absEnd
    }

    private func readMore() throws(LavaError) {
        if capacity - count < readSize {
            let drop = keepFrom - base
            if drop > 0 {
                memmove(window, window + drop, count - drop)
                count -= drop
                base = keepFrom
            }
            if capacity - count < readSize {
                let bigger = max(capacity * 2, count + readSize)
                let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: bigger)
                grown.update(from: window, count: count)
                window.deallocate()
                window = grown
                capacity = bigger
            }
        }
        if pipeline.state.withLock({ $0.closed }) { throw LavaError(Reader.closedCode, "closed") }
        let n = try source.read(into: UnsafeMutableRawBufferPointer(start: window + count, count: min(capacity - count, readSize)))
        if n == 0 {
            eof = true
        } else {
            count += n
            pipeline.addCompressed(n)
        }
    }

    // MARK: Structure

    private func push(_ entry: Entry) throws(LavaError) {
        guard pipeline.push(entry) else { throw LavaError(Reader.closedCode, "closed") }
    }

    private func isStreamHeader(at offset: Int) -> Bool {
        guard end >= offset + 10,
              byte(offset) == 0x42, byte(offset + 1) == 0x5A, byte(offset + 2) == 0x68,
              (0x31...0x39).contains(byte(offset + 3)) else { return false }
        let magic = bits(at: (offset + 4) * 8, count: 48)
        return magic == BZMagic.block || magic == BZMagic.endOfStream
    }

    private func parse() throws(LavaError) {
        var streamIndex = 0
        var offset = 0  // of the next stream header
        while true {
            keepFrom = offset
            if streamIndex > 0 {
                guard try ensure(offset + 1) else { return }
                if byte(offset) == 0 {
                    try expectZerosToEnd(from: offset)
                    return
                }
            }
            _ = try ensure(offset + 10)
            guard isStreamHeader(at: offset) else {
                if streamIndex > 0 { throw BZErrors.trailingGarbage(at: offset) }
                if end == offset { throw BZErrors.truncated("the input is empty") }
                let header: [UInt8] = [0x42, 0x5A, 0x68]
                if end < offset + 4 && (offset..<end).allSatisfy({ byte($0) == header[$0 - offset] }) {
                    throw BZErrors.truncated("it ends in the stream header")
                }
                if end >= offset + 4 && byte(offset) == 0x42 && byte(offset + 1) == 0x5A && byte(offset + 2) == 0x68 {
                    throw end < offset + 10 ? BZErrors.truncated("it ends in the stream header")
                        : BZErrors.corrupt("no block after the stream header")
                }
                throw LavaError(.corruptBzip2, "not bzip2 data (no BZh header)")
            }
            let level = Int(byte(offset + 3)) - 0x30
            if bits(at: (offset + 4) * 8, count: 48) == BZMagic.endOfStream {
                guard try ensure(offset + 14) else { throw BZErrors.truncated("it ends in the stream trailer") }
                try push(.streamEnd(crc: UInt32(bits(at: (offset + 10) * 8, count: 32))))
                offset += 14
            } else {
                offset = try scanBlocks(from: (offset + 4) * 8, level: level, streamIndex: streamIndex)
            }
            streamIndex += 1
        }
    }

    /// Queues the blocks of one stream; returns the offset just past its trailer.
    private func scanBlocks(from startBit: Int, level: Int, streamIndex: Int) throws(LavaError) -> Int {
        var segmentStart = startBit
        var searchFrom = startBit + 1
        var rejectedEndOfStream = false
        while true {
            keepFrom = segmentStart >> 3
            let scanned = MagicScanner.find(in: window, count: count, from: searchFrom - base * 8)
                .map { (bit: $0.bit + base * 8, endOfStream: $0.endOfStream) }
            while falseCutIndex < falseCuts.count && falseCuts[falseCutIndex] < searchFrom { falseCutIndex += 1 }
            if falseCutIndex < falseCuts.count, falseCuts[falseCutIndex] < (scanned?.bit ?? (end - 6) * 8) {
                let cut = falseCuts[falseCutIndex]
                try emit(from: segmentStart, to: cut, level: level, streamIndex: streamIndex)
                segmentStart = cut
                searchFrom = cut + 1
                continue
            }
            if let found = scanned {
                let bit = found.bit
                if !found.endOfStream {
                    try emit(from: segmentStart, to: bit, level: level, streamIndex: streamIndex)
                    segmentStart = bit
                    searchFrom = bit + 1
                    continue
                }
                // An end-of-stream magic is real if zero padding follows its CRC, then the end of
                // the input, zero bytes, or another stream.
                let trailerEnd = bit + 80
                let next = (trailerEnd + 7) >> 3
                _ = try ensure(next + 10)
                guard end >= next else { throw BZErrors.truncated("it ends in the stream trailer") }
                let padding = next * 8 - trailerEnd
                let padded = padding == 0 || bits(at: trailerEnd, count: padding) == 0
                let followed = end == next || byte(next) == 0 || isStreamHeader(at: next)
                if padded && followed {
                    try emit(from: segmentStart, to: bit, level: level, streamIndex: streamIndex)
                    try push(.streamEnd(crc: UInt32(bits(at: bit + 48, count: 32))))
                    return next
                }
                rejectedEndOfStream = true
                searchFrom = bit + 1
                continue
            }
            searchFrom = max(searchFrom, (end - 6) * 8)
            if end * 8 - segmentStart > BZMagic.maxBlockBits(level: level) {
                throw BZErrors.corrupt("no block boundary within \(BZMagic.maxBlockBits(level: level) / 8) bytes after byte \(segmentStart / 8)")
            }
            if eof {
                if rejectedEndOfStream { throw BZErrors.trailingGarbage(at: nil) }
                throw BZErrors.truncated("no end-of-stream marker")
            }
            try readMore()
        }
    }

    private func emit(from start: Int, to stop: Int, level: Int, streamIndex: Int) throws(LavaError) {
        let item = Item(level: level, streamIndex: streamIndex,
                        parts: [(UnsafePointer(window), count, start - base * 8, stop - start)])
        try push(.block(item))
    }

    private func expectZerosToEnd(from offset: Int) throws(LavaError) {
        var position = offset
        while true {
            while position < end {
                guard byte(position) == 0 else { throw BZErrors.trailingGarbage(at: position) }
                position += 1
            }
            keepFrom = position
            if eof { return }
            try readMore()
        }
    }
}

extension LavaError.Code {
    /// Damaged, truncated or non-bzip2 input to the bzip2 decoder.
    public static let corruptBzip2 = LavaError.Code("corrupt-bzip2")
}

enum BZErrors {
    static func truncated(_ detail: String) -> LavaError {
        LavaError(.corruptBzip2, "truncated bzip2 stream: \(detail)")
    }

    static func corrupt(_ detail: String) -> LavaError {
        LavaError(.corruptBzip2, "corrupt bzip2 data: \(detail)")
    }

    static func corruptBlock(_ number: Int) -> LavaError {
        LavaError(.corruptBzip2, "corrupt bzip2 data in block \(number)")
    }

    static func trailingGarbage(at offset: Int?) -> LavaError {
        LavaError(.corruptBzip2, "unexpected data after the end of the bzip2 stream" + (offset.map { " at byte \($0)" } ?? ""))
    }

    static let crcMismatch = LavaError(.corruptBzip2, "bzip2 stream CRC mismatch")
}
