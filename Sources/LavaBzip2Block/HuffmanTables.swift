// The Huffman decoding tables of one block: up to 6 coding tables over an alphabet of at most 258
// symbols (RUNA, RUNB, up to 255 MTF values, EOB), code lengths 1...20.
//
// Decoding must accept exactly what libbz2 accepts, and libbz2 does not check that a code is
// complete or not over-subscribed: it assigns canonical codes in (length, symbol) order and
// decodes with `limit`/`base`/`perm` arrays (BZ2_hbCreateDecodeTables and GET_MTF_VAL). These
// tables keep those three arrays for codes longer than `fastBits` and, for speed, a lookup table
// indexed by the next `fastBits` bits that gives what that walk would give for every code of at
// most `fastBits` bits. An over-subscribed code's unreachable codewords are left out, and bit
// patterns no code of at most `fastBits` bits matches fall back to the walk, so both paths decode
// exactly as libbz2 does.

struct HuffmanTables: ~Copyable {
    static let maxTables = 6
    static let maxAlphabet = 258
    static let maxCodeLength = 20
    /// Bits looked up at once. An entry is `symbol << 4 | length`, length 0 meaning "longer code".
    static let fastBits = 10
    /// libbz2's BZ_MAX_CODE_LEN: the size of its `limit` and `base` arrays.
    private static let limitCount = 23

    /// `maxTables` tables of `1 << fastBits` entries: an index is a table number < 6 times the
    /// table size plus a `fastBits`-bit pattern, in range whatever the input.
    let fast: UnsafeMutablePointer<UInt16>
    private let limit: UnsafeMutablePointer<Int32>
    private let base: UnsafeMutablePointer<Int32>
    private let perm: UnsafeMutablePointer<UInt16>
    private let minLength: UnsafeMutablePointer<Int>
    private var alphabetSize = 0

    init() {
        fast = .allocate(capacity: Self.maxTables << Self.fastBits)
        limit = .allocate(capacity: Self.maxTables * Self.limitCount)
        base = .allocate(capacity: Self.maxTables * Self.limitCount)
        perm = .allocate(capacity: Self.maxTables * Self.maxAlphabet)
        minLength = .allocate(capacity: Self.maxTables)
        perm.initialize(repeating: 0, count: Self.maxTables * Self.maxAlphabet)
    }

    deinit {
        fast.deallocate()
        limit.deallocate()
        base.deallocate()
        perm.deallocate()
        minLength.deallocate()
    }

    /// Builds table `t` from `lengths[0 ..< alphabetSize]`, each already checked to be 1...20.
    /// Returns false only if a codeword would map outside the alphabet, which the canonical
    /// assignment rules out; the check keeps `perm` reads in range by construction.
    mutating func build(table t: Int, lengths: UnsafePointer<UInt8>, alphabetSize: Int) -> Bool {
        self.alphabetSize = alphabetSize
        var minLen = 32, maxLen = 0
        for i in 0..<alphabetSize {
            minLen = min(minLen, Int(lengths[i]))
            maxLen = max(maxLen, Int(lengths[i]))
        }
        let limit = self.limit + t * Self.limitCount
        let base = self.base + t * Self.limitCount
        let perm = self.perm + t * Self.maxAlphabet
        minLength[t] = minLen

        // BZ2_hbCreateDecodeTables, step by step.
        var pp = 0
        for length in minLen...maxLen {
            for symbol in 0..<alphabetSize where Int(lengths[symbol]) == length {
                perm[pp] = UInt16(symbol)
                pp += 1
            }
        }
        for i in 0..<Self.limitCount { base[i] = 0; limit[i] = 0 }
        for symbol in 0..<alphabetSize { base[Int(lengths[symbol]) + 1] += 1 }
        for i in 1..<Self.limitCount { base[i] += base[i - 1] }
        var vec: Int32 = 0
        for length in minLen...maxLen {
            vec += base[length + 1] - base[length]
            limit[length] = vec - 1
            vec <<= 1
        }
        if minLen < maxLen {
            for length in (minLen + 1)...maxLen {
                base[length] = ((limit[length - 1] + 1) << 1) - base[length]
            }
        }

        // The lookup table: codewords of length `length` are those `length`-bit prefixes the walk
        // reaches (at least `(limit[length - 1] + 1) << 1`) and accepts (at most `limit[length]`).
        let fast = self.fast + (t << Self.fastBits)
        fast.initialize(repeating: 0, count: 1 << Self.fastBits)
        var first = 0
        for length in stride(from: minLen, through: min(maxLen, Self.fastBits), by: 1) {
            let last = min(Int(limit[length]), (1 << length) - 1)
            if first <= last {
                for code in first...last {
                    let index = code - Int(base[length])
                    guard index >= 0 && index < alphabetSize else { return false }
                    let entry = perm[index] << 4 | UInt16(length)
                    let shift = Self.fastBits - length
                    (fast + (code << shift)).initialize(repeating: entry, count: 1 << shift)
                }
            }
            first = (Int(limit[length]) + 1) << 1
        }
        return true
    }

    /// libbz2's GET_MTF_VAL walk for table `t` over `bits`, the next 20 input bits (MSB first):
    /// the symbol and its code length, or nil where libbz2 reports a data error.
    @inline(never)
    func decodeSlow(table t: Int, bits: UInt32) -> (symbol: Int, length: Int)? {
        let limit = self.limit + t * Self.limitCount
        let base = self.base + t * Self.limitCount
        var length = minLength[t]
        while length <= Self.maxCodeLength {
            let code = Int32(bits >> UInt32(Self.maxCodeLength - length))
            if code <= limit[length] {
                let index = Int(code - base[length])
                guard index >= 0 && index < alphabetSize else { return nil }
                return (Int(perm[t * Self.maxAlphabet + index]), length)
            }
            length += 1
        }
        return nil
    }
}
