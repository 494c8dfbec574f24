// The interleaved inverse BWT against the plain walk on synthetic `tt` tables: one cycle, many
// cycles (what periodic blocks give), tiny cycles, and a matrix too small (the fallback).
import Testing
@testable import LavaBzip2Block

struct InverseBWTTests {
    /// `tt` for the permutation `next`, with pseudo-random bytes, in a full-size table.
    func table(_ next: [Int], random: inout Random) -> UnsafeMutablePointer<UInt32> {
        let tt = UnsafeMutablePointer<UInt32>.allocate(capacity: 1 << InverseBWT.positionBits)
        tt.initialize(repeating: 0, count: 1 << InverseBWT.positionBits)
        for (i, n) in next.enumerated() { tt[i] = UInt32(n) << 8 | UInt32(random.next() & 0xFF) }
        return tt
    }

    func check(_ next: [Int], start: Int, inverse: borrowing InverseBWT, random: inout Random,
               sourceLocation: SourceLocation = #_sourceLocation) {
        let tt = table(next, random: &random)
        defer { tt.deallocate() }
        let count = next.count
        var expected = [UInt8](repeating: 0, count: count), actual = expected
        InverseBWT.walk(tt: tt, count: count, start: start, into: &expected)
        inverse.run(tt: tt, count: count, start: start, into: &actual)
        #expect(actual == expected, sourceLocation: sourceLocation)
        // The marks are gone afterwards.
        InverseBWT.walk(tt: tt, count: count, start: start, into: &actual)
        #expect(actual == expected, sourceLocation: sourceLocation)
        #expect((0..<count).allSatisfy { tt[$0] & InverseBWT.mark == 0 }, sourceLocation: sourceLocation)
    }

    /// A single cycle through all of 0 ..< n (Sattolo's shuffle).
    func oneCycle(_ n: Int, random: inout Random) -> [Int] {
        var order = Array(0..<n)
        for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(random.next() % UInt64(i))) }
        var next = [Int](repeating: 0, count: n)
        for i in 0..<n { next[order[i]] = order[(i + 1) % n] }
        return next
    }

    /// Cycles of length `period`, over shuffled positions.
    func cycles(_ n: Int, period: Int, random: inout Random) -> [Int] {
        var order = Array(0..<n)
        order.shuffle(using: &random)
        var next = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let base = i - i % period
            let following = i + 1 == min(base + period, n) ? base : i + 1
            next[order[i]] = order[following]
        }
        return next
    }

    @Test func matchesThePlainWalk() {
        var random = Random(seed: 30)
        let inverse = InverseBWT(maxCount: 900_000)
        for n in [16_384, 20_000, 100_003, 900_000] {
            let single = oneCycle(n, random: &random)
            for start in [0, n / 2, n - 1, Int(random.next() % UInt64(n))] {
                check(single, start: start, inverse: inverse, random: &random)
            }
            for period in [1, 2, 3, 1000, 1024, 5000, n / 3] {
                let periodic = cycles(n, period: period, random: &random)
                check(periodic, start: Int(random.next() % UInt64(n)), inverse: inverse, random: &random)
            }
        }
    }

    @Test func fallsBackWhenTheMatrixFills() {
        var random = Random(seed: 31)
        let small = InverseBWT(maxCount: 16_384)  // room for far fewer rows than 200k steps need
        check(oneCycle(200_000, random: &random), start: 7, inverse: small, random: &random)
        check(cycles(200_000, period: 150_000, random: &random), start: 3, inverse: small, random: &random)
    }
}

extension Random: RandomNumberGenerator {}
