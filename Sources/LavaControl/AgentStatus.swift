import LavaJSON
import LavaSupervisor
import LavaSystem

/// What `lava-boot status` shows: the agent and every daemon it supervises.
/// The JSON form is a stable schema (docs/status-json.md): fields are only ever added.
public struct AgentStatus: Sendable, Equatable {
    public var agentPID: Int32
    public var realm: String
    public var worker: String
    /// The code area, normalised (`s3://bucket/prefix`, `file:///abs/path`).
    public var source: String
    /// Draining (§8): daemons have been told to stop and none is restarted.
    public var stopping: Bool
    /// When the agent started, in seconds since the epoch.
    public var startedAt: Double
    public var daemons: [DaemonStatus]
    /// Auto Scaling and the drain, when the agent watches the instance's lifecycle.
    public var lifecycle: LifecycleStatus?

    public init(agentPID: Int32, realm: String, worker: String, source: String, stopping: Bool,
                startedAt: Double, daemons: [DaemonStatus], lifecycle: LifecycleStatus? = nil) {
        self.lifecycle = lifecycle
        self.agentPID = agentPID
        self.realm = realm
        self.worker = worker
        self.source = source
        self.stopping = stopping
        self.startedAt = startedAt
        self.daemons = daemons
    }
}

extension AgentStatus {
    public var json: JSONValue {
        var members: [JSONMember] = [
            JSONMember("pid", .number(Int(agentPID))),
            JSONMember("realm", .string(realm)),
            JSONMember("worker", .string(worker)),
            JSONMember("source", .string(source)),
            JSONMember("started", .number(jsonSeconds(startedAt))),
            JSONMember("stopping", .bool(stopping)),
            JSONMember("daemons", .array(daemons.map(\.json))),
        ]
        if let lifecycle { members.append(JSONMember("lifecycle", lifecycle.json)) }
        return .object(members)
    }

    public init(json: JSONValue) throws(LavaError) {
        let fields = try JSONFields(json, "status")
        guard let pid = Int32(exactly: try fields.int("pid")) else {
            throw LavaError(.controlProtocol, "status.pid: out of range")
        }
        var daemons = [DaemonStatus]()
        for (position, element) in try fields.array("daemons").enumerated() {
            daemons.append(try DaemonStatus(json: element, context: "status.daemons[\(position)]"))
        }
        self.init(agentPID: pid, realm: try fields.string("realm"), worker: try fields.string("worker"),
                  source: try fields.optionalString("source") ?? "", stopping: try fields.bool("stopping"),
                  startedAt: try fields.optionalDouble("started") ?? 0, daemons: daemons)
        if let lifecycle = json["lifecycle"] { self.lifecycle = try LifecycleStatus(json: lifecycle) }
    }

    /// A header line, then one table row per daemon:
    ///
    ///     lava-boot agent pid 4242, realm demo, worker core, started 2026-11-23 19:04 UTC, stopping: no
    ///     source file:///srv/lava-code
    ///     WORKER  #  VERSION  PID   UPTIME  RESTARTS  STATE    LAST EXIT
    ///     core    1  8.2.0    4250  2h03m   0         running  -
    public var text: String {
        var out = "lava-boot agent pid \(agentPID), realm \(realm), worker \(worker), "
            + "started \(CivilTime(epochSeconds: startedAt).shortDisplay) UTC, stopping: \(stopping ? "yes" : "no")\n"
        if !source.isEmpty { out += "source \(source)\n" }
        var rows = [["WORKER", "#", "VERSION", "PID", "UPTIME", "RESTARTS", "STATE", "LAST EXIT"]]
        for daemon in daemons {
            rows.append([
                daemon.worker, String(daemon.index), daemon.version,
                daemon.pid.map { String($0) } ?? "-",
                daemon.uptime.map(formatDuration) ?? "-",
                String(daemon.restarts), daemon.phase.rawValue, daemon.lastExit ?? "-",
            ])
        }
        out += renderTable(rows)
        if daemons.isEmpty { out += "(no daemons)\n" }
        if let lifecycle { out += lifecycle.text }
        return out
    }
}

extension DaemonStatus {
    public var json: JSONValue {
        .object([
            JSONMember("worker", .string(worker)),
            JSONMember("index", .number(index)),
            JSONMember("version", .string(version)),
            JSONMember("pid", pid.map { .number(Int($0)) } ?? .null),
            JSONMember("restarts", .number(restarts)),
            JSONMember("uptime", uptime.map { .number(jsonSeconds($0)) } ?? .null),
            JSONMember("state", .string(phase.rawValue)),
            JSONMember("last_exit", lastExit.map { .string($0) } ?? .null),
        ])
    }

    public init(json: JSONValue) throws(LavaError) {
        try self.init(json: json, context: "daemon")
    }

    init(json: JSONValue, context: String) throws(LavaError) {
        let fields = try JSONFields(json, context)
        var pid: Int32?
        if let number = try fields.optionalInt("pid") {
            guard let exact = Int32(exactly: number) else { throw LavaError(.controlProtocol, "\(context).pid: out of range") }
            pid = exact
        }
        self.init(worker: try fields.string("worker"), index: try fields.int("index"), version: try fields.string("version"),
                  pid: pid, restarts: try fields.int("restarts"), uptime: try fields.optionalDouble("uptime"),
                  phase: Phase(rawValue: try fields.string("state")), lastExit: try fields.optionalString("last_exit"))
    }
}

/// Seconds as JSON number text with at most millisecond precision: `12`, `12.5`, `1732388645.123`.
func jsonSeconds(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "0" }
    let milliseconds = Int64((seconds * 1000).rounded())
    let sign = milliseconds < 0 ? "-" : ""
    let magnitude = milliseconds.magnitude
    var text = sign + String(magnitude / 1000)
    let fraction = magnitude % 1000
    if fraction != 0 {
        var digits = String(fraction)
        digits = String(repeating: "0", count: 3 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        text += "." + digits
    }
    return text
}

/// `42s`, `12m05s`, `3h07m`, `2d04h`.
func formatDuration(_ seconds: Double) -> String {
    let total = seconds.isFinite ? max(0, Int(seconds.rounded(.down))) : 0
    func two(_ value: Int) -> String { value < 10 ? "0\(value)" : String(value) }
    switch total {
    case ..<60: return "\(total)s"
    case ..<3600: return "\(total / 60)m\(two(total % 60))s"
    case ..<86_400: return "\(total / 3600)h\(two(total % 3600 / 60))m"
    default: return "\(total / 86_400)d\(two(total % 86_400 / 3600))h"
    }
}

/// Left-aligned columns two spaces apart, no trailing spaces.
func renderTable(_ rows: [[String]]) -> String {
    guard let columns = rows.map(\.count).max() else { return "" }
    var widths = [Int](repeating: 0, count: columns)
    for row in rows {
        for (column, cell) in row.enumerated() { widths[column] = max(widths[column], cell.count) }
    }
    var out = ""
    for row in rows {
        var line = ""
        for (column, cell) in row.enumerated() {
            line += cell
            if column < row.count - 1 { line += String(repeating: " ", count: widths[column] - cell.count + 2) }
        }
        while line.hasSuffix(" ") { line.removeLast() }
        out += line + "\n"
    }
    return out
}
