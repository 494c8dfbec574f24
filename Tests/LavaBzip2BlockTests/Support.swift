// Shared helpers: libbz2 as the reference (compressor and decoder), the decoder under test driven
// like the pipeline's Worker, lbzip2 run through the Reaper, and bit-level stream surgery.
import LavaBzip2Block
import CBzip2
import LavaSystem
import LavaTestSupport
#if canImport(Glibc)
import Glibc
#endif

enum Verdict: Equatable { case ok([UInt8]), failed }

/// libbz2 compression in-process.
func bzip2Compress(_ data: [UInt8], level: Int32 = 9) -> [UInt8] {
    var capacity = UInt32(data.count + data.count / 100 + 600)
    var out = [UInt8](repeating: 0, count: Int(capacity))
    var source = data.isEmpty ? [0] : data  // a valid pointer even for no data
    let result = out.withUnsafeMutableBytes { o in
        source.withUnsafeMutableBytes { s in
            BZ2_bzBuffToBuffCompress(o.baseAddress!.assumingMemoryBound(to: CChar.self), &capacity,
                                     s.baseAddress!.assumingMemoryBound(to: CChar.self),
                                     UInt32(data.count), level, 0, 30)
        }
    }
    precondition(result == BZ_OK)
    return Array(out[0..<Int(capacity)])
}

/// libbz2 decoding with the existing wrapper's verdict rules (BlockDecoder.step): the output only
/// counts if the stream ends with no input left.
func libbz2Decode(_ stream: [UInt8]) -> Verdict {
    var strm = bz_stream()
    guard BZ2_bzDecompressInit(&strm, 0, 0) == BZ_OK else { return .failed }
    defer { BZ2_bzDecompressEnd(&strm) }
    var output: [UInt8] = []
    let chunkSize = 256 * 1024
    var chunk = [UInt8](repeating: 0, count: chunkSize)
    var input = stream
    return input.withUnsafeMutableBytes { raw -> Verdict in
        strm.next_in = raw.baseAddress?.assumingMemoryBound(to: CChar.self)
        strm.avail_in = UInt32(raw.count)
        while true {
            let (result, produced, availOut) = chunk.withUnsafeMutableBytes { c -> (Int32, Int, UInt32) in
                strm.next_out = c.baseAddress!.assumingMemoryBound(to: CChar.self)
                strm.avail_out = UInt32(chunkSize)
                var result: Int32 = BZ_OK
                while true {
                    let before = (strm.avail_in, strm.avail_out)
                    result = BZ2_bzDecompress(&strm)
                    if result != BZ_OK || strm.avail_out == 0 || strm.avail_in == 0 { break }
                    if (strm.avail_in, strm.avail_out) == before { result = BZ_DATA_ERROR; break }
                }
                return (result, chunkSize - Int(strm.avail_out), strm.avail_out)
            }
            output.append(contentsOf: chunk[0..<produced])
            if result == BZ_STREAM_END { return strm.avail_in == 0 ? .ok(output) : .failed }
            guard result == BZ_OK, availOut == 0 else { return .failed }
        }
    }
}

/// The decoder under test, driven like the pipeline's Worker with `capacity`-byte chunks.
func swiftDecode(_ stream: [UInt8], decoder: SwiftBlockDecoder = SwiftBlockDecoder(), capacity: Int = 256 * 1024,
                 outputLimit: Int = 1 << 30) -> Verdict {
    var output: [UInt8] = []
    let chunk = UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 1), alignment: 16)
    defer { chunk.deallocate(); decoder.end() }
    let begun = stream.withUnsafeBytes { raw in
        decoder.begin(input: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, count: raw.count)
    }
    guard begun else { return .failed }
    while true {
        let (produced, step) = decoder.step(into: chunk, capacity: capacity)
        precondition(produced >= 0 && produced <= capacity)
        output.append(contentsOf: UnsafeRawBufferPointer(start: chunk, count: produced))
        precondition(output.count <= outputLimit, "output runs away")
        switch step {
        case .more: continue
        case .end: return .ok(output)
        case .failed: return .failed
        }
    }
}

