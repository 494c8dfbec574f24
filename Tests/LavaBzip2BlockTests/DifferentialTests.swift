// Differential tests: SwiftBlockDecoder must produce libbz2's output byte for byte and fail
// exactly when libbz2 (under the wrapper's rules) fails.
import Testing
import CBzip2
@testable import LavaBzip2Block
#if canImport(Glibc)
import Glibc
#endif

/// Compares with libbz2. Each test reuses one decoder for all its streams, as a pipeline worker
/// reuses its decoder block after block.
func expectSame(_ stream: [UInt8], decoder: SwiftBlockDecoder, capacity: Int = 256 * 1024, _ comment: Comment? = nil,
                sourceLocation: SourceLocation = #_sourceLocation) -> Verdict {
    let reference = libbz2Decode(stream)
    let ours = swiftDecode(stream, decoder: decoder, capacity: capacity)
    #expect(ours == reference, comment, sourceLocation: sourceLocation)
    return reference
}

@Suite struct DifferentialTests {
    let decoder = SwiftBlockDecoder()

    func expectSame(_ stream: [UInt8], capacity: Int = 256 * 1024, _ comment: Comment? = nil,
                    sourceLocation: SourceLocation = #_sourceLocation) -> Verdict {
        LavaBzip2BlockTests.expectSame(stream, decoder: decoder, capacity: capacity, comment, sourceLocation: sourceLocation)
    }

