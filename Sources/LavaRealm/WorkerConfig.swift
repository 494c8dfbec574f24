import LavaSystem

/// One environment variable for a worker's processes. Values are secret as far as logs go.
public struct EnvironmentVariable: Sendable, Equatable {
    public var name: String
    public var value: String
}

/// A worker's effective configuration: its own value for each key, else `_`'s, else the default.
public struct WorkerConfig: Sendable, Equatable {
    public var realm: String
    public var worker: String
    /// Pinned lava version, or nil for "newest that matches".
    public var version: String?
    /// `--threads` for each daemon, or nil for "not passed".
    public var threads: Int?
    public var daemons: Int
    public var environment: [EnvironmentVariable]
    public var stopMinutes: Int
    public var heartbeatMinutes: Int

    public static let defaultDaemons = 1
    public static let defaultStopMinutes = 5
    public static let defaultHeartbeatMinutes = 5
    public static let threadsRange = 1...1024
    public static let daemonsRange = 0...64
    public static let stopMinutesRange = 0...720
    public static let heartbeatMinutesRange = 1...30
}

/// What one host runs: the host worker's own config and every worker of its `workers` list.
public struct HostConfig: Sendable, Equatable {
    public var realm: String
    public var host: WorkerConfig
    /// The workers this host runs, in the order the `workers` key names them.
    public var workers: [WorkerConfig]
    /// Things skipped on purpose (bad `env` keys), for the caller to log.
    public var warnings: [String]
}

/// Where a worker's effective value of a key comes from (SPEC §2).
public enum ConfigOrigin: String, Sendable {
    case own
    case defaults = "_"
    case builtIn = "default"
}

/// The rules of SPEC §2 over a realm item's `x-workers` map.
public struct RealmConfig: Sendable {
    public let realm: String
    private let workers: [String: AttributeValue]
    public static let defaultsKey = "_"

    public init(realm: String, item: RealmItem) throws(LavaError) {
        try RealmConfig.validateName(realm, what: "realm")
        self.realm = realm
        switch item["x-workers"] {
        case nil:
            workers = [:]
        case .map(let map)?:
            workers = map
        case let other?:
            throw LavaError(.invalidConfig, "\(realm): x-workers: expected a map (M), got \(other.typeName)")
        }
    }

