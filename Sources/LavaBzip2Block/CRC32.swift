// bzip2's CRC-32: polynomial 0x04C11DB7, bits taken MSB first, initial value and final XOR
// 0xFFFFFFFF. Computed over whole output chunks with slicing-by-8 rather than per byte in the
// un-RLE1 loop.

/// Slicing-by-8 tables, 8 x 256 entries: `table[k * 256 + b]` is the CRC contribution of byte `b`
/// followed by `k` zero bytes.
let crcTables: [UInt32] = {
    var table = [UInt32](repeating: 0, count: 8 * 256)
    for b in 0..<256 {
        var c = UInt32(b) << 24
        for _ in 0..<8 { c = c & 0x8000_0000 != 0 ? (c << 1) ^ 0x04C1_1DB7 : c << 1 }
        table[b] = c
    }
    for k in 1..<8 {
        for b in 0..<256 {
            let previous = table[(k - 1) * 256 + b]
            table[k * 256 + b] = (previous << 8) ^ table[Int(previous >> 24)]
        }
    }
    return table
}()

enum CRC32 {
    /// Continues `crc` (not yet complemented) over `count` bytes at `bytes`.
    static func update(_ crc: UInt32, _ bytes: UnsafePointer<UInt8>, _ count: Int) -> UInt32 {
        crcTables.withUnsafeBufferPointer { tables in
            let t = tables.baseAddress!
            var crc = crc
            var p = bytes
            var remaining = count
            while remaining >= 8 {
                let high = UInt32(bigEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt32.self)) ^ crc
                let low = UInt32(bigEndian: UnsafeRawPointer(p + 4).loadUnaligned(as: UInt32.self))
                crc = t[7 * 256 + Int(high >> 24)] ^ t[6 * 256 + Int((high >> 16) & 0xFF)]
                    ^ t[5 * 256 + Int((high >> 8) & 0xFF)] ^ t[4 * 256 + Int(high & 0xFF)]
                    ^ t[3 * 256 + Int(low >> 24)] ^ t[2 * 256 + Int((low >> 16) & 0xFF)]
                    ^ t[1 * 256 + Int((low >> 8) & 0xFF)] ^ t[Int(low & 0xFF)]
                p += 8
                remaining -= 8
            }
            while remaining > 0 {
                crc = (crc << 8) ^ t[Int((crc >> 24) ^ UInt32(p.pointee))]
                p += 1
                remaining -= 1
            }
            return crc
        }
    }
}
