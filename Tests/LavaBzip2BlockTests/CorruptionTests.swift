// Corrupted, truncated and hand-made streams: the verdict must be libbz2's, and nothing may crash
// or hang.
import Testing
import CBzip2
@testable import LavaBzip2Block
#if canImport(Glibc)
import Glibc
#endif

/// bit 0 toggles of the pre-BWT block, as libbz2's BZ_RAND_MASK applies them (a separate
/// implementation from the decoder's).
func randomisationMask(_ count: Int) -> [UInt8] {
    var mask = [UInt8](repeating: 0, count: count)
    var toGo: Int32 = 0, position = 0
    let table = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "BZ2_rNums")!.assumingMemoryBound(to: Int32.self)
    for i in 0..<count {
        if toGo == 0 { toGo = table[position]; position = (position + 1) % 512 }
        toGo -= 1
        if toGo == 1 { mask[i] = 1 }
    }
    return mask
}

/// `data` with no three equal bytes in a row, so that toggling bit 0 here and there rarely makes four.
func withoutRuns(_ data: [UInt8]) -> [UInt8] {
    var data = data
    for i in 2..<max(data.count, 2) where data[i] == data[i - 1] && data[i] == data[i - 2] {
        data[i] = data[i] == 0x2E ? 0x2C : 0x2E
    }
    return data
}

func hasRunOfFour(_ data: [UInt8]) -> Bool {
    var equal = 0
    for i in data.indices { equal = i > 0 && data[i] == data[i - 1] ? equal + 1 : 1; if equal >= 4 { return true } }
    return false
}

/// A randomised one-block stream whose block (after the inverse BWT, before un-RLE1) is
/// `preRLE1`. libbz2 can no longer write one; built by compressing `preRLE1 ^ mask` (which must
/// have no run of four, so libbz2's RLE1 leaves it as is), setting the randomised bit and
/// patching both CRCs to `outputCRC`.
func randomisedStream(preRLE1: [UInt8], outputCRC: UInt32) -> [UInt8]? {
    let mask = randomisationMask(preRLE1.count)
    let randomised = zip(preRLE1, mask).map { $0 ^ $1 }
    guard !hasRunOfFour(randomised) else { return nil }
    var bits = Bits(bzip2Compress(randomised))
    bits.bits.removeSubrange((bits.endOfStreamMagic + 80)...)
    bits.set(1, at: 32 + 48 + 32, count: 1)
    bits.set(UInt64(outputCRC), at: 32 + 48, count: 32)
    bits.set(UInt64(outputCRC), at: bits.endOfStreamMagic + 48, count: 32)
    return bits.bytes
}

@Suite struct CorruptionTests {
    let decoder = SwiftBlockDecoder()

    func expectSame(_ stream: [UInt8], capacity: Int = 256 * 1024, _ comment: Comment? = nil,
                    sourceLocation: SourceLocation = #_sourceLocation) -> Verdict {
        LavaBzip2BlockTests.expectSame(stream, decoder: decoder, capacity: capacity, comment, sourceLocation: sourceLocation)
    }

    @Test func everyBitFlipAndTruncation() {
        var random = Random(seed: 20)
        let data = random.text(600) + [UInt8](repeating: 9, count: 40)
        let stream = bzip2Compress(data)
        var agreed = 0
        for i in 0..<stream.count {
            for bit in 0..<8 {
                var corrupt = stream
                corrupt[i] ^= 1 << UInt8(bit)
                _ = expectSame(corrupt, capacity: 100, "flip byte \(i) bit \(bit)")
                agreed += 1
            }
            _ = expectSame(Array(stream[0..<i]), "truncated to \(i)")
        }
        #expect(agreed == stream.count * 8)
    }

