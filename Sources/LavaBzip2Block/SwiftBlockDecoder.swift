#if canImport(Glibc)
import Glibc
#endif

public enum BlockStep: Sendable { case more, end, failed }

/// A bzip2 decoder in the shape of the libbz2 wrapper `BlockDecoder`: `begin` takes a whole
/// stream, `step` fills the caller's buffer. It accepts and rejects exactly what libbz2 1.0.8 does
/// (plus: bytes after the end of the stream are an error, as the wrapper makes them).
///
/// Safety by construction: the input is copied into a buffer with `inputSlack` zero bytes after it,
/// so the symbol loop reads past the end harmlessly and checks for an overrun once per 50-symbol
/// group; every table is sized to the whole range of the values that index it (see the comments
/// at each). One owner, one thread; all big buffers are allocated once and reused block to block.
public final class SwiftBlockDecoder {
    private static let ttBytes = (1 << InverseBWT.positionBits) * MemoryLayout<UInt32>.stride
    /// The largest block (level 9).
    static let maxBlock = 900_000
    static let groupSize = 50
    /// Zero bytes after the input: a group of 50 symbols reads at most 50 * 20 bits beyond the last
    /// check, plus the 8-byte refill load.
    static let inputSlack = 256
    /// libbz2's BZ_MAX_SELECTORS: selectors past it are read and ignored.
    static let maxSelectors = 18_002

    private enum Phase { case idle, streamHeader, blockHeader, output, done, failed }

    // Input and its bit reader. `bitBuffer` holds `bitCount` valid bits at the top (the bits
    // below them are the next input bits, or zero); `nextByte` is where the next refill loads.
    private var input: UnsafeMutablePointer<UInt8>
    private var inputCapacity: Int
    private var inputCount = 0
    private var bitBuffer: UInt64 = 0
    private var bitCount = 0
    private var nextByte = 0

    // Block decoding.
    /// `1 << 20` entries: the inverse BWT masks positions to 20 bits.
    private let tt: UnsafeMutablePointer<UInt32>
    /// The block after the inverse BWT (before un-RLE1).
    private let block: UnsafeMutablePointer<UInt8>
    private var huffman = HuffmanTables()
    private let inverse = InverseBWT(maxCount: SwiftBlockDecoder.maxBlock)
    /// 32768: indexed by any 15-bit selector count.
    private let selectors: UnsafeMutablePointer<UInt8>
    private let codeLengths: UnsafeMutablePointer<UInt8>   // 258
    private let symbolOfIndex: UnsafeMutablePointer<UInt8> // 256: the bytes in use, in order
    /// The MTF list of byte values: 256 entries, 16-byte aligned (see `moveToFront`).
    private let mtf: UnsafeMutableRawPointer
    private let byteCounts: UnsafeMutablePointer<Int>      // 257, indexed by UInt8 (+1 for sums)

    // Stream and output state.
    private var phase = Phase.idle
    private var blockLimit = 0
    private var blockLength = 0
    private var blockPosition = 0
    private var equalRun = 0          // bytes equal to `runByte` just emitted, 0...4
    private var runByte: UInt8 = 0
    private var pendingFill = 0       // copies of `runByte` still owed
    private var storedBlockCRC: UInt32 = 0
    private var blockCRC: UInt32 = 0
    private var combinedCRC: UInt32 = 0

    /// Used by benchmarks to compare with the single walk.
    public var interleavedInverseBWT = true

