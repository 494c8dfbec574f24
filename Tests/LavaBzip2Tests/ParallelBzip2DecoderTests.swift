import Foundation
import LavaTestSupport
import Testing
@testable import LavaBzip2

import LavaSystem

/// Serialized: the thread and memory checks watch the whole process.
@Suite(.serialized)
struct ParallelBzip2DecoderTests {
    static let mixed20MB = Fixtures.mixed(count: 20_000_000, seed: 20)
    static let mixed3MB = Fixtures.mixed(count: 3_000_000, seed: 3)

    /// However many cores, an install decodes on at most as many threads as its memory test
    /// measures (AWSInstallTests.anS3InstallStaysInBoundedMemory sets 4).
    @Test func defaultThreadsAreBoundedForMemory() {
        #expect(ParallelBzip2Decoder.maximumDefaultThreads == 4)
        if getenv("LAVA_BOOT_DECODE_THREADS") == nil {
            #expect((2...ParallelBzip2Decoder.maximumDefaultThreads).contains(ParallelBzip2Decoder.defaultThreads))
        }
    }

    // MARK: Equal to bzip2 -dc

    @Test func emptyStream() throws {
        let compressed = try Fixtures.compress([], with: "bzip2 -9", name: "empty")
        #expect(compressed.count == 14)
        let result = decodeAll(compressed)
        #expect(result.error == nil)
        #expect(result.output == (try Fixtures.reference(compressed, name: "empty")))
        #expect(result.output.isEmpty)
    }

    @Test func tinyBlock() throws {
        let data = Array("hello, lava\n".utf8)
        let compressed = try Fixtures.compress(data, with: "bzip2 -9", name: "tiny")
        let start = Clock.monotonicSeconds()
        let result = decodeAll(compressed)
        let elapsed = Clock.monotonicSeconds() - start
        #expect(result.error == nil)
        #expect(result.output == data)
        #expect(result.output == (try Fixtures.reference(compressed, name: "tiny")))
        print("one tiny block decoded in \(Int(elapsed * 1e6)) µs")
    }

    @Test(arguments: ["bzip2 -9", "bzip2 -1"])
    func manyBlocks(command: String) throws {
        let data = Self.mixed20MB
        let name = "many" + command.filter(\.isNumber)
        let compressed = try Fixtures.compress(data, with: command, name: name)
        #expect(magics(in: compressed).count > 20)
        let reference = try Fixtures.reference(compressed, name: name)
        #expect(reference == data)
        for threads in [2, 3] {
            let result = decodeAll(compressed, threads: threads, seed: UInt64(threads))
            #expect(result.error == nil)
            #expect(result.output == reference)
        }
    }

    @Test func lbzip2Output() throws {
        let data = Self.mixed20MB
        let compressed = try Fixtures.compress(data, with: "lbzip2 -9 -n 2", name: "lbzip2")
        let result = decodeAll(compressed)
        #expect(result.error == nil)
        #expect(result.output == (try Fixtures.reference(compressed, name: "lbzip2")))
    }

    @Test func concatenatedStreams() throws {
        let a = Self.mixed3MB
        let b = Fixtures.mixed(count: 1_500_000, seed: 15)
        let parts = [
            try Fixtures.compress(a, with: "bzip2 -1", name: "cat-a"),
            try Fixtures.compress([], with: "bzip2 -5", name: "cat-empty"),
            try Fixtures.compress(b, with: "lbzip2 -9", name: "cat-b"),
            try Fixtures.compress(Array("tail\n".utf8), with: "bzip2 -3", name: "cat-tail"),
        ]
        let compressed = parts.flatMap { $0 }
        let reference = try Fixtures.reference(compressed, name: "cat")
        #expect(reference == a + b + Array("tail\n".utf8))
        let result = decodeAll(compressed)
        #expect(result.error == nil)
        #expect(result.output == reference)
    }