    @Test func randomisationTableIsLibbz2s() throws {
        let symbol = try #require(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "BZ2_rNums"))
        let theirs = symbol.assumingMemoryBound(to: Int32.self)
        for i in 0..<512 { #expect(Int32(randomisationTable[i]) == theirs[i]) }
    }

    @Test func everyLevelRandomAndText() {
        var random = Random(seed: 1)
        for level in Int32(1)...9 {
            // Just over two blocks of each kind.
            let size = Int(level) * 100_000 * 2 + 12_345
            for data in [random.bytes(size / 4), random.text(size)] {
                let stream = bzip2Compress(data, level: level)
                #expect(expectSame(stream, "level \(level)") == .ok(data))
            }
        }
    }

    @Test func smallAndOddCapacities() {
        var random = Random(seed: 2)
        var data = random.text(300_000)
        data += [UInt8](repeating: 7, count: 5000) + random.bytes(1000)
        let stream = bzip2Compress(data, level: 2)
        for capacity in [1, 2, 3, 255, 256, 259, 4096, 65_537] {
            #expect(expectSame(stream, capacity: capacity, "capacity \(capacity)") == .ok(data))
        }
    }

    @Test func tinyInputs() {
        for n in 0..<40 {
            let data = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 37 % 5) }
            #expect(expectSame(bzip2Compress(data)) == .ok(data))
        }
    }

    @Test func emptyStreamIsValid() {
        let stream = bzip2Compress([])
        #expect(stream.count == 14)
        #expect(expectSame(stream) == .ok([]))
    }

    @Test func periodicData() {
        var random = Random(seed: 3)
        for period in [1, 2, 3, 4, 5, 7, 16, 100, 1000, 4099] {
            let unit = random.bytes(period)
            for total in [50_000, 899_000, 2_000_000] {
                let data = (0..<total).map { unit[$0 % period] }
                #expect(expectSame(bzip2Compress(data)) == .ok(data), "period \(period) total \(total)")
            }
        }
        let abc = Array(String(repeating: "abc", count: 400_000).utf8)
        #expect(expectSame(bzip2Compress(abc)) == .ok(abc))
        let same = [UInt8](repeating: 0x61, count: 10_000_000)
        #expect(expectSame(bzip2Compress(same)) == .ok(same))
    }

    @Test func singleAndInterleavedWalksAgree() {
        var random = Random(seed: 4)
        let single = SwiftBlockDecoder()
        single.interleavedInverseBWT = false
        for data in [random.text(1_500_000), random.bytes(900_000),
                     (0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 % 251 / 3) }] {
            let stream = bzip2Compress(data)
            #expect(swiftDecode(stream, decoder: single) == .ok(data))
            #expect(swiftDecode(stream, decoder: decoder) == .ok(data))
        }
    }

    @Test func runsAtBlockEnds() {
        var random = Random(seed: 5)
        for runLength in [1, 2, 3, 4, 5, 6, 7, 258, 259, 260, 263, 1000] {
            for byte in [UInt8(0), 0xFF] {
                let data = random.text(1000) + [UInt8](repeating: byte, count: runLength)
                #expect(expectSame(bzip2Compress(data)) == .ok(data), "run \(runLength)")
                // The same run ending the first of two level-1 blocks (the block is cut after RLE1).
                let twoBlocks = random.bytes(99_990) + [UInt8](repeating: byte, count: runLength) + random.bytes(500)
                #expect(expectSame(bzip2Compress(twoBlocks, level: 1)) == .ok(twoBlocks))
            }
        }
    }

    @Test func plantedMagicsInData() {
        var random = Random(seed: 6)
        var data: [UInt8] = []
        for shift in 0..<8 {
            data += random.text(3000)
            // The block magic and the end-of-stream magic at every bit alignment.
            for magic in [UInt64(0x3141_5926_5359), 0x1772_4538_5090] {
                let shifted = magic << UInt64(8 + shift)
                data += (0..<8).reversed().map { UInt8(truncatingIfNeeded: shifted >> UInt64($0 * 8)) }
            }
        }
        #expect(expectSame(bzip2Compress(data, level: 1)) == .ok(data))
    }

    @Test func lbzip2Streams() {
        var random = Random(seed: 7)
        let data = random.text(3_000_000) + random.bytes(400_000) + [UInt8](repeating: 1, count: 100_000)
        for arguments in [["-9", "-n", "2"], ["-1", "-n", "2"], ["-5", "-n", "1"]] {
            let stream = runFilter("lbzip2", ["-c"] + arguments, input: data)
            #expect(expectSame(stream, "lbzip2 \(arguments)") == .ok(data))
        }
        for n in [0, 1, 5, 100] {
            let small = random.text(n)
            #expect(expectSame(runFilter("lbzip2", ["-c", "-9"], input: small)) == .ok(small))
        }
    }

    @Test func bzip2ToolStreams() {
        var random = Random(seed: 8)
        let data = random.text(1_200_000)
        let stream = runFilter("bzip2", ["-c", "-3"], input: data)
        #expect(expectSame(stream) == .ok(data))
    }

    @Test func concatenatedStreamsAndTrailingBytesFail() {
        var random = Random(seed: 9)
        let a = bzip2Compress(random.text(5000)), b = bzip2Compress(random.text(7000))
        #expect(expectSame(a + b) == .failed)
        #expect(expectSame(a + [0]) == .failed)
        #expect(expectSame(a + bzip2Compress([])) == .failed)
    }

    @Test func tableCounts2Through6() {
        var random = Random(seed: 10)
        var seen = Set<Int>()
        for n in [60, 150, 400, 900, 2000, 5000, 50_000] {
            let data = random.bytes(n)
            let stream = bzip2Compress(data)
            seen.insert(firstBlockSelectorsField(Bits(stream)).groups)
            #expect(expectSame(stream) == .ok(data))
        }
        #expect(seen == Set(2...6))
    }

    @Test func blockLongerThanLevelFails() {
        var random = Random(seed: 11)
        var stream = bzip2Compress(random.text(150_000), level: 9)
        stream[3] = UInt8(ascii: "1")
        #expect(expectSame(stream) == .failed)
        stream[3] = UInt8(ascii: "2")
        #expect(expectSame(stream) != .failed)
    }

    /// Sets the count of selectors to `count`, appending zero-coded selectors (read, then ignored
    /// past 18002 or past the symbols).
    func withSelectorCount(_ stream: [UInt8], _ count: Int, lastSelector: Int = 0) -> [UInt8] {
        var bits = Bits(stream)
        bits.bits.removeSubrange((bits.endOfStreamMagic + 80)...)
        let groupsAt = firstBlockSelectorsField(bits).groupsAt
        let old = Int(bits.value(at: groupsAt + 3, count: 15))
        var p = groupsAt + 18
        for _ in 0..<old { while bits.bits[p] { p += 1 }; p += 1 }
        precondition(count >= old)
        var extra = [Bool](repeating: false, count: count - old)
        if count > old && lastSelector > 0 {
            extra.removeLast()
            extra += [Bool](repeating: true, count: lastSelector) + [false]
        }
        bits.bits.insert(contentsOf: extra, at: p)
        bits.set(UInt64(count), at: groupsAt + 3, count: 15)
        return bits.bytes
    }

    @Test func selectorCounts() {
        var random = Random(seed: 12)
        let data = random.text(20_000)
        let stream = bzip2Compress(data)
        let groups = firstBlockSelectorsField(Bits(stream)).groups
        for count in [18_001, 18_002, 18_003, 20_000, 32_767] {
            #expect(expectSame(withSelectorCount(stream, count)) == .ok(data), "selectors \(count)")
        }
        // A selector value of nGroups is an error even where it would be ignored.
        #expect(expectSame(withSelectorCount(stream, 20_000, lastSelector: groups)) == .failed)
        #expect(expectSame(withSelectorCount(stream, 20_000, lastSelector: groups - 1)) == .ok(data))
    }

    @Test func fullSizeBlockNeedsManySelectors() {
        // 900k symbols with few runs: the most groups (18001) a real block can use.
        var random = Random(seed: 13)
        let data = random.bytes(899_981)
        #expect(expectSame(bzip2Compress(data)) == .ok(data))
    }
}
