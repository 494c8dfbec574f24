import CShim
import LavaJSON
import LavaSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Where log lines go: `-` (stderr), `@FACILITY` (syslog, tag `lava-boot`), or a file path.
public enum LogTarget: Sendable, Equatable {
    case standardError
    case syslog(facility: Int32)
    case file(String)

    static let facilities: [String: Int32] = [
        "user": LOG_USER, "daemon": LOG_DAEMON,
        "local0": LOG_LOCAL0, "local1": LOG_LOCAL1, "local2": LOG_LOCAL2, "local3": LOG_LOCAL3,
        "local4": LOG_LOCAL4, "local5": LOG_LOCAL5, "local6": LOG_LOCAL6, "local7": LOG_LOCAL7,
    ]

    public init(parsing text: String) throws(LavaError) {
        if text == "-" {
            self = .standardError
        } else if text.hasPrefix("@") {
            let name = String(text.dropFirst())
            guard let facility = LogTarget.facilities[name] else {
                throw LavaError(.invalidConfig, "--log \(text): unknown syslog facility; use @local0..@local7, @user or @daemon")
            }
            self = .syslog(facility: facility)
        } else if text.isEmpty {
            throw LavaError(.invalidConfig, "--log: empty target; use -, @local0 or a file path")
        } else {
            self = .file(text)
        }
    }
}

/// One destination shared by every logger of the process. Lines are queued and written by a
/// thread of their own, so a target that stalls (a full syslog socket, a pipe nobody reads)
/// never blocks the caller: the reaper, the supervisor and the drain go on. A full queue drops
/// lines and says how many once it can write again. Each line is one `write` (or one `syslog`
/// call), so lines never interleave.
public final class LogSink: Sendable {
    private let fd: Int32
    private let usesSyslog: Bool
    private struct Queue {
        var lines: [(String, Logger.Level)] = []
        var dropped = 0
        var writing = false
    }
    private let queue = Monitor(Queue())
    static let capacity = 10_000
    /// The process's sink, flushed before it exits.
    static let active = SharedValue<LogSink>()

    public init(_ target: LogTarget) throws(LavaError) {
        switch target {
        case .standardError:
            fd = STDERR_FILENO
            usesSyslog = false
        case .file(let path):
            let opened = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
            if opened < 0 { throw .errno("open log file", path) }
            fd = opened
            usesSyslog = false
        case .syslog(let facility):
            openlog("lava-boot", LOG_PID, facility)
            fd = -1
            usesSyslog = true
        }
        try Threads.start(name: "lava-log") { [self] in self.writeForever() }
        LogSink.active.set(self)
    }

    func emit(_ line: String, level: Logger.Level) {
        queue.withLock { queue in
            if queue.lines.count >= LogSink.capacity {
                queue.dropped += 1
            } else {
                queue.lines.append((line, level))
            }
        }
    }

    /// Waits until every queued line is written, or `timeout` seconds.
    public func flush(timeout: Double) {
        queue.wait(until: Clock.monotonicSeconds() + timeout) { $0.lines.isEmpty && $0.dropped == 0 && !$0.writing }
    }

    /// Flushes the process's sink, if it has one (before exit).
    public static func flushActive(timeout: Double = 2) { active.value?.flush(timeout: timeout) }

    private func writeForever() -> Never {
        while true {
            queue.wait(until: nil) { !$0.lines.isEmpty || $0.dropped > 0 }
            let (lines, dropped) = queue.withLock { queue in
                defer {
                    queue.lines.removeAll(keepingCapacity: true)
                    queue.dropped = 0
                    queue.writing = true
                }
                return (queue.lines, queue.dropped)
            }
            if dropped > 0 { write("lava-boot: the log target stalled; \(dropped) lines were dropped", level: .warning) }
            for (line, level) in lines { write(line, level: level) }
            queue.withLock { $0.writing = false }
        }
    }

    private func write(_ line: String, level: Logger.Level) {
        if usesSyslog {
            lava_syslog(LogSink.syslogPriority(level), line)
            return
        }
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        // A log line that cannot be written is dropped, never fatal.
        bytes.withUnsafeBytes { buffer in _ = try? FileDescriptor.writeAll(fd, buffer, displayPath: "the log") }
    }

    static func syslogPriority(_ level: Logger.Level) -> Int32 {
        switch level {
        case .trace, .debug: return LOG_DEBUG
        case .info: return LOG_INFO
        case .notice: return LOG_NOTICE
        case .warning: return LOG_WARNING
        case .error: return LOG_ERR
        case .critical: return LOG_CRIT
        }
    }
}

/// Formats each record as text or one JSON object per line (`ts`, `level`, `msg`, then
/// `realm`, `worker`, `component` and any other metadata).
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let sink: LogSink
    private let json: Bool
    private let timestamps: Bool

    /// `timestamps` is off for syslog, which stamps lines itself.
    public init(sink: LogSink, level: Logger.Level, json: Bool, timestamps: Bool = true) {
        self.sink = sink
        self.logLevel = level
        self.json = json
        self.timestamps = timestamps
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let line = json
            ? formatJSON(level: event.level, message: event.message.description, metadata: merged)
            : formatText(level: event.level, message: event.message.description, metadata: merged)
        sink.emit(line, level: event.level)
    }

    static func levelName(_ level: Logger.Level) -> String {
        switch level {
        case .trace, .debug: return "debug"
        case .info, .notice: return "info"
        case .warning: return "warning"
        case .error, .critical: return "error"
        }
    }

    private static func orderedKeys(_ metadata: Logger.Metadata) -> [String] {
        LogField.ordered.filter { metadata[$0] != nil }
            + metadata.keys.filter { !LogField.ordered.contains($0) }.sorted()
    }

    func formatJSON(level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        var out = "{"
        if timestamps {
            out += "\"ts\":"
            appendJSONString(CivilTime(epochSeconds: Clock.wallSeconds()).iso8601, to: &out)
            out += ","
        }
        out += "\"level\":\"\(LineLogHandler.levelName(level))\",\"msg\":"
        appendJSONString(message, to: &out)
        for key in LineLogHandler.orderedKeys(metadata) {
            out += ","
            appendJSONString(key, to: &out)
            out += ":"
            appendJSONString(metadata[key]!.description, to: &out)
        }
        out += "}"
        return out
    }

    func formatText(level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        var out = ""
        if timestamps { out += CivilTime(epochSeconds: Clock.wallSeconds()).iso8601 + " " }
        out += LineLogHandler.levelName(level).uppercased()
        if let component = metadata[LogField.component] { out += " [\(component)]" }
        out += " " + message
        let rest = LineLogHandler.orderedKeys(metadata).filter { $0 != LogField.component }
        if !rest.isEmpty {
            out += " (" + rest.map { "\($0)=\(metadata[$0]!)" }.joined(separator: " ") + ")"
        }
        return out
    }
}

extension Logger.Level {
    /// The CLI's `--level` names.
    public init?(cliName: String) {
        switch cliName {
        case "debug": self = .debug
        case "info": self = .info
        case "warning": self = .warning
        case "error": self = .error
        default: return nil
        }
    }
}
