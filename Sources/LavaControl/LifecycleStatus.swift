import LavaJSON
import LavaSystem

/// What `status` shows of Auto Scaling and of a drain in progress (SPEC §4, §8).
public struct LifecycleStatus: Sendable, Equatable {
    public var group: String?
    public var hook: String?
    public var instanceID: String?
    /// IMDS `autoscaling/target-lifecycle-state`, when the instance has one.
    public var targetState: String?
    /// Rebalance recommendations and scheduled events seen, one line each.
    public var notices: [String] = []
    /// The launch action: `waiting for readiness (hook L)`, `CONTINUE accepted`, `ABANDON accepted: why`.
    public var launch: String?
    public var drain: DrainStatus?

    public init() {}
}

public struct DrainStatus: Sendable, Equatable {
    public var trigger: String
    /// Seconds since the epoch by which everything is done.
    public var deadline: Double
    public var heartbeatsSent = 0
    /// Seconds since the epoch; nil when no heartbeat is planned.
    public var nextHeartbeat: Double?
    /// How the lifecycle action was completed (`CONTINUE accepted`, `failed: ...`); nil until then.
    public var completion: String?

    public init(trigger: String, deadline: Double) {
        self.trigger = trigger
        self.deadline = deadline
    }
}

extension LifecycleStatus {
    var json: JSONValue {
        var members = [
            JSONMember("group", group.map { .string($0) } ?? .null),
            JSONMember("hook", hook.map { .string($0) } ?? .null),
            JSONMember("instance_id", instanceID.map { .string($0) } ?? .null),
            JSONMember("target_state", targetState.map { .string($0) } ?? .null),
            JSONMember("notices", .array(notices.map { .string($0) })),
            JSONMember("launch", launch.map { .string($0) } ?? .null),
        ]
        if let drain {
            members.append(JSONMember("drain", .object([
                JSONMember("trigger", .string(drain.trigger)),
                JSONMember("deadline", .number(jsonSeconds(drain.deadline))),
                JSONMember("time_left", .number(jsonSeconds(max(0, drain.deadline - Clock.wallSeconds())))),
                JSONMember("heartbeats_sent", .number(drain.heartbeatsSent)),
                JSONMember("next_heartbeat", drain.nextHeartbeat.map { .number(jsonSeconds($0)) } ?? .null),
                JSONMember("completion", drain.completion.map { .string($0) } ?? .null),
            ])))
        }
        return .object(members)
    }

    init(json: JSONValue) throws(LavaError) {
        let fields = try JSONFields(json, "status.lifecycle")
        self.init()
        group = try fields.optionalString("group")
        hook = try fields.optionalString("hook")
        instanceID = try fields.optionalString("instance_id")
        targetState = try fields.optionalString("target_state")
        launch = try fields.optionalString("launch")
        if case .array(let items)? = json["notices"] { notices = items.compactMap(\.stringValue) }
        if let drainJSON = json["drain"], drainJSON != .null {
            let drainFields = try JSONFields(drainJSON, "status.lifecycle.drain")
            var drain = DrainStatus(trigger: try drainFields.string("trigger"), deadline: try drainFields.optionalDouble("deadline") ?? 0)
            drain.heartbeatsSent = try drainFields.optionalInt("heartbeats_sent") ?? 0
            drain.nextHeartbeat = try drainFields.optionalDouble("next_heartbeat")
            drain.completion = try drainFields.optionalString("completion")
            self.drain = drain
        }
    }

    /// `auto scaling: group G, hook H, instance i-..., target state InService` and, while draining,
    /// `draining (Auto Scaling: Terminated): 4m10s left, 2 heartbeats sent, next in 1m20s, completion: -`.
    var text: String {
        var out = "auto scaling: group \(group ?? "-"), hook \(hook ?? "-"), instance \(instanceID ?? "-"), target state \(targetState ?? "-")\n"
        if let launch { out += "launch: \(launch)\n" }
        for notice in notices { out += "notice: \(notice)\n" }
        if let drain {
            let now = Clock.wallSeconds()
            out += "draining (\(drain.trigger)): \(formatDuration(drain.deadline - now)) left, \(drain.heartbeatsSent) heartbeats sent, "
                + "next \(drain.nextHeartbeat.map { "in " + formatDuration($0 - now) } ?? "-"), completion: \(drain.completion ?? "-")\n"
        }
        return out
    }
}
