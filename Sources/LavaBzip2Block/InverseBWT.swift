// The inverse BWT: follow `tt` (libbz2's layout, `tt[i] = next << 8 | byte`) for `count` steps.
//
// One walk is a chain of dependent loads over a table of up to 3.6 MB, one cache miss per byte.
// `lanes` walks run interleaved so their misses overlap. Their start points cannot be placed at
// known output offsets (that would take the walk itself), so, in the spirit of Kärkkäinen, Kempa
// and Puglisi ("Slashing the time for BWT inversion", DCC 2012), the walk is cut at sampled ranks
// instead: about `count / segmentLength` ranks, evenly spread, plus the walk's own start, are
// marked with a flag bit in their `tt` entry. A lane walks from a mark until it meets a mark
// (flag set); the piece between is one segment. If no lane has walked that mark's segment yet the
// lane carries on into it, otherwise it takes a mark nobody has started. Lanes write one byte each
// per step into a 16-column matrix (64-bit stores, 2 per step), and the segments are then
// concatenated in walk order, starting from the start mark and following where each ended.
//
// Every segment ends at a mark: at worst at its own start, after going round its cycle. So the
// lanes together take at most `count` steps, and a walk whose cycle is shorter than the block
// (periodic data) is simply its segments repeated. If one lane does far more than its share (the
// walk's cycle holds few marks) the matrix fills up and the plain walk runs instead.

struct InverseBWT: ~Copyable {
    /// `tt` has `1 << positionBits` entries, so any masked position is in range.
    static let positionBits = 20
    static let positionMask: UInt32 = (1 << 20) - 1
    /// Flag bit of a marked entry; real entries are below `1 << 28` (position < 2^20, shifted 8).
    static let mark: UInt32 = 1 << 31
    /// An entry that loops on itself unmarked at `positionMask`, above any real position: where an
    /// idle lane waits.
    static let idlePosition = Int(positionMask)

    static let lanes = 16
    /// Mean segment length: short enough that the lanes finish close together.
    static let segmentLength = 1024
    static let maxMarks = 900_000 / segmentLength + 2
    /// Below this many steps the plain walk is as fast.
    static let minLaneCount = 1 << 14

    private let matrix: UnsafeMutablePointer<UInt64>
    private let matrixRows: Int
    private let markRank: UnsafeMutablePointer<Int32>      // sorted
    private let segmentLane: UnsafeMutablePointer<Int32>   // -1: not started
    private let segmentStart: UnsafeMutablePointer<Int32>  // rows
    private let segmentEnd: UnsafeMutablePointer<Int32>
    private let segmentNext: UnsafeMutablePointer<Int32>   // mark where the segment ended
    private let segmentOutput: UnsafeMutablePointer<Int32> // stitching: output offset, -1 unvisited
    private let laneSegment: UnsafeMutablePointer<Int>     // per lane: the mark it is walking, -1 idle

    init(maxCount: Int) {
        // Twice each lane's fair share, plus room for the last segments.
        matrixRows = 2 * maxCount / Self.lanes + 4 * Self.segmentLength
        matrix = .allocate(capacity: matrixRows * (Self.lanes / 8))
        markRank = .allocate(capacity: Self.maxMarks)
        segmentLane = .allocate(capacity: Self.maxMarks)
        segmentStart = .allocate(capacity: Self.maxMarks)
        segmentEnd = .allocate(capacity: Self.maxMarks)
        segmentNext = .allocate(capacity: Self.maxMarks)
        segmentOutput = .allocate(capacity: Self.maxMarks)
        laneSegment = .allocate(capacity: Self.lanes)
    }

    deinit {
        matrix.deallocate()
        markRank.deallocate()
        segmentLane.deallocate()
        segmentStart.deallocate()
        segmentEnd.deallocate()
        segmentNext.deallocate()
        segmentOutput.deallocate()
        laneSegment.deallocate()
    }

