import LavaSystem
#if canImport(Glibc)
import Glibc
#endif

/// The SDKs' standard retry mode: up to `maxAttempts` tries, each wait a random time between 0
/// and min(20 s, base · 2^attempt) ("full jitter").
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: Double
    public var maximumDelay: Double
    /// When set, throttling is retried for this long (seconds from the first attempt) at a
    /// client-side rate shaped by `throttledRate` (adaptive mode), and throttled attempts do not
    /// count against `maxAttempts`: a fleet booting at once spreads its reads over what the
    /// table can serve instead of hammering it (SPEC §9).
    public var throttlingBudget: Double?
    public var throttledRate = AdaptiveRateLimiter.Shape.fleet
    /// Readable once the request should end (a stop trigger): a request in flight or waiting to
    /// retry fails at once (error code `stopped`).
    public var cancel: Int32?

    public static let defaultAttempts = 3
    /// Reading the realms table at boot: a fleet booting at once is throttled by a 3 RCU table.
    public static let realmsTableAttempts = 10
    public static let realmsTableThrottlingBudget = 15.0 * 60

    public init(maxAttempts: Int, baseDelay: Double = 1, maximumDelay: Double = 20) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maximumDelay = maximumDelay
    }

    /// `AWS_MAX_ATTEMPTS` when set, else `defaultAttempts`. `LAVA_BOOT_RETRY_BASE_SECONDS` scales
    /// the waits (tests and benchmarks use small values).
    public static func from(environment: [String: String], defaultAttempts: Int) throws(LavaError) -> RetryPolicy {
        var attempts = defaultAttempts
        if let text = environment["AWS_MAX_ATTEMPTS"], !text.isEmpty {
            guard let value = Int(text), value >= 1 else {
                throw LavaError(.invalidConfig, "AWS_MAX_ATTEMPTS=\(text): expected a whole number of at least 1")
            }
            attempts = value
        }
        var base = 1.0
        if let text = environment["LAVA_BOOT_RETRY_BASE_SECONDS"], let value = Double(text), value >= 0 { base = value }
        var policy = RetryPolicy(maxAttempts: attempts, baseDelay: base)
        policy.throttledRate = policy.throttledRate.scaled(by: base)
        return policy
    }

    /// The wait before attempt `attempt + 1` (attempt counts from 1).
    public func delay(afterAttempt attempt: Int) -> Double {
        let ceiling = min(maximumDelay, baseDelay * Double(1 << min(attempt - 1, 20)))
        return Double.random(in: 0...1) * ceiling
    }
}