/// Runs `tool arguments` with stdin from `input` and returns its stdout, through the test
/// process's one Reaper (which owns every wait).
func runFilter(_ tool: String, _ arguments: [String], input: [UInt8]) -> [UInt8] {
    let scratch = TemporaryDirectory("bzip2-filter")
    let inPath = scratch.sub("in"), outPath = scratch.sub("out")
    try! Files.writeAtomically(inPath, input)
    let stdinFD = open(inPath, O_RDONLY | O_CLOEXEC)
    let stdoutFD = open(outPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    precondition(stdinFD >= 0 && stdoutFD >= 0, "cannot open \(scratch.path)")
    guard let executable = ProcessEnvironment.findExecutable(tool, path: "/usr/local/bin:/usr/bin:/bin") else {
        preconditionFailure("\(tool) is not installed (scripts/install-deps.sh installs it)")
    }
    var request = SpawnRequest(executable: executable, arguments: arguments, environment: ["PATH=/usr/local/bin:/usr/bin:/bin"])
    request.standardInput = stdinFD
    request.standardOutput = stdoutFD
    let pid = try! Reaper.shared.spawn(request)
    close(stdinFD)
    close(stdoutFD)
    let status = Reaper.shared.wait(pid)
    precondition(status.isSuccess, "\(tool) failed: \(status)")
    return (try? Files.read(outPath)).flatMap { $0 } ?? []
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
struct Random {
    var state: UInt64
    init(seed: UInt64) { state = seed | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next() >> 24) } }
    /// Text-like bytes: words from a small vocabulary, so the data compresses like source code.
    mutating func text(_ n: Int) -> [UInt8] {
        let words = ["func", "let", "var", "return", "if", "else", "for", "in", "while", "struct", "class",
                     "import", "the", "of", "and", "to", "{", "}", "(", ")", "\n", "    ", "=", "+", "0", "1"]
        var out: [UInt8] = []
        while out.count < n {
            out += Array(words[Int(next() % UInt64(words.count))].utf8)
            out.append(next() % 5 == 0 ? 10 : 32)
        }
        return Array(out[0..<n])
    }
}

// MARK: Bit surgery

struct Bits {
    var bits: [Bool]
    init(_ bytes: [UInt8]) { bits = bytes.flatMap { b in (0..<8).map { b & (0x80 >> $0) != 0 } } }
    func value(at position: Int, count: Int) -> UInt64 {
        (0..<count).reduce(0) { $0 << 1 | (bits[position + $1] ? 1 : 0) }
    }
    mutating func set(_ value: UInt64, at position: Int, count: Int) {
        for i in 0..<count { bits[position + i] = (value >> UInt64(count - 1 - i)) & 1 != 0 }
    }
    /// The bytes, zero-padded.
    var bytes: [UInt8] {
        stride(from: 0, to: bits.count, by: 8).map { start in
            (0..<8).reduce(UInt8(0)) { $0 << 1 | (start + $1 < bits.count && bits[start + $1] ? 1 : 0) }
        }
    }
    /// Bit position of the last end-of-stream magic.
    var endOfStreamMagic: Int {
        var p = bits.count - 48
        while p >= 0 && value(at: p, count: 48) != 0x1772_4538_5090 { p -= 1 }
        precondition(p >= 0)
        return p
    }
}

/// Header fields of the first block: where `nGroups` sits and its value.
func firstBlockSelectorsField(_ stream: Bits) -> (groupsAt: Int, groups: Int) {
    var p = 32 + 48 + 32 + 1 + 24
    let groups16 = stream.value(at: p, count: 16)
    p += 16 + 16 * groups16.nonzeroBitCount
    return (p, Int(stream.value(at: p, count: 3)))
}

/// libbz2's CRC, bit by bit (independent of the decoder's table code).
func referenceCRC(_ data: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in data {
        crc ^= UInt32(byte) << 24
        for _ in 0..<8 { crc = crc & 0x8000_0000 != 0 ? (crc << 1) ^ 0x04C1_1DB7 : crc << 1 }
    }
    return ~crc
}