    @Test func trailingZerosAreIgnored() throws {
        let compressed = try Fixtures.compress(Self.mixed3MB, with: "bzip2 -9", name: "zeros")
        let result = decodeAll(compressed + [UInt8](repeating: 0, count: 700))
        #expect(result.error == nil)
        #expect(result.output == Self.mixed3MB)
    }

    // MARK: Chance magics

    /// Cuts where no magic is, as a chance pattern in compressed data would: in a block's magic,
    /// in its header, in the middle, just before the next magic, twice in one block, and in the
    /// first and last blocks. The output must still be exact.
    @Test(arguments: [1, 2, 3])
    func falseBoundariesAreJoined(threads: Int) throws {
        let compressed = try Fixtures.compress(Self.mixed3MB, with: "bzip2 -1", name: "cuts")
        let found = magics(in: compressed)
        let blocks = found.filter { !$0.endOfStream }.map(\.bit)
        let eos = try #require(found.last { $0.endOfStream }).bit
        #expect(blocks.count > 8)
        let ends = Array(blocks.dropFirst()) + [eos]
        var cuts: [Int] = []
        cuts.append(blocks[0] + 1)                          // inside the first magic
        cuts.append(blocks[1] + 60)                         // inside the block CRC
        cuts.append((blocks[2] + ends[2]) / 2)              // the middle
        cuts.append(ends[3] - 1)                            // one bit before the next magic
        cuts += [blocks[4] + 3000, blocks[4] + 9001, ends[4] - 200]  // three in one block
        cuts.append((blocks[blocks.count - 1] + eos) / 2)   // the last block
        let result = decodeAll(compressed, threads: threads, falseCuts: cuts, seed: UInt64(threads))
        #expect(result.error == nil)
        #expect(result.output == Self.mixed3MB)
    }

    /// A block of highly repetitive data is too big to hold: it is verified, then streamed.
    /// A chance cut in it still decodes right.
    @Test func falseBoundaryInLargeBlock() throws {
        var data: [UInt8] = []
        var rng = SplitMix(seed: 9)
        while data.count < 30_000_000 {
            data += [UInt8](repeating: UInt8(truncatingIfNeeded: rng.next()), count: 20_000)
            data += Array("run \(data.count)\n".utf8)
        }
        let compressed = try Fixtures.compress(data, with: "bzip2 -9", name: "large")
        let blocks = magics(in: compressed).filter { !$0.endOfStream }.map(\.bit)
        #expect(blocks.count == 1)
        let result = decodeAll(compressed, threads: 2, falseCuts: [blocks[0] + 5000], maxBufferedBytes: 4 << 20)
        #expect(result.error == nil)
        #expect(result.output == data)
    }

    /// Small budgets, many threads, large and small blocks and chance cuts together: the
    /// scheduling must neither deadlock nor reorder.
    @Test(.timeLimit(.minutes(3)))
    func stressSchedules() throws {
        var data: [UInt8] = []
        var rng = SplitMix(seed: 31)
        for i in 0..<6 {
            data += Fixtures.mixed(count: 700_000, seed: UInt64(i))
            while data.count < (i + 1) * 8_000_000 {
                data += [UInt8](repeating: UInt8(truncatingIfNeeded: rng.next()), count: 30_000)
            }
        }
        let compressed = try Fixtures.compress(data, with: "bzip2 -9", name: "stress")
        let blocks = magics(in: compressed).filter { !$0.endOfStream }.map(\.bit)
        #expect(blocks.count >= 6)
        let cuts = stride(from: 0, to: blocks.count, by: 2).map { blocks[$0] + 4096 }
        for threads in [1, 2, 4] {
            for budget in [1 << 20, 16 << 20] {
                for falseCuts in [[], cuts] {
                    let result = decodeAll(compressed, threads: threads, falseCuts: falseCuts,
                                           seed: UInt64(threads * budget), maxBufferedBytes: budget)
                    #expect(result.error == nil)
                    #expect(result.output == data, "threads \(threads), budget \(budget), cuts \(falseCuts.count)")
                }
            }
        }
    }

