import LavaAWS
import Testing

@Suite struct AdaptiveRateLimiterTests {
    let shape = AdaptiveRateLimiter.Shape.fleet

    /// No wait until the table throttles; then each throttle cuts the rate down to its floor,
    /// and every turn falls inside the jittered interval of the current rate.
    @Test func throttlesCutTheRateToItsFloorAndTurnsAreJittered() {
        let limiter = AdaptiveRateLimiter(shape: shape)
        #expect(limiter.rate == nil && limiter.turn() == 0)
        var intervals = [Double]()
        for _ in 0..<4 {
            limiter.throttled(now: 0)
            let interval = 1 / limiter.rate!
            intervals.append(interval)
            for _ in 0..<200 {
                let turn = limiter.turn()
                #expect(turn >= shape.jitterFloor * interval && turn <= interval, "turn \(turn) s at one send per \(interval) s")
            }
        }
        #expect(intervals.map { ($0 * 1000).rounded() / 1000 } == [8, 24, 45, 45])
    }

    /// Turns spread a fleet: two hundred instances throttled together do not come back in step.
    @Test func turnsAreSpreadOut() {
        let limiter = AdaptiveRateLimiter(shape: shape)
        limiter.throttled(now: 0)
        let turns = (0..<200).map { _ in limiter.turn() }
        let perSecond = Dictionary(grouping: turns) { Int($0) }.values.map(\.count).max() ?? 0
        #expect(perSecond < 60, "at most \(perSecond) of 200 in one second")
    }

    /// Successes regrow the rate along CUBIC: back to where it was cut, and never lower.
    @Test func successesRegrowTheRate() {
        let limiter = AdaptiveRateLimiter(shape: shape)
        limiter.throttled(now: 0)
        limiter.throttled(now: 10)
        let cut = limiter.rate!
        limiter.succeeded(now: 10.5)
        let early = limiter.rate!
        limiter.succeeded(now: 60)
        let later = limiter.rate!
        #expect(early >= cut && later > early && later >= 1 / shape.firstInterval, "\(cut) -> \(early) -> \(later)")
    }

    @Test func scaledShapesKeepTheirProportions() {
        let fast = shape.scaled(by: 0.01)
        #expect(fast.firstInterval == shape.firstInterval * 0.01 && fast.longestInterval == shape.longestInterval * 0.01)
        #expect(fast.cut == shape.cut && fast.jitterFloor == shape.jitterFloor)
    }
}