    public init() {
        inputCapacity = 1 << 20
        input = .allocate(capacity: inputCapacity + Self.inputSlack)
        // Zero pages from the kernel: defined contents for any masked position, and resident
        // only as far as blocks reach (a level-9 block uses 3.6 of the 4 MB).
        guard let pages = mmap(nil, Self.ttBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              pages != MAP_FAILED else { fatalError("bzip2 decoder: cannot map \(Self.ttBytes) bytes") }
        tt = pages.bindMemory(to: UInt32.self, capacity: 1 << InverseBWT.positionBits)
        block = .allocate(capacity: Self.maxBlock)
        selectors = .allocate(capacity: 1 << 15)
        codeLengths = .allocate(capacity: HuffmanTables.maxAlphabet)
        symbolOfIndex = .allocate(capacity: 256)
        symbolOfIndex.initialize(repeating: 0, count: 256)
        mtf = .allocate(byteCount: 256, alignment: 16)
        byteCounts = .allocate(capacity: 257)
    }

    deinit {
        input.deallocate()
        munmap(tt, Self.ttBytes)
        block.deallocate()
        selectors.deallocate()
        codeLengths.deallocate()
        symbolOfIndex.deallocate()
        mtf.deallocate()
        byteCounts.deallocate()
    }

    /// Starts decoding a complete bzip2 stream held in `input`; false if refused (never, as with
    /// libbz2: problems with the data show up in `step`).
    public func begin(input source: UnsafeRawPointer, count: Int) -> Bool {
        guard count >= 0 else { return false }
        if count > inputCapacity {
            input.deallocate()
            inputCapacity = count
            input = .allocate(capacity: inputCapacity + Self.inputSlack)
        }
        input.initialize(from: source.assumingMemoryBound(to: UInt8.self), count: count)
        (input + count).initialize(repeating: 0, count: Self.inputSlack)
        inputCount = count
        bitBuffer = 0
        bitCount = 0
        nextByte = 0
        combinedCRC = 0
        phase = .streamHeader
        return true
    }

    public func end() {
        phase = .idle
    }

    /// Decodes into `output`: `.more` when it is full, `.end` at the verified end of the stream
    /// (block CRCs and combined CRC checked, no bytes left over), `.failed` for any error or
    /// missing input.
    public func step(into output: UnsafeMutableRawPointer, capacity: Int) -> (produced: Int, step: BlockStep) {
        let out = output.assumingMemoryBound(to: UInt8.self)
        var produced = 0
        while true {
            switch phase {
            case .idle, .done, .failed:
                return (produced, .failed)
            case .streamHeader:
                guard let magic = readBits(24), magic == 0x425A68, let level = readBits(8),
                      level >= 0x31 && level <= 0x39 else { return fail(produced) }
                blockLimit = Int(level - 0x30) * 100_000
                phase = .blockHeader
            case .blockHeader:
                guard let high = readBits(24), let low = readBits(24) else { return fail(produced) }
                let magic = UInt64(high) << 24 | UInt64(low)
                if magic == 0x3141_5926_5359 {
                    guard decodeBlock() else { return fail(produced) }
                    phase = .output
                } else if magic == 0x1772_4538_5090 {
                    guard let stored = readBits(32), stored == combinedCRC,
                          (consumedBits + 7) >> 3 == inputCount else { return fail(produced) }
                    phase = .done
                    return (produced, .end)
                } else {
                    return fail(produced)
                }
            case .output:
                let start = out + produced
                let written = unRLE1(into: start, capacity: capacity - produced)
                blockCRC = CRC32.update(blockCRC, start, written)
                produced += written
                if pendingFill > 0 || blockPosition < blockLength { return (produced, .more) }
                // A run of four equal bytes must be followed by its count (libbz2 reads past the
                // block for it and reports corruption).
                guard equalRun < 4, ~blockCRC == storedBlockCRC else { return fail(produced) }
                combinedCRC = (combinedCRC << 1 | combinedCRC >> 31) ^ storedBlockCRC
                phase = .blockHeader
            }
        }
    }

    private func fail(_ produced: Int) -> (produced: Int, step: BlockStep) {
        phase = .failed
        return (produced, .failed)
    }

    // MARK: Bits

    private var consumedBits: Int { nextByte &* 8 &- bitCount }

    /// Tops the bit buffer up to at least 56 bits. Reads 8 bytes at `nextByte`, which stays within
    /// the slack as long as callers check `consumedBits` against the input often enough.
    @inline(__always)
    private static func refill(_ buffer: inout UInt64, _ count: inout Int, _ next: inout Int,
                               _ input: UnsafePointer<UInt8>) {
        let word = UInt64(bigEndian: UnsafeRawPointer(input + next).loadUnaligned(as: UInt64.self))
        buffer |= word &>> UInt64(count)
        next &+= (63 &- count) &>> 3
        count |= 56
    }

    /// Reads `n` (1...32) bits; nil past the end of the input.
    private func readBits(_ n: Int) -> UInt32? {
        Self.refill(&bitBuffer, &bitCount, &nextByte, input)
        let value = UInt32(truncatingIfNeeded: bitBuffer &>> UInt64(64 - n))
        bitBuffer &<<= UInt64(n)
        bitCount -= n
        return consumedBits <= inputCount &* 8 ? value : nil
    }

    private func readBit() -> Bool? {
        readBits(1).map { $0 != 0 }
    }

    // MARK: Block

    /// Decodes the block after its magic up to the inverse BWT; false where libbz2 fails.
    private func decodeBlock() -> Bool {
        guard let crc = readBits(32), let randomised = readBit(), let origin = readBits(24) else { return false }
        storedBlockCRC = crc
        let origPtr = Int(origin)

        // Which bytes occur: 16 bits for groups of 16, then 16 bits per group present.
        guard let groups = readBits(16) else { return false }
        var inUse = 0
        for group in 0..<16 where groups & (0x8000 >> UInt32(group)) != 0 {
            guard let bits = readBits(16) else { return false }
            for j in 0..<16 where bits & (0x8000 >> UInt32(j)) != 0 {
                symbolOfIndex[inUse] = UInt8(group * 16 + j)
                inUse += 1
            }
        }
        guard inUse > 0 else { return false }
        let alphabetSize = inUse + 2

        // Selectors, MTF-coded in unary.
        guard let tableCount = readBits(3), tableCount >= 2 && tableCount <= 6,
              let selectorCount = readBits(15), selectorCount >= 1 else { return false }
        let nGroups = Int(tableCount)
        // The MTF list of table numbers, entry i in byte i.
        var order: UInt64 = 0x05_0403_0201_00
        for i in 0..<Int(selectorCount) {
            var j = 0
            while true {
                guard let bit = readBit() else { return false }
                if !bit { break }
                j += 1
                if j >= nGroups { return false }
            }
            let shift = UInt64(j * 8)
            let value = (order >> shift) & 0xFF
            let below: UInt64 = (1 << shift) - 1
            order = (order & ~(below << 8 | 0xFF)) | (order & below) << 8 | value
            if i < Self.maxSelectors { selectors[i] = UInt8(value) }
        }
        let usableSelectors = min(Int(selectorCount), Self.maxSelectors)

        // Code lengths, delta-coded; libbz2 checks 1...20 before every bit it reads.
        for t in 0..<nGroups {
            guard var length = readBits(5) else { return false }
            for symbol in 0..<alphabetSize {
                while true {
                    guard length >= 1 && length <= 20, let more = readBit() else { return false }
                    if !more { break }
                    guard let down = readBit() else { return false }
                    length = down ? length - 1 : length + 1
                }
                codeLengths[symbol] = UInt8(length)
            }
            guard huffman.build(table: t, lengths: codeLengths, alphabetSize: alphabetSize) else { return false }
        }

        guard let length = decodeSymbols(endOfBlock: inUse + 1, selectorCount: usableSelectors),
              origPtr < length else { return false }

        // tt[i] = next << 8 | byte: byte i's successor in the output is the position its
        // occurrence of that byte has in sorted order (cumulative counts).
        var sum = 0
        for b in 0..<256 {
            let c = byteCounts[b]
            byteCounts[b] = sum
            sum += c
        }
        for i in 0..<length {
            let b = Int(tt[i] & 0xFF)
            let slot = byteCounts[b]
            byteCounts[b] = slot + 1
            tt[slot] |= UInt32(truncatingIfNeeded: i) << 8
        }
        let start = Int((tt[origPtr] >> 8) & InverseBWT.positionMask)
        inverse.run(tt: tt, count: length, start: start, into: block, interleaved: interleavedInverseBWT)
        if randomised { Randomisation.undo(block, count: length) }

        blockLength = length
        blockPosition = 0
        equalRun = 0
        runByte = 0
        pendingFill = 0
        blockCRC = 0xFFFF_FFFF
        return true
    }

    /// Huffman + RUNA/RUNB + MTF decoding into `tt[0 ..< length]` (one byte per entry) and
    /// `byteCounts`; the length, or nil where libbz2 fails.
    private func decodeSymbols(endOfBlock: Int, selectorCount: Int) -> Int? {
        let input = UnsafePointer(self.input)
        let limitBits = inputCount &* 8
        let tt = self.tt
        let mtf = self.mtf
        let symbolOfIndex = self.symbolOfIndex
        let byteCounts = self.byteCounts
        let fast = huffman.fast
        let blockLimit = self.blockLimit
        // The list holds the bytes themselves (libbz2 keeps indices into symbolOfIndex; the same
        // order), saving a load per symbol.
        mtf.copyMemory(from: symbolOfIndex, byteCount: 256)
        byteCounts.initialize(repeating: 0, count: 257)

        var buffer = bitBuffer, count = bitCount, next = nextByte
        defer { bitBuffer = buffer; bitCount = count; nextByte = next }
        var length = 0
        var run = 0          // pending RUNA/RUNB total
        var runWeight = 0    // log2 of the next RUNA weight
        var group = 0
        while true {
            guard group < selectorCount, next &* 8 &- count <= limitBits else { return nil }
            let table = Int(selectors[group])
            let lookup = fast + (table &<< HuffmanTables.fastBits)
            group += 1
            for _ in 0..<Self.groupSize {
                Self.refill(&buffer, &count, &next, input)
                let entry = lookup[Int(truncatingIfNeeded: buffer &>> UInt64(64 - HuffmanTables.fastBits))]
                var symbol = Int(entry &>> 4)
                var codeLength = Int(entry & 15)
                if codeLength == 0 {
                    guard let slow = huffman.decodeSlow(table: table, bits: UInt32(truncatingIfNeeded: buffer &>> 44))
                    else { return nil }
                    (symbol, codeLength) = slow
                }
                buffer &<<= UInt64(codeLength)
                count &-= codeLength
                if symbol <= 1 {
                    // RUNA adds 1 << runWeight, RUNB twice that; libbz2 caps the weight at 2^21.
                    guard runWeight < 21 else { return nil }
                    run &+= (symbol &+ 1) &<< runWeight
                    runWeight &+= 1
                    continue
                }
                if run > 0 {
                    guard run <= blockLimit &- length else { return nil }
                    let byte = mtf.load(as: UInt8.self)
                    byteCounts[Int(byte)] &+= run
                    (tt + length).initialize(repeating: UInt32(byte), count: run)
                    length &+= run
                    run = 0
                    runWeight = 0
                }
                if symbol == endOfBlock {
                    return next &* 8 &- count <= limitBits ? length : nil
                }
                // MTF index symbol - 1: at most endOfBlock - 2 = inUse - 1 <= 255.
                guard length < blockLimit else { return nil }
                let byte = Self.moveToFront(mtf, index: symbol &- 1)
                byteCounts[Int(byte)] &+= 1
                tt[length] = UInt32(byte)
                length &+= 1
            }
        }
    }

    /// Moves entry `index` (1...255) of the 256-byte, 16-byte-aligned MTF list to the front and
    /// returns it. Entries 0 ... 15, where most indices fall, are one aligned 128-bit word (entry i
    /// in byte i), shifted up a byte and always stored whole, so the next symbol's load forwards
    /// from the store. Past 16, 16-byte vectors move up from the top down. Every access stays
    /// within `list[0 ... max(index, 16)]`.
    @inline(__always)
    private static func moveToFront(_ list: UnsafeMutableRawPointer, index: Int) -> UInt8 {
        let head = list.load(as: UInt128.self)
        if index < 16 {
            let lane = UInt128(index &* 8)
            let value = UInt8(truncatingIfNeeded: head &>> lane)
            let moving = UInt128.max &>> (120 &- lane)  // entries 0 ... index
            list.storeBytes(of: (head & ~moving) | ((head &<< 8 | UInt128(value)) & moving), as: UInt128.self)
            return value
        }
        // Each load is below every store made so far; entries 0 ... 15 were loaded up front.
        let value = list.load(fromByteOffset: index, as: UInt8.self)
        var k = index &- 16
        while k > 0 {
            list.storeBytes(of: list.loadUnaligned(fromByteOffset: k, as: SIMD16<UInt8>.self), toByteOffset: k &+ 1,
                            as: SIMD16<UInt8>.self)
            k &-= 16
        }
        list.storeBytes(of: UInt8(truncatingIfNeeded: head &>> 120), toByteOffset: 16, as: UInt8.self)
        list.storeBytes(of: head &<< 8 | UInt128(value), as: UInt128.self)
        return value
    }

    // MARK: Output

    /// Undoes RLE1 (four equal bytes, then a count of further copies) from `block` into `out`,
    /// resuming mid-run across calls. Returns the bytes written.
    private func unRLE1(into out: UnsafeMutablePointer<UInt8>, capacity: Int) -> Int {
        var written = min(pendingFill, capacity)
        out.initialize(repeating: runByte, count: written)
        pendingFill -= written
        guard pendingFill == 0 else { return written }
        var position = blockPosition
        var equal = equalRun
        var last = runByte
        let length = blockLength
        let block = self.block
        while position < length && written < capacity {
            let c = block[position]
            position &+= 1
            if equal == 4 {
                equal = 0
                let fill = min(Int(c), capacity &- written)
                (out + written).initialize(repeating: last, count: fill)
                written &+= fill
                pendingFill = Int(c) &- fill
            } else {
                out[written] = c
                written &+= 1
                if c == last { equal &+= 1 } else { last = c; equal = 1 }
            }
        }
        blockPosition = position
        equalRun = equal
        runByte = last
        return written
    }
}
