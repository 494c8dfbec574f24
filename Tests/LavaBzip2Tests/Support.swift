import Foundation
@testable import LavaBzip2

import LavaSystem
import LavaTestSupport

/// An in-memory input read in uneven pieces, to cross every boundary the reader has.
final class MemoryStream: ByteStream {
    let bytes: [UInt8]
    private var offset = 0
    private var rng: SplitMix
    /// Fails with `failure` once this many bytes have been read.
    let failAfter: Int?
    let failure: LavaError
    private(set) var reads = 0

    init(_ bytes: [UInt8], seed: UInt64 = 1, failAfter: Int? = nil,
         failure: LavaError = LavaError(.system, "read s3://bucket/key: Connection reset by peer")) {
        self.bytes = bytes
        self.rng = SplitMix(seed: seed)
        self.failAfter = failAfter
        self.failure = failure
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(LavaError) -> Int {
        reads += 1
        if let failAfter, offset >= failAfter { throw failure }
        var n = min(buffer.count, bytes.count - offset, 1 + Int(rng.next() % 300_000))
        if let failAfter { n = min(n, failAfter - offset) }
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
        offset += n
        return n
    }
}

/// A file read with read(2).
final class FileStream: ByteStream {
    let fd: Int32
    init(path: String) { fd = open(path, O_RDONLY) }
    deinit { close(fd) }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(LavaError) -> Int {
        let n = Foundation.read(fd, buffer.baseAddress, buffer.count)
        if n < 0 { throw LavaError.errno("read") }
        return n
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum Fixtures {
    private static let scratch = TemporaryDirectory("bzip2")
    static var directory: String { scratch.path }

    /// Text lines, random bytes and runs, mixed: like a tar of sources and binaries.
    static func mixed(count: Int, seed: UInt64, textOnly: Bool = false) -> [UInt8] {
        let words = ["import", "return", "self", "func", "let", "var", "lava", "worker", "release",
                     "the", "of", "bzip2", "block", "stream", "{", "}", "(", ")", "=", "0", "42", "\n"]
            .map { Array($0.utf8) }
        var rng = SplitMix(seed: seed)
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            switch textOnly ? 0 : rng.next() % 10 {
            case 0..<6:
                for _ in 0..<(200 + Int(rng.next() % 4000)) {
                    out += words[Int(rng.next() % UInt64(words.count))]
                    out.append(0x20)
                }
            case 6..<9:
                for _ in 0..<(100 + Int(rng.next() % 4000)) {
                    let value = rng.next()
                    withUnsafeBytes(of: value) { out += $0 }
                }
            default:
                out += [UInt8](repeating: UInt8(truncatingIfNeeded: rng.next()), count: 1 + Int(rng.next() % 3000))
            }
        }
        return Array(out.prefix(count))
    }

    /// Runs a shell command through the process's one Reaper (never a second `waitpid`);
    /// fails the caller on a non-zero status.
    static func shell(_ command: String) throws {
        var output = [String]()
        let result = try Subprocess.run(SpawnRequest(executable: "/bin/sh", arguments: ["-c", command],
                                                     environment: ["PATH=/usr/local/bin:/usr/bin:/bin"])) { output.append($0) }
        guard result.status.isSuccess else {
            throw LavaError(.process, "`\(command)` failed (\(result.status)): \(output.suffix(5).joined(separator: "; "))")
        }
    }

    static func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = directory + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func read(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// `data` compressed by a command reading stdin (`bzip2 -9`, `lbzip2 -n 2`...).
    static func compress(_ data: [UInt8], with command: String, name: String) throws -> [UInt8] {
        let input = try write(data, name)
        defer { try? FileManager.default.removeItem(atPath: input) }
        try shell("\(command) < '\(input)' > '\(input).bz2' && rm '\(input)'")
        defer { try? FileManager.default.removeItem(atPath: input + ".bz2") }
        return try read(input + ".bz2")
    }

    /// What the system's bzip2 makes of `compressed`.
    static func reference(_ compressed: [UInt8], name: String) throws -> [UInt8] {
        let input = try write(compressed, name + ".bz2")
        defer {
            try? FileManager.default.removeItem(atPath: input)
            try? FileManager.default.removeItem(atPath: input + ".out")
        }
        try shell("bzip2 -dc < '\(input)' > '\(input).out'")
        return try read(input + ".out")
    }
}

/// Decodes everything; output so far and the error, if any.
func decodeAll(_ compressed: [UInt8], threads: Int? = nil, falseCuts: [Int] = [], seed: UInt64 = 1,
               maxBufferedBytes: Int = 16 << 20) -> (output: [UInt8], error: LavaError?) {
    let decoder = ParallelBzip2Decoder(source: MemoryStream(compressed, seed: seed), threads: threads,
                                       maxBufferedBytes: maxBufferedBytes, onCompressedBytes: nil, falseCuts: falseCuts)
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 100_000)
    var rng = SplitMix(seed: seed &+ 7)
    do {
        while true {
            let size = 1 + Int(rng.next() % UInt64(buffer.count))
            let n = try buffer.withUnsafeMutableBytes { raw throws(LavaError) in
                try decoder.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<size]))
            }
            if n == 0 { return (output, nil) }
            output += buffer[0..<n]
        }
    } catch {
        return (output, error as? LavaError ?? LavaError(.system, "not a LavaError: \(error)"))
    }
}

/// Bit offsets of the block and end-of-stream magics in a whole compressed file.
func magics(in compressed: [UInt8]) -> [(bit: Int, endOfStream: Bool)] {
    var found: [(bit: Int, endOfStream: Bool)] = []
    compressed.withUnsafeBufferPointer { buffer in
        var from = 0
        while let hit = MagicScanner.find(in: buffer.baseAddress!, count: buffer.count, from: from) {
            found.append(hit)
            from = hit.bit + 1
        }
    }
    return found
}

func flipBit(_ bytes: inout [UInt8], _ bit: Int) {
    bytes[bit / 8] ^= 0x80 >> UInt8(bit % 8)
}

/// Threads of this process whose name starts with `prefix`.
func threadsNamed(_ prefix: String) -> Int {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    return tasks.filter { task in
        let comm = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? ""
        return comm.hasPrefix(prefix)
    }.count
}