    @Test func randomCorruptions() {
        var random = Random(seed: 21)
        let streams = [bzip2Compress(random.text(30_000), level: 1),
                       bzip2Compress(random.bytes(3000)),
                       bzip2Compress((0..<20_000).map { UInt8($0 % 3) })]
        for stream in streams {
            for _ in 0..<700 {
                var corrupt = stream
                for _ in 0..<Int(1 + random.next() % 4) {
                    let at = Int(random.next() % UInt64(corrupt.count))
                    corrupt[at] = UInt8(truncatingIfNeeded: random.next())
                }
                _ = expectSame(corrupt)
            }
        }
    }

    @Test func randomisedBlocks() throws {
        var random = Random(seed: 22)
        var built = 0
        for n in [10, 700, 5000, 200_000] {
            let preRLE1 = withoutRuns(random.text(n))
            guard let stream = randomisedStream(preRLE1: preRLE1, outputCRC: referenceCRC(preRLE1)) else { continue }
            #expect(expectSame(stream) == .ok(preRLE1), "randomised \(n)")
            built += 1
        }
        #expect(built == 4)
        // An RLE1 run inside a randomised block, 4 equal bytes and a count byte: one of the four
        // must be a toggled byte, or the data to compress would have a run.
        let toggled = try #require((1500..<5000).first { randomisationMask(5000)[$0] == 1 })
        let withRuns = withoutRuns(random.text(toggled - 1)) + [0x41, 0x41, 0x41, 0x41, 200] + withoutRuns(random.text(2000))
        let runEnd = toggled + 3
        let expected = Array(withRuns[0..<runEnd]) + [UInt8](repeating: 0x41, count: 200) + withRuns[(runEnd + 1)...]
        let stream = try #require(randomisedStream(preRLE1: withRuns, outputCRC: referenceCRC(expected)))
        #expect(expectSame(stream) == .ok(expected))
    }

    @Test func blockEndingInFourEqualBytesWithoutCount() throws {
        // Only a randomised block can end so (the encoder always writes the count): choose the
        // length so that a toggled byte falls inside the final four.
        let mask = randomisationMask(3000)
        let toggled = try #require((1000..<3000).first { mask[$0] == 1 })
        var random = Random(seed: 23)
        for end in [toggled + 1, toggled + 2, toggled + 3] {
            var preRLE1 = withoutRuns(random.text(end - 4)) + [0x5A, 0x5A, 0x5A, 0x5A]
            preRLE1 = Array(preRLE1[0..<end])
            let stream = try #require(randomisedStream(preRLE1: preRLE1, outputCRC: referenceCRC(preRLE1)))
            #expect(expectSame(stream) == .failed)
            // With the count byte it is fine.
            let counted = preRLE1 + [3]
            let expected = preRLE1 + [0x5A, 0x5A, 0x5A]
            let countedStream = try #require(randomisedStream(preRLE1: counted, outputCRC: referenceCRC(expected)))
            #expect(expectSame(countedStream) == .ok(expected))
        }
    }

    @Test func headerFields() {
        var random = Random(seed: 24)
        let data = random.text(10_000)
        let good = bzip2Compress(data)
        var bad = good; bad[0] = 0x41
        #expect(expectSame(bad) == .failed)
        bad = good; bad[3] = UInt8(ascii: "0")
        #expect(expectSame(bad) == .failed)
        // origPtr past the block.
        var bits = Bits(good)
        bits.set(0xFF_FFFF, at: 32 + 48 + 32 + 1, count: 24)
        #expect(expectSame(bits.bytes) == .failed)
        bits = Bits(good)
        bits.set(9_999, at: 32 + 48 + 32 + 1, count: 24)
        _ = expectSame(bits.bytes)
        // Stored block CRC off by one.
        bits = Bits(good)
        bits.set(bits.value(at: 80, count: 32) ^ 1, at: 80, count: 32)
        #expect(expectSame(bits.bytes) == .failed)
        #expect(expectSame([]) == .failed)
        #expect(expectSame(Array("BZh9".utf8)) == .failed)
    }
}
