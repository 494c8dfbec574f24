#if canImport(Glibc)
import Glibc
#endif
import LavaSystem
import Logging

/// Logs long work at most every `interval` seconds: bytes, rate and ETA.
final class ProgressReporter {
    private let logger: Logger
    private let label: String
    private let total: Int64?
    private let interval: Double
    private let start = Clock.monotonicSeconds()
    private var lastReport: Double
    private(set) var bytes: Int64 = 0

    init(logger: Logger, label: String, total: Int64?, interval: Double = 5) {
        self.logger = logger
        self.label = label
        self.total = total
        self.interval = interval
        lastReport = start
    }

    func add(_ count: Int) {
        bytes += Int64(count)
        let now = Clock.monotonicSeconds()
        guard now - lastReport >= interval else { return }
        lastReport = now
        let rate = Double(bytes) / max(now - start, 0.001)
        var message = "\(label): \(formatBytes(bytes))"
        if let total, total > 0 {
            message += " of \(formatBytes(total)) (\(Int(Double(bytes) * 100 / Double(total)))%)"
        }
        message += ", \(formatBytes(Int64(rate)))/s"
        if let total, rate > 0, total > bytes {
            message += ", ETA \(Int((Double(total - bytes) / rate).rounded(.up)))s"
        }
        logger.info("\(message)")
    }

    var elapsed: Double { Clock.monotonicSeconds() - start }
}

/// `1.5 MiB`
public func formatBytes(_ count: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(count)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    if unit == 0 { return "\(count) B" }
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(tenths % 10) \(units[unit])"
}

/// `1.234 s`
func formatSeconds(_ seconds: Double) -> String {
    let millis = max(Int((seconds * 1000).rounded()), 0)
    let fraction = String(millis % 1000)
    return "\(millis / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction) s"
}

/// Wall time with this thread's and the whole process's CPU time, from when it was made.
struct CPUClocks {
    private let start: (wall: Double, thread: Double, process: Double)

    init() { start = (Clock.monotonicSeconds(), CPUClocks.read(CLOCK_THREAD_CPUTIME_ID), CPUClocks.read(CLOCK_PROCESS_CPUTIME_ID)) }

    func elapsed() -> (wall: Double, thread: Double, process: Double) {
        (Clock.monotonicSeconds() - start.wall, CPUClocks.read(CLOCK_THREAD_CPUTIME_ID) - start.thread,
         CPUClocks.read(CLOCK_PROCESS_CPUTIME_ID) - start.process)
    }

    private static func read(_ clock: clockid_t) -> Double {
        var time = timespec()
        clock_gettime(clock, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