    // MARK: Damage

    @Test func corruptedDataIsAnErrorNeverWrongOutput() throws {
        let data = Self.mixed3MB
        let compressed = try Fixtures.compress(data, with: "bzip2 -1", name: "corrupt")
        var rng = SplitMix(seed: 77)
        for round in 0..<12 {
            var damaged = compressed
            let bits = compressed.count * 8
            let bit = bits / 4 + Int(rng.next() % UInt64(bits / 2))
            flipBit(&damaged, bit)
            if round % 3 == 0 { flipBit(&damaged, bit + 1 + Int(rng.next() % 64)) }
            let result = decodeAll(damaged, threads: 2, seed: UInt64(round))
            let error = try #require(result.error, "bit \(bit) flipped, no error")
            #expect(error.code == .corruptBzip2)
            #expect(result.output == Array(data.prefix(result.output.count)), "wrong bytes before: \(error)")
            #expect(result.output.count < data.count)
        }
    }

    @Test func corruptBlockIsNamed() throws {
        let compressed = try Fixtures.compress(Self.mixed3MB, with: "bzip2 -1", name: "named")
        let blocks = magics(in: compressed).filter { !$0.endOfStream }.map(\.bit)
        var damaged = compressed
        flipBit(&damaged, (blocks[3] + blocks[4]) / 2)
        let result = decodeAll(damaged, threads: 2)
        #expect(result.error?.message == "corrupt bzip2 data in block 4")
    }

    @Test func truncatedInputIsAnError() throws {
        let data = Self.mixed3MB
        let compressed = try Fixtures.compress(data, with: "bzip2 -1", name: "truncated")
        for length in [compressed.count / 2, compressed.count - 1, compressed.count - 9, 3] {
            let result = decodeAll(Array(compressed.prefix(length)))
            let error = try #require(result.error, "cut at \(length), no error")
            #expect(error.message.hasPrefix("truncated bzip2 stream"), "\(error)")
            #expect(result.output == Array(data.prefix(result.output.count)))
        }
        #expect(decodeAll([]).error?.message.hasPrefix("truncated bzip2 stream") == true)
    }

    @Test func streamCRCMismatchIsAnError() throws {
        let data = Self.mixed3MB
        let compressed = try Fixtures.compress(data, with: "bzip2 -1", name: "crc")
        let eos = try #require(magics(in: compressed).last { $0.endOfStream }).bit
        var damaged = compressed
        flipBit(&damaged, eos + 48 + 7)
        let result = decodeAll(damaged)
        #expect(result.error?.message == "bzip2 stream CRC mismatch")
        #expect(result.output == data)  // every block is sound; only the trailer disagrees
    }

    @Test func garbageAfterTheStreamIsAnError() throws {
        let compressed = try Fixtures.compress(Self.mixed3MB, with: "bzip2 -9", name: "garbage")
        let result = decodeAll(compressed + Array("garbage".utf8))
        #expect(result.error?.message.hasPrefix("unexpected data after the end of the bzip2 stream") == true)
        let zerosThenGarbage = decodeAll(compressed + [0, 0, 0, 1])
        #expect(zerosThenGarbage.error?.code == .corruptBzip2)
    }

    @Test func notBzip2IsAnError() {
        let result = decodeAll(Array("hello world, this is not bzip2".utf8))
        #expect(result.error?.message == "not bzip2 data (no BZh header)")
    }