    /// Names that become paths and account names (`/tmp/lava/<realm>`, `lava-<worker>`).
    public static func validateName(_ name: String, what: String) throws(LavaError) {
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
        }
        guard !name.isEmpty, name.utf8.count <= 64, allowed, name.first != "-", name.first != "." else {
            throw LavaError(.invalidConfig, "invalid \(what) name \"\(name)\": use letters, digits, '_', '-' and '.'")
        }
    }

    /// Each worker runs as `lava-W`, an account name of at most 32 characters (useradd's
    /// limit; the characters `validateName` allows are ones useradd takes). Nil when it fits.
    public static func accountNameProblem(worker: String) -> String? {
        let account = "lava-\(worker)"
        return account.utf8.count > 32 ? "account name \(account) is longer than 32 characters" : nil
    }

    public func host(worker: String) throws(LavaError) -> HostConfig {
        var warnings = [String]()
        let host = try self.worker(worker, warnings: &warnings)
        let names = try workerNames(host: worker)
        var configs = [WorkerConfig]()
        for name in names {
            configs.append(name == worker ? host : try self.worker(name, warnings: &warnings))
        }
        return HostConfig(realm: realm, host: host, workers: configs, warnings: warnings)
    }

    /// The workers `x-workers` names, `_` (the defaults) left out, in byte order.
    public var configuredWorkers: [String] {
        workers.keys.filter { $0 != RealmConfig.defaultsKey }.sorted()
    }

    /// Does the item hold `x-workers._`?
    public var hasDefaults: Bool { workers[RealmConfig.defaultsKey] != nil }

    /// Where `worker`'s effective value of `key` comes from: its own map, `_`'s, or the default.
    public func origin(of key: String, worker: String) throws(LavaError) -> ConfigOrigin {
        if try map(of: worker)?[key] != nil { return .own }
        if try map(of: RealmConfig.defaultsKey)?[key] != nil { return .defaults }
        return .builtIn
    }

    public func worker(_ name: String, warnings: inout [String]) throws(LavaError) -> WorkerConfig {
        try RealmConfig.validateName(name, what: "worker")
        if let problem = RealmConfig.accountNameProblem(worker: name) {
            throw LavaError(.invalidConfig, "\(realm): worker \(name): \(problem)")
        }
        let own = try map(of: name)
        let defaults = try map(of: RealmConfig.defaultsKey)
        func lookup(_ key: String) -> (source: String, value: AttributeValue)? {
            if let value = own?[key] { return (name, value) }
            if let value = defaults?[key] { return (RealmConfig.defaultsKey, value) }
            return nil
        }
        var config = WorkerConfig(
            realm: realm, worker: name, version: nil, threads: nil,
            daemons: WorkerConfig.defaultDaemons, environment: [],
            stopMinutes: WorkerConfig.defaultStopMinutes, heartbeatMinutes: WorkerConfig.defaultHeartbeatMinutes)
        if let (source, value) = lookup("version") { config.version = try version(value, worker: source) }
        if let (source, value) = lookup("threads") {
            config.threads = try integer(value, key: "threads", worker: source, range: WorkerConfig.threadsRange)
        }
        if let (source, value) = lookup("daemons") {
            config.daemons = try integer(value, key: "daemons", worker: source, range: WorkerConfig.daemonsRange)
        }
        if let (source, value) = lookup("stop_minutes") {
            config.stopMinutes = try integer(value, key: "stop_minutes", worker: source, range: WorkerConfig.stopMinutesRange)
        }
        if let (source, value) = lookup("heartbeat_minutes") {
            config.heartbeatMinutes = try integer(value, key: "heartbeat_minutes", worker: source,
                                                  range: WorkerConfig.heartbeatMinutesRange)
        }
        // env is taken whole from the worker when it has one, else whole from `_`.
        if let (source, value) = lookup("env") {
            config.environment = try environment(value, worker: source, warnings: &warnings)
        }
        return config
    }

    /// The host worker's `workers` list (per-key fallback to `_`), else the host worker alone.
    public func workerNames(host: String) throws(LavaError) -> [String] {
        let own = try map(of: host)
        let defaults = try map(of: RealmConfig.defaultsKey)
        let (source, value): (String, AttributeValue)
        if let ownValue = own?["workers"] {
            (source, value) = (host, ownValue)
        } else if let defaultValue = defaults?["workers"] {
            (source, value) = (RealmConfig.defaultsKey, defaultValue)
        } else {
            return [host]
        }
        guard case .string(let text) = value else {
            throw invalid(source, "workers", value, "expected a space-separated string (S), got \(value.typeName)")
        }
        var names = [String]()
        for name in text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init) {
            do {
                try RealmConfig.validateName(name, what: "worker")
            } catch {
                throw invalid(source, "workers", value, "\"\(name)\" is not a valid worker name")
            }
            if let problem = RealmConfig.accountNameProblem(worker: name) {
                throw invalid(source, "workers", value, "names \"\(name)\": \(problem)")
            }
            if !names.contains(name) { names.append(name) }
        }
        if names.isEmpty { throw invalid(source, "workers", value, "names no worker") }
        return names
    }

    private func map(of worker: String) throws(LavaError) -> [String: AttributeValue]? {
        switch workers[worker] {
        case nil: return nil
        case .map(let map)?: return map
        case let other?:
            throw LavaError(.invalidConfig, "\(realm): worker \(worker): expected a map (M), got \(other.typeName)")
        }
    }

    private func invalid(_ worker: String, _ key: String, _ value: AttributeValue, _ problem: String) -> LavaError {
        LavaError(.invalidConfig, "\(realm): worker \(worker): \(key): \(value.displayText) \(problem)")
    }

    private func version(_ value: AttributeValue, worker: String) throws(LavaError) -> String {
        guard case .string(let text) = value else {
            throw invalid(worker, "version", value, "is not a string (S)")
        }
        guard RealmConfig.isValidVersion(text) else {
            throw invalid(worker, "version", value, "is not a lava version such as \"8.2.0\"")
        }
        return text
    }

    /// A digit, then letters, digits, '.' and '+' (`8.2.0`, `8.2.0rc1`): what a package name can hold.
    public static func isValidVersion(_ text: String) -> Bool {
        guard let first = text.utf8.first, first >= 0x30, first <= 0x39, text.utf8.count <= 64 else { return false }
        return text.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "+")
        }
    }

    /// N, or S of digits (`threads: "6"`); anything else, or out of range, is an error.
    private func integer(_ value: AttributeValue, key: String, worker: String, range: ClosedRange<Int>) throws(LavaError) -> Int {
        let text: String
        switch value {
        case .number(let number): text = number
        case .string(let string): text = string
        default: throw invalid(worker, key, value, "is not a whole number")
        }
        let digits = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.utf8.count <= 9, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let number = Int(text) else {
            throw invalid(worker, key, value, "is not a whole number")
        }
        guard range.contains(number) else {
            throw invalid(worker, key, value, "is out of range \(range.lowerBound)..\(range.upperBound)")
        }
        return number
    }

    private func environment(_ value: AttributeValue, worker: String, warnings: inout [String]) throws(LavaError) -> [EnvironmentVariable] {
        guard case .map(let map) = value else {
            throw invalid(worker, "env", value, "is not a map (M)")
        }
        var variables = [EnvironmentVariable]()
        for name in map.keys.sorted() {
            guard RealmConfig.isValidEnvironmentName(name) else {
                warnings.append("\(realm): worker \(worker): env: skipping \"\(name)\": not a valid variable name")
                continue
            }
            let text: String
            switch map[name]! {
            case .string(let string): text = string
            case .number(let number): text = number
            case .bool(let flag): text = flag ? "true" : "false"
            case let other:
                throw LavaError(.invalidConfig, "\(realm): worker \(worker): env.\(name): expected a string, number or boolean, got \(other.typeName)")
            }
            // execve cannot pass a NUL byte; saying so beats truncating the value silently.
            if text.utf8.contains(0) {
                throw LavaError(.invalidConfig, "\(realm): worker \(worker): env.\(name): value contains a NUL byte")
            }
            variables.append(EnvironmentVariable(name: name, value: text))
        }
        return variables
    }

    /// `^[A-Za-z_][A-Za-z0-9_]*$`
    public static func isValidEnvironmentName(_ name: String) -> Bool {
        guard let first = name.utf8.first else { return false }
        let isLetter = { (byte: UInt8) in (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F }
        return isLetter(first) && name.utf8.allSatisfy { isLetter($0) || ($0 >= 0x30 && $0 <= 0x39) }
    }
}
