import LavaJSON
import LavaSystem

/// What a client asks the agent. One JSON object per connection, documented in docs/status-json.md.
public enum ControlRequest: Sendable, Equatable {
    case status
    case stop(StopRequest)
}

/// `lava-boot stop`: the old stop utility's flags, passed to the agent's drain (§8).
public struct StopRequest: Sendable, Equatable {
    /// Signal for the daemons; nil: the default, SIGHUP.
    public var signal: Int32?
    /// Hold the connection open until the drain has finished.
    public var wait: Bool
    public var noDispatch: Bool
    public var autoScalingGroupName: String?
    public var lifecycleHookName: String?
    public var lifecycleActionToken: String?
    public var instanceID: String?
    /// Send lifecycle heartbeats during the drain; nil: the agent's default.
    public var lifecycleHeartbeat: Bool?

    public init(signal: Int32? = nil, wait: Bool = false, noDispatch: Bool = false,
                autoScalingGroupName: String? = nil, lifecycleHookName: String? = nil,
                lifecycleActionToken: String? = nil, instanceID: String? = nil, lifecycleHeartbeat: Bool? = nil) {
        self.signal = signal
        self.wait = wait
        self.noDispatch = noDispatch
        self.autoScalingGroupName = autoScalingGroupName
        self.lifecycleHookName = lifecycleHookName
        self.lifecycleActionToken = lifecycleActionToken
        self.instanceID = instanceID
        self.lifecycleHeartbeat = lifecycleHeartbeat
    }
}

extension ControlRequest {
    /// `{"command":"status"}` or `{"command":"stop",...}`; optional stop fields only when set.
    public var json: JSONValue {
        switch self {
        case .status:
            return .object([JSONMember("command", .string("status"))])
        case .stop(let stop):
            var members = [JSONMember("command", .string("stop"))]
            if let signal = stop.signal { members.append(JSONMember("signal", .number(Int(signal)))) }
            members.append(JSONMember("wait", .bool(stop.wait)))
            members.append(JSONMember("no_dispatch", .bool(stop.noDispatch)))
            let strings: [(String, String?)] = [
                ("auto_scaling_group_name", stop.autoScalingGroupName),
                ("lifecycle_hook_name", stop.lifecycleHookName),
                ("lifecycle_action_token", stop.lifecycleActionToken),
                ("instance_id", stop.instanceID),
            ]
            for (key, value) in strings {
                if let value { members.append(JSONMember(key, .string(value))) }
            }
            if let heartbeat = stop.lifecycleHeartbeat { members.append(JSONMember("lifecycle_heartbeat", .bool(heartbeat))) }
            return .object(members)
        }
    }

    /// Unknown keys are ignored, so an older agent accepts a newer client's request.
    public init(json: JSONValue) throws(LavaError) {
        let fields = try JSONFields(json, "request")
        switch try fields.string("command") {
        case "status":
            self = .status
        case "stop":
            var stop = StopRequest()
            if let signal = try fields.optionalInt("signal") {
                guard (1...64).contains(signal) else {
                    throw LavaError(.controlProtocol, "request.signal: \(signal) is not a signal number (1-64)")
                }
                stop.signal = Int32(signal)
            }
            stop.wait = try fields.optionalBool("wait") ?? false
            stop.noDispatch = try fields.optionalBool("no_dispatch") ?? false
            stop.autoScalingGroupName = try fields.optionalString("auto_scaling_group_name")
            stop.lifecycleHookName = try fields.optionalString("lifecycle_hook_name")
            stop.lifecycleActionToken = try fields.optionalString("lifecycle_action_token")
            stop.instanceID = try fields.optionalString("instance_id")
            stop.lifecycleHeartbeat = try fields.optionalBool("lifecycle_heartbeat")
            self = .stop(stop)
        case let other:
            throw LavaError(.controlProtocol, "request.command: unknown command \"\(other)\" (expected status or stop)")
        }
    }
}

/// Answers the handler gives the server to send back.
public enum ControlResponse {
    /// `{"ok":true}` plus `members`.
    public static func ok(_ members: [JSONMember] = []) -> JSONValue {
        .object([JSONMember("ok", .bool(true))] + members)
    }

    /// `{"ok":true,"status":{...}}`
    public static func status(_ status: AgentStatus) -> JSONValue {
        ok([JSONMember("status", status.json)])
    }

    /// `{"ok":false,"error":"..."}`; the client raises `message` as a `.agentError`.
    public static func error(_ message: String) -> JSONValue {
        .object([JSONMember("ok", .bool(false)), JSONMember("error", .string(message))])
    }
}

/// Typed access to one JSON object's fields; errors name the field (`status.daemons[1].pid`).
struct JSONFields {
    let value: JSONValue
    let context: String

    init(_ value: JSONValue, _ context: String) throws(LavaError) {
        guard case .object = value else { throw LavaError(.controlProtocol, "\(context): expected a JSON object") }
        self.value = value
        self.context = context
    }

    private func wrongType(_ key: String, _ expected: String) -> LavaError {
        LavaError(.controlProtocol, "\(context).\(key): expected \(expected)")
    }

    /// The member, or nil when it is missing or null.
    private func member(_ key: String) -> JSONValue? {
        guard let found = value[key], found != .null else { return nil }
        return found
    }

    private func required<T>(_ key: String, _ value: T?) throws(LavaError) -> T {
        guard let value else { throw LavaError(.controlProtocol, "\(context).\(key): missing") }
        return value
    }

    func optionalString(_ key: String) throws(LavaError) -> String? {
        guard let found = member(key) else { return nil }
        guard case .string(let text) = found else { throw wrongType(key, "a string") }
        return text
    }

    func string(_ key: String) throws(LavaError) -> String { try required(key, optionalString(key)) }

    func optionalBool(_ key: String) throws(LavaError) -> Bool? {
        guard let found = member(key) else { return nil }
        guard case .bool(let flag) = found else { throw wrongType(key, "true or false") }
        return flag
    }

    func bool(_ key: String) throws(LavaError) -> Bool { try required(key, optionalBool(key)) }

    func optionalDouble(_ key: String) throws(LavaError) -> Double? {
        guard let found = member(key) else { return nil }
        guard case .number(let text) = found, let number = Double(text), number.isFinite else {
            throw wrongType(key, "a number")
        }
        return number
    }

    func double(_ key: String) throws(LavaError) -> Double { try required(key, optionalDouble(key)) }

    func optionalInt(_ key: String) throws(LavaError) -> Int? {
        guard let found = member(key) else { return nil }
        guard case .number(let text) = found else { throw wrongType(key, "a whole number") }
        if let whole = Int(text) { return whole }
        // 3.0 and 3e0 are whole numbers too.
        guard let number = Double(text), number.rounded() == number, abs(number) < 9.0e15 else {
            throw wrongType(key, "a whole number")
        }
        return Int(number)
    }

    func int(_ key: String) throws(LavaError) -> Int { try required(key, optionalInt(key)) }

    func array(_ key: String) throws(LavaError) -> [JSONValue] {
        guard case .array(let elements) = try required(key, member(key)) else { throw wrongType(key, "an array") }
        return elements
    }
}