    @Test func inputErrorPropagatesUnchanged() throws {
        let compressed = try Fixtures.compress(Self.mixed3MB, with: "bzip2 -1", name: "input-error")
        let failure = LavaError(.system, "read s3://bucket/lava.tar.bz2: Connection reset by peer")
        let decoder = ParallelBzip2Decoder(source: MemoryStream(compressed, failAfter: compressed.count / 2, failure: failure))
        var buffer = [UInt8](repeating: 0, count: 65536)
        var total = 0
        #expect(throws: failure) {
            while true {
                let n = try buffer.withUnsafeMutableBytes { raw throws(LavaError) in try decoder.read(into: raw) }
                if n == 0 { break }
                total += n
            }
        }
        #expect(total < Self.mixed3MB.count)
        // The error stays.
        #expect(throws: failure) {
            _ = try buffer.withUnsafeMutableBytes { raw throws(LavaError) in try decoder.read(into: raw) }
        }
    }

    @Test func progressCountsCompressedBytes() throws {
        let compressed = try Fixtures.compress(Self.mixed3MB, with: "bzip2 -9", name: "progress")
        var reported = 0
        let decoder = ParallelBzip2Decoder(source: MemoryStream(compressed), onCompressedBytes: { reported += $0 })
        var buffer = [UInt8](repeating: 0, count: 65536)
        while try buffer.withUnsafeMutableBytes({ raw throws(LavaError) in try decoder.read(into: raw) }) > 0 {}
        #expect(reported == compressed.count)
    }

    // MARK: Threads and memory

    @Test func droppingEarlyEndsTheThreads() throws {
        let compressed = try Fixtures.compress(Self.mixed20MB, with: "bzip2 -9", name: "drop")
        let before = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count
        var prefix = ""
        do {
            let decoder = ParallelBzip2Decoder(source: MemoryStream(compressed), threads: 3)
            prefix = "bz2-\(decoder.id)-"
            var buffer = [UInt8](repeating: 0, count: 1000)
            let n = try buffer.withUnsafeMutableBytes { raw throws(LavaError) in try decoder.read(into: raw) }
            #expect(n > 0)
            #expect(threadsNamed(prefix) == 4)
        }
        #expect(threadsNamed(prefix) == 0)
        let after = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count
        print("threads in /proc/self/task: \(before) before, \(after) after dropping the decoder")
        // An idle decoder, never read, also stops.
        do {
            let decoder = ParallelBzip2Decoder(source: MemoryStream(compressed))
            prefix = "bz2-\(decoder.id)-"
        }
        #expect(threadsNamed(prefix) == 0)
    }

    /// 200 MB of highly repetitive data (blocks of up to ~45 MB of output) and some text.
    @Test func memoryStaysBounded() throws {
        let path = Fixtures.directory + "/memory"
        let chunk = 1 << 20
        do {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            guard let file = FileHandle(forWritingAtPath: path) else { throw LavaError(.system, "cannot write \(path)") }
            var rng = SplitMix(seed: 200)
            let text = Fixtures.mixed(count: chunk, seed: 201, textOnly: true)
            for i in 0..<200 {
                var piece: [UInt8]
                if i % 16 == 15 {
                    piece = text
                    piece[0] = UInt8(i)
                } else {
                    piece = []
                    while piece.count < chunk {
                        piece += [UInt8](repeating: UInt8(truncatingIfNeeded: rng.next()), count: 20_000 + Int(rng.next() % 60_000))
                    }
                    piece = Array(piece.prefix(chunk))
                }
                file.write(Data(piece))
            }
            try file.close()
        }
        try Fixtures.shell("sha256sum < '\(path)' | cut -d' ' -f1 > '\(path).sha256' && bzip2 -9 < '\(path)' > '\(path).bz2' && rm '\(path)'")
        defer { try? FileManager.default.removeItem(atPath: path + ".bz2") }
        let expectedDigest = try String(contentsOfFile: path + ".sha256", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)

        // Measured in a process of its own (the bench harness), not in this test process,
        // whose high-water mark every suite running beside it moves.
        let measured = PeakMemory.run(PackageExecutable.path("lava-bzip2-decode"), [], input: path + ".bz2")
        #expect(measured.exitCode == 0)
        #expect(measured.outputSHA256 == expectedDigest, "decoded byte for byte")
        #expect(measured.peakKiB < 64 * 1024, "peak RSS \(measured.peakKiB) KiB while decoding 200 MB")
    }
}
