// Bit-level helpers for bzip2 streams. Bits are numbered from the most significant bit of
// byte 0, as bzip2 writes them.

enum BZMagic {
    /// The 48-bit magic in front of every block (BCD pi).
    static let block: UInt64 = 0x3141_5926_5359
    /// The 48-bit end-of-stream magic (BCD sqrt(pi)), followed by the 32-bit combined CRC.
    static let endOfStream: UInt64 = 0x1772_4538_5090

    /// The most bits a real block of a stream of `level` can span, magic to next magic. A block
    /// holds at most `level * 100_000` bytes; at worst 20-bit codes for each (the format's maximum
    /// code length) plus the tables. Anything longer cannot be one block.
    static func maxBlockBits(level: Int) -> Int {
        level * 100_000 * 20 + 64 * 1024 * 8
    }
}

/// Reads `n` (at most 57) bits at `bitPos`, touching only the bytes that hold them.
@inline(__always)
func readBits(_ base: UnsafePointer<UInt8>, at bitPos: Int, count n: Int) -> UInt64 {
    let start = bitPos &>> 3
    let offset = bitPos & 7
    let bytes = (offset + n + 7) &>> 3
    var acc: UInt64 = 0
    var i = 0
    while i < bytes {
        acc = acc &<< 8 | UInt64(base[start + i])
        i += 1
    }
    return (acc &>> UInt64(bytes * 8 - offset - n)) & ((1 &<< UInt64(n)) &- 1)
}

/// Finds the block and end-of-stream magics at any bit offset.
///
/// For a magic starting at bit `k` of byte `p`, bytes `p+1 ... p+5` lie wholly inside it and take
/// one of 8 values per magic (one per `k`). Probing the byte pair at every fourth position hits
/// at least one pair inside those five bytes; a 64 Ki-entry table of the 64 pairs that occur in
/// the 16 patterns rejects almost every probe, so the scan costs about one lookup per 4 bytes.
enum MagicScanner {
    struct Pattern: Sendable {
        var full: UInt64      // bytes p+1 ... p+5
        var headMask: UInt8   // byte p: the magic's first 8-k bits are its low bits
        var head: UInt8
        var tailMask: UInt8   // byte p+6: the magic's last k bits are its high bits
        var tail: UInt8
        var shift: Int
        var endOfStream: Bool
    }

    /// Ordered by shift, then block before end-of-stream.
    static let patterns: [Pattern] = {
        var result: [Pattern] = []
        for k in 0..<8 {
            for (magic, eos) in [(BZMagic.block, false), (BZMagic.endOfStream, true)] {
                let full = (magic >> UInt64(k)) & 0xFF_FFFF_FFFF
                let headMask = UInt8((1 << (8 - k)) - 1)
                let head = UInt8(truncatingIfNeeded: magic >> UInt64(40 + k))
                let tailMask = k == 0 ? UInt8(0) : UInt8(truncatingIfNeeded: 0xFF << (8 - k))
                let tail = UInt8(truncatingIfNeeded: (magic & ((1 << UInt64(k)) - 1)) << UInt64(8 - k))
                result.append(Pattern(full: full, headMask: headMask, head: head, tailMask: tailMask,
                                      tail: tail, shift: k, endOfStream: eos))
            }
        }
        return result
    }()

    static let pairTable: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 65536)
        for pattern in patterns {
            for i in 0..<4 {
                let pair = Int((pattern.full >> UInt64(8 * (3 - i))) & 0xFFFF)
                table[pair] = 1
            }
        }
        return table
    }()

    /// The first magic starting at a bit position `>= fromBit` whose 7 bytes `p ... p+6` all lie in
    /// `base[0 ..< count]`. Every position whose byte `p <= count - 7` has been checked when this
    /// returns nil: a caller with more data goes on from bit `(count - 6) * 8`.
    static func find(in base: UnsafePointer<UInt8>, count: Int, from fromBit: Int) -> (bit: Int, endOfStream: Bool)? {
        let qStart = (fromBit >> 3) + 1
        let qEnd = count - 6
        guard qStart <= qEnd else { return nil }
        return pairTable.withUnsafeBufferPointer { table -> (bit: Int, endOfStream: Bool)? in
            patterns.withUnsafeBufferPointer { patterns -> (bit: Int, endOfStream: Bool)? in
                var j = qStart + 3
                while j - 3 <= qEnd {
                    let pair = Int(base[j]) &<< 8 | Int(base[j + 1])
                    if table[pair] != 0 {
                        var q = max(j - 3, qStart)
                        let qLast = min(j, qEnd)
                        while q <= qLast {
                            let value = readBits(base, at: q * 8, count: 40)
                            for pattern in patterns where pattern.full == value {
                                if base[q - 1] & pattern.headMask == pattern.head
                                    && base[q + 5] & pattern.tailMask == pattern.tail {
                                    let bit = (q - 1) * 8 + pattern.shift
                                    if bit >= fromBit { return (bit, pattern.endOfStream) }
                                }
                            }
                            q += 1
                        }
                    }
                    j += 4
                }
                return nil
            }
        }
    }
}

/// Appends bits to a buffer the caller sized (with 8 bytes to spare for whole-word stores).
struct BitWriter {
    let base: UnsafeMutablePointer<UInt8>
    private(set) var byteCount = 0
    private var acc: UInt64 = 0  // the low `accBits` bits are pending
    private var accBits = 0

    init(base: UnsafeMutablePointer<UInt8>) { self.base = base }

    /// Appends the low `n` (at most 32) bits of `value`.
    @inline(__always)
    mutating func put(_ value: UInt64, bits n: Int) {
        acc = acc &<< UInt64(n) | (value & ((1 &<< UInt64(n)) &- 1))
        accBits += n
        while accBits >= 8 {
            accBits -= 8
            base[byteCount] = UInt8(truncatingIfNeeded: acc &>> UInt64(accBits))
            byteCount += 1
        }
        acc &= (1 &<< UInt64(accBits)) &- 1
    }

    /// Appends `count` bits of `source` (which holds `sourceBytes` bytes) from bit `bitPos` on.
    mutating func copyBits(from source: UnsafePointer<UInt8>, sourceBytes: Int, bitPos: Int, count: Int) {
        var pos = bitPos
        var remaining = count
        let raw = UnsafeRawPointer(source)
        while remaining >= 64 && (pos >> 3) + 9 <= sourceBytes {
            let s = pos >> 3
            let offset = UInt64(pos & 7)
            let high = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: s, as: UInt64.self))
            let word = (high &<< offset) | (UInt64(source[s + 8]) &>> (8 &- offset))
            let out = accBits == 0 ? word : (acc &<< UInt64(64 - accBits)) | (word &>> UInt64(accBits))
            UnsafeMutableRawPointer(base + byteCount).storeBytes(of: out.bigEndian, as: UInt64.self)
            byteCount += 8
            acc = accBits == 0 ? 0 : word & ((1 &<< UInt64(accBits)) &- 1)
            pos += 64
            remaining -= 64
        }
        while remaining > 0 {
            let n = min(remaining, 32)
            put(readBits(source, at: pos, count: n), bits: n)
            pos += n
            remaining -= n
        }
    }

    /// Pads the last byte with zero bits.
    mutating func finish() {
        if accBits > 0 { put(0, bits: 8 - accBits) }
    }
}
