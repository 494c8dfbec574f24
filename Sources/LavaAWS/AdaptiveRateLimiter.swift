import LavaSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The SDKs' adaptive retry mode, for the read a whole fleet makes at once (SPEC §9): the client
/// sends freely until throttled; from then on each send waits its turn at a client-side rate
/// that every throttle cuts and every success regrows (CUBIC, as the SDKs do). A turn is a
/// random time between `jitterFloor` and 1 of the rate's interval, so instances throttled
/// together come back spread out instead of hammering the table in step.
///
/// The shape is for a fleet of single reads (`bench/fleet-backoff-sim.py` models it): the SDKs'
/// constants (cut to 0.7 of the measured send rate, never under 0.5 sends a second) assume one
/// client sending many requests, and would let 600 instances send 300 reads a second at a
/// table that serves 6.
public final class AdaptiveRateLimiter: Sendable {
    public struct Shape: Sendable, Equatable {
        /// After the first throttle: one send per this many seconds.
        public var firstInterval: Double
        /// Each further throttle divides the rate by this.
        public var cut: Double
        /// The rate never drops below one send per this many seconds.
        public var longestInterval: Double
        public var jitterFloor: Double

        public static let fleet = Shape(firstInterval: 8, cut: 3, longestInterval: 45, jitterFloor: 0.25)

        /// Every interval times `factor` (tests run the same shape faster).
        public func scaled(by factor: Double) -> Shape {
            Shape(firstInterval: firstInterval * factor, cut: cut, longestInterval: longestInterval * factor, jitterFloor: jitterFloor)
        }
    }

    private struct State {
        /// Sends a second; nil until the first throttle (no limit).
        var rate: Double?
        /// The rate the last throttle cut, and when: CUBIC regrows towards it from there.
        var cutFrom = 0.0
        var cutAt = 0.0
    }

    public let shape: Shape
    private let state = Mutex(State())
    /// CUBIC's scale constant, the SDKs' 0.4.
    static let cubicScale = 0.4

    public init(shape: Shape) {
        self.shape = shape
    }

    public var rate: Double? { state.withLock { $0.rate } }

    public func throttled(now: Double = Clock.monotonicSeconds()) {
        state.withLock { state in
            let floor = 1 / shape.longestInterval
            let current = state.rate ?? shape.cut / shape.firstInterval
            state.cutFrom = current
            state.cutAt = now
            state.rate = max(floor, current / shape.cut)
        }
    }

    /// CUBIC: the rate climbs back to where it was cut in `K` seconds, flat near it, then
    /// beyond; a success never lowers it.
    public func succeeded(now: Double = Clock.monotonicSeconds()) {
        state.withLock { state in
            guard let rate = state.rate else { return }
            let k = cbrt(state.cutFrom * (1 - 1 / shape.cut) / Self.cubicScale)
            let t = now - state.cutAt - k
            state.rate = max(rate, Self.cubicScale * t * t * t + state.cutFrom)
        }
    }

    /// Seconds to wait before the next send: 0 until the first throttle.
    public func turn() -> Double {
        guard let rate else { return 0 }
        return Double.random(in: shape.jitterFloor...1) / rate
    }
}