    /// Writes the `count` bytes of the walk that starts at `start` into `output`. `tt[0 ..< count]`
    /// must hold next positions below `count`; `tt` may be modified (mark bits).
    func run(tt: UnsafeMutablePointer<UInt32>, count: Int, start: Int, into output: UnsafeMutablePointer<UInt8>,
             interleaved: Bool = true) {
        if !interleaved || count < Self.minLaneCount || !runLanes(tt: tt, count: count, start: start, into: output) {
            Self.walk(tt: tt, count: count, start: start, into: output)
        }
    }

    /// The plain walk. Positions are masked to 20 bits, so whatever `tt` holds every read is in it.
    static func walk(tt: UnsafePointer<UInt32>, count: Int, start: Int, into output: UnsafeMutablePointer<UInt8>) {
        var position = UInt32(start) & positionMask
        for i in 0..<count {
            let entry = tt[Int(position)]
            output[i] = UInt8(truncatingIfNeeded: entry)
            position = (entry >> 8) & positionMask
        }
    }

    /// The interleaved walk; false if the matrix filled up (nothing useful written).
    private func runLanes(tt: UnsafeMutablePointer<UInt32>, count: Int, start: Int,
                          into output: UnsafeMutablePointer<UInt8>) -> Bool {
        // Marks: evenly spread ranks plus `start`, sorted, distinct.
        let spread = min(count / Self.segmentLength, Self.maxMarks - 1)
        var marks = 0
        var startMark = -1
        for m in 0..<spread {
            let rank = m * count / spread
            if startMark < 0 && start <= rank {
                startMark = marks
                if start < rank {
                    markRank[marks] = Int32(start)
                    marks += 1
                }
            }
            markRank[marks] = Int32(rank)
            marks += 1
        }
        if startMark < 0 {
            startMark = marks
            markRank[marks] = Int32(start)
            marks += 1
        }
        for m in 0..<marks {
            tt[Int(markRank[m])] |= Self.mark
            segmentLane[m] = -1
        }
        tt[Self.idlePosition] = UInt32(Self.idlePosition) << 8
        defer { for m in 0..<marks { tt[Int(markRank[m])] &= ~Self.mark } }

        // Bookkeeping, passed inout rather than captured so the lane loop keeps its registers.
        var unstarted = 0   // marks below this have been started, or handed out and skipped
        var active = 0      // lanes walking a segment
        func startSegment(_ m: Int, lane: Int, row: Int) {
            segmentLane[m] = Int32(lane)
            segmentStart[m] = Int32(row)
            laneSegment[lane] = m
        }
        func nextUnstarted(_ unstarted: inout Int) -> Int? {
            while unstarted < marks {
                let m = unstarted
                unstarted += 1
                if segmentLane[m] < 0 { return m }
            }
            return nil
        }
        /// Lane `lane` loaded `entry`, marked, at `position` on row `row`: ends its segment and
        /// returns the entry it goes on with (nil: not a mark after all, which cannot happen).
        func hitMark(lane: Int, entry: UInt32, position: UInt32, row: Int,
                     _ unstarted: inout Int, _ active: inout Int) -> UInt32? {
            // The mark's index: binary search of the sorted ranks.
            var low = 0, high = marks
            while low < high {
                let mid = (low + high) >> 1
                if Int(markRank[mid]) < Int(position) { low = mid + 1 } else { high = mid }
            }
            guard low < marks && Int(markRank[low]) == Int(position) else { return nil }
            let current = laneSegment[lane]
            segmentEnd[current] = Int32(row)
            segmentNext[current] = Int32(low)
            if segmentLane[low] < 0 {
                startSegment(low, lane: lane, row: row)
                return entry
            }
            if let m = nextUnstarted(&unstarted) {
                startSegment(m, lane: lane, row: row)
                return tt[Int(markRank[m])]
            }
            laneSegment[lane] = -1
            active -= 1
            return tt[Self.idlePosition]
        }
        /// Row 0: lane 0 starts at the walk's start, the others at the next marks.
        func firstEntry(lane: Int, _ unstarted: inout Int, _ active: inout Int) -> UInt32 {
            laneSegment[lane] = -1
            guard let m = lane == 0 ? startMark : nextUnstarted(&unstarted) else { return tt[Self.idlePosition] }
            startSegment(m, lane: lane, row: 0)
            active += 1
            return tt[Int(markRank[m])]
        }

        var e0 = firstEntry(lane: 0, &unstarted, &active), e1 = firstEntry(lane: 1, &unstarted, &active)
        var e2 = firstEntry(lane: 2, &unstarted, &active), e3 = firstEntry(lane: 3, &unstarted, &active)
        var e4 = firstEntry(lane: 4, &unstarted, &active), e5 = firstEntry(lane: 5, &unstarted, &active)
        var e6 = firstEntry(lane: 6, &unstarted, &active), e7 = firstEntry(lane: 7, &unstarted, &active)
        var e8 = firstEntry(lane: 8, &unstarted, &active), e9 = firstEntry(lane: 9, &unstarted, &active)
        var e10 = firstEntry(lane: 10, &unstarted, &active), e11 = firstEntry(lane: 11, &unstarted, &active)
        var e12 = firstEntry(lane: 12, &unstarted, &active), e13 = firstEntry(lane: 13, &unstarted, &active)
        var e14 = firstEntry(lane: 14, &unstarted, &active), e15 = firstEntry(lane: 15, &unstarted, &active)
        var row = 0
        while true {
            matrix[row &* 2] = (UInt64(e0 & 0xFF) | UInt64(e1 & 0xFF) << 8 | UInt64(e2 & 0xFF) << 16
                | UInt64(e3 & 0xFF) << 24 | UInt64(e4 & 0xFF) << 32 | UInt64(e5 & 0xFF) << 40
                | UInt64(e6 & 0xFF) << 48 | UInt64(e7 & 0xFF) << 56).littleEndian
            matrix[row &* 2 &+ 1] = (UInt64(e8 & 0xFF) | UInt64(e9 & 0xFF) << 8 | UInt64(e10 & 0xFF) << 16
                | UInt64(e11 & 0xFF) << 24 | UInt64(e12 & 0xFF) << 32 | UInt64(e13 & 0xFF) << 40
                | UInt64(e14 & 0xFF) << 48 | UInt64(e15 & 0xFF) << 56).littleEndian
            row += 1
            guard row < matrixRows else { return false }
            let p0 = (e0 >> 8) & Self.positionMask, p1 = (e1 >> 8) & Self.positionMask
            let p2 = (e2 >> 8) & Self.positionMask, p3 = (e3 >> 8) & Self.positionMask
            let p4 = (e4 >> 8) & Self.positionMask, p5 = (e5 >> 8) & Self.positionMask
            let p6 = (e6 >> 8) & Self.positionMask, p7 = (e7 >> 8) & Self.positionMask
            let p8 = (e8 >> 8) & Self.positionMask, p9 = (e9 >> 8) & Self.positionMask
            let p10 = (e10 >> 8) & Self.positionMask, p11 = (e11 >> 8) & Self.positionMask
            let p12 = (e12 >> 8) & Self.positionMask, p13 = (e13 >> 8) & Self.positionMask
            let p14 = (e14 >> 8) & Self.positionMask, p15 = (e15 >> 8) & Self.positionMask
            e0 = tt[Int(p0)]; e1 = tt[Int(p1)]; e2 = tt[Int(p2)]; e3 = tt[Int(p3)]
            e4 = tt[Int(p4)]; e5 = tt[Int(p5)]; e6 = tt[Int(p6)]; e7 = tt[Int(p7)]
            e8 = tt[Int(p8)]; e9 = tt[Int(p9)]; e10 = tt[Int(p10)]; e11 = tt[Int(p11)]
            e12 = tt[Int(p12)]; e13 = tt[Int(p13)]; e14 = tt[Int(p14)]; e15 = tt[Int(p15)]
            if (e0 | e1 | e2 | e3 | e4 | e5 | e6 | e7 | e8 | e9 | e10 | e11 | e12 | e13 | e14 | e15) & Self.mark != 0 {
                // Rare: about `marks` times per block.
                if e0 & Self.mark != 0 { guard let next = hitMark(lane: 0, entry: e0, position: p0, row: row, &unstarted, &active) else { return false }; e0 = next }
                if e1 & Self.mark != 0 { guard let next = hitMark(lane: 1, entry: e1, position: p1, row: row, &unstarted, &active) else { return false }; e1 = next }
                if e2 & Self.mark != 0 { guard let next = hitMark(lane: 2, entry: e2, position: p2, row: row, &unstarted, &active) else { return false }; e2 = next }
                if e3 & Self.mark != 0 { guard let next = hitMark(lane: 3, entry: e3, position: p3, row: row, &unstarted, &active) else { return false }; e3 = next }
                if e4 & Self.mark != 0 { guard let next = hitMark(lane: 4, entry: e4, position: p4, row: row, &unstarted, &active) else { return false }; e4 = next }
                if e5 & Self.mark != 0 { guard let next = hitMark(lane: 5, entry: e5, position: p5, row: row, &unstarted, &active) else { return false }; e5 = next }
                if e6 & Self.mark != 0 { guard let next = hitMark(lane: 6, entry: e6, position: p6, row: row, &unstarted, &active) else { return false }; e6 = next }
                if e7 & Self.mark != 0 { guard let next = hitMark(lane: 7, entry: e7, position: p7, row: row, &unstarted, &active) else { return false }; e7 = next }
                if e8 & Self.mark != 0 { guard let next = hitMark(lane: 8, entry: e8, position: p8, row: row, &unstarted, &active) else { return false }; e8 = next }
                if e9 & Self.mark != 0 { guard let next = hitMark(lane: 9, entry: e9, position: p9, row: row, &unstarted, &active) else { return false }; e9 = next }
                if e10 & Self.mark != 0 { guard let next = hitMark(lane: 10, entry: e10, position: p10, row: row, &unstarted, &active) else { return false }; e10 = next }
                if e11 & Self.mark != 0 { guard let next = hitMark(lane: 11, entry: e11, position: p11, row: row, &unstarted, &active) else { return false }; e11 = next }
                if e12 & Self.mark != 0 { guard let next = hitMark(lane: 12, entry: e12, position: p12, row: row, &unstarted, &active) else { return false }; e12 = next }
                if e13 & Self.mark != 0 { guard let next = hitMark(lane: 13, entry: e13, position: p13, row: row, &unstarted, &active) else { return false }; e13 = next }
                if e14 & Self.mark != 0 { guard let next = hitMark(lane: 14, entry: e14, position: p14, row: row, &unstarted, &active) else { return false }; e14 = next }
                if e15 & Self.mark != 0 { guard let next = hitMark(lane: 15, entry: e15, position: p15, row: row, &unstarted, &active) else { return false }; e15 = next }
                if active == 0 { break }
            }
        }

        // Stitch: segments in walk order from the start mark, repeating once the walk comes round.
        for m in 0..<marks { segmentOutput[m] = -1 }
        let bytes = UnsafeRawPointer(matrix)  // row r, lane l: byte 8 * r + l (little-endian rows)
        var produced = 0
        var m = startMark
        while produced < count {
            let seen = Int(segmentOutput[m])
            if seen >= 0 {
                // The walk's cycle closed: the output from `seen` on repeats.
                while produced < count {
                    let chunk = min(produced - seen, count - produced)
                    (output + produced).update(from: output + seen, count: chunk)
                    produced += chunk
                }
                break
            }
            segmentOutput[m] = Int32(produced)
            let lane = Int(segmentLane[m])
            let first = Int(segmentStart[m])
            let length = min(Int(segmentEnd[m]) - first, count - produced)
            var offset = first * Self.lanes + lane
            let destination = output + produced
            for i in 0..<length {
                destination[i] = bytes.load(fromByteOffset: offset, as: UInt8.self)
                offset += Self.lanes
            }
            produced += length
            m = Int(segmentNext[m])
        }
        return true
    }
}
