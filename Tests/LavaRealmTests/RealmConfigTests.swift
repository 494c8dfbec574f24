import LavaJSON
import LavaRealm
import LavaSystem
import LavaTestSupport
import Testing

/// SPEC §2: realms files, the `x-workers` rules, and the errors an operator sees for bad values.
@Suite struct RealmConfigTests {
    // MARK: Helpers

    /// A realm item from plain JSON: `{"realm": realm, "x-workers": <workers>}`.
    static func item(_ workers: String?, realm: String = "prod") throws -> RealmItem {
        let text = workers.map { #"{"realm": "\#(realm)", "x-workers": \#($0)}"# } ?? #"{"realm": "\#(realm)"}"#
        guard case .map(let map) = AttributeValue(plainJSON: try JSONValue(parsing: text)) else {
            Issue.record("not a map: \(text)")
            return [:]
        }
        return map
    }

    static func host(_ workers: String?, worker: String = "core", realm: String = "prod") throws -> HostConfig {
        try RealmConfig(realm: realm, item: try item(workers, realm: realm)).host(worker: worker)
    }

    /// The error `host(worker:)` throws for this `x-workers` map, which must be an `.invalidConfig`.
    static func configError(_ workers: String, worker: String = "core", sourceLocation: SourceLocation = #_sourceLocation) -> LavaError? {
        do {
            let config = try host(workers, worker: worker)
            Issue.record("expected an error, got \(config)", sourceLocation: sourceLocation)
            return nil
        } catch let error as LavaError {
            #expect(error.code == .invalidConfig, "\(error)", sourceLocation: sourceLocation)
            return error
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    static func environment(_ config: WorkerConfig) -> [String: String] {
        var out = [String: String]()
        for variable in config.environment { out[variable.name] = variable.value }
        return out
    }

    /// The fields of a WorkerConfig (whose memberwise initializer is not public), for whole comparisons.
    struct Summary: Equatable, CustomStringConvertible {
        var realm = "prod", worker = "core", version: String? = nil, threads: Int? = nil, daemons = 1
        var env: [String: String] = [:], stopMinutes = 5, heartbeatMinutes = 5
        var description: String {
            "\(realm)/\(worker) v\(version ?? "-") t\(threads.map(String.init) ?? "-") d\(daemons) env\(env) stop\(stopMinutes) hb\(heartbeatMinutes)"
        }
    }

    static func summary(_ config: WorkerConfig) -> Summary {
        Summary(realm: config.realm, worker: config.worker, version: config.version, threads: config.threads, daemons: config.daemons,
                env: environment(config), stopMinutes: config.stopMinutes, heartbeatMinutes: config.heartbeatMinutes)
    }

    func load(_ json: String, realm: String) throws(LavaError) -> RealmItem {
        let directory = TemporaryDirectory("realms")
        let path = directory.write("realms.json", json)
        return try RealmsFile.load(path: path, realm: realm)
    }

    // MARK: Realms files

    static let typedItem = """
    {"Item": {"realm": {"S": "prod"}, "owner": {"S": "ops"}, "x-workers": {"M": {
      "_": {"M": {"daemons": {"N": "2"}, "env": {"M": {"A": {"S": "1"}}}}},
      "core": {"M": {"threads": {"S": "4"}, "stop_minutes": {"N": "30"}, "workers": {"S": "core batch"}}},
      "batch": {"M": {"version": {"S": "8.1.0"}, "env": {"M": {"B": {"N": "7"}, "C": {"BOOL": true}}}}}
    }}}}
    """

    static let plainItem = """
    {"realm": "prod", "owner": "ops", "x-workers": {
      "_": {"daemons": 2, "env": {"A": "1"}},
      "core": {"threads": "4", "stop_minutes": 30, "workers": "core batch"},
      "batch": {"version": "8.1.0", "env": {"B": 7, "C": true}}
    }}
    """

    @Test func typedItemLoads() throws {
        let item = try load(RealmConfigTests.typedItem, realm: "prod")
        #expect(item["realm"] == .string("prod"))
        #expect(item["owner"] == .string("ops"))
        guard case .map(let workers)? = item["x-workers"], case .map(let core)? = workers["core"] else {
            Issue.record("x-workers.core is not a map: \(item)")
            return
        }
        #expect(core["threads"] == .string("4"))
        #expect(core["stop_minutes"] == .number("30"))
    }

    @Test func typedItemsListPicksTheRealm() throws {
        let json = """
        {"Items": [{"realm": {"S": "dev"}, "x-workers": {"M": {"_": {"M": {"daemons": {"N": "9"}}}}}},
                   {"realm": {"S": "prod"}, "x-workers": {"M": {"_": {"M": {"daemons": {"N": "3"}}}}}}],
         "Count": 2}
        """
        let host = try RealmConfig(realm: "prod", item: try load(json, realm: "prod")).host(worker: "core")
        #expect(host.host.daemons == 3)
        let dev = try RealmConfig(realm: "dev", item: try load(json, realm: "dev")).host(worker: "core")
        #expect(dev.host.daemons == 9)
    }

    @Test func plainObjectLoads() throws {
        let item = try load(RealmConfigTests.plainItem, realm: "prod")
        #expect(item["realm"] == .string("prod"))
        guard case .map(let workers)? = item["x-workers"], case .map(let defaults)? = workers["_"] else {
            Issue.record("x-workers._ is not a map: \(item)")
            return
        }
        #expect(defaults["daemons"] == .number("2"))
    }

    @Test func plainArrayPicksTheRealm() throws {
        let json = #"[{"realm": "dev", "x-workers": {"core": {"daemons": 9}}}, {"realm": "prod", "x-workers": {"core": {"daemons": 4}}}]"#
        let host = try RealmConfig(realm: "prod", item: try load(json, realm: "prod")).host(worker: "core")
        #expect(host.host.daemons == 4)
    }

    @Test func typedAndPlainFormsGiveTheSameConfiguration() throws {
        let typed = try RealmConfig(realm: "prod", item: try load(RealmConfigTests.typedItem, realm: "prod")).host(worker: "core")
        let plain = try RealmConfig(realm: "prod", item: try load(RealmConfigTests.plainItem, realm: "prod")).host(worker: "core")
        #expect(typed == plain)
        #expect(typed.workers.map(\.worker) == ["core", "batch"])
        #expect(typed.host.threads == 4)
        #expect(typed.host.daemons == 2)
        #expect(typed.host.stopMinutes == 30)
        #expect(RealmConfigTests.environment(typed.workers[1]) == ["B": "7", "C": "true"])
        #expect(typed.workers[1].version == "8.1.0")
    }

    @Test func everyTypedAttributeKindDecodes() throws {
        let json = """
        {"Item": {"realm": {"S": "prod"}, "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]}, "l": {"L": [{"S": "x"}, {"N": "1"}]},
                  "t": {"BOOL": true}, "n": {"NULL": true}, "b": {"B": "AAEC"}, "bs": {"BS": ["AA=="]}}}
        """
        let item = try load(json, realm: "prod")
        #expect(item["ss"] == .stringSet(["a", "b"]))
        #expect(item["ns"] == .numberSet(["1", "2.5"]))
        #expect(item["l"] == .list([.string("x"), .number("1")]))
        #expect(item["t"] == .bool(true))
        #expect(item["n"] == .null)
        #expect(item["b"] == .binary("AAEC"))
        #expect(item["bs"] == .binarySet(["AA=="]))
    }

    @Test(arguments: [
        #"{"Item": {"realm": {"S": "prod"}}}"#,
        #"{"Items": [{"realm": {"S": "dev"}}]}"#,
        #"{"Items": []}"#,
        #"{"realm": "dev"}"#,
        #"[{"realm": "dev"}, {"realm": "test"}]"#,
        #"[]"#,
    ])
    func missingRealmIsNoSuchRealm(_ json: String) {
        let error = #expect(throws: LavaError.self) { try load(json, realm: "staging") }
        #expect(error?.code == .noSuchRealm)
        #expect(error?.message == "staging: no such realm")
    }

    @Test func realmIsMatchedExactly() {
        let error = #expect(throws: LavaError.self) { try load(#"[{"realm": "Prod"}, {"realm": "prod2"}]"#, realm: "prod") }
        #expect(error?.code == .noSuchRealm)
    }

    @Test func missingFileIsAnErrorNamingIt() {
        let directory = TemporaryDirectory("realms")
        let path = directory.sub("nope.json")
        let error = #expect(throws: LavaError.self) { try RealmsFile.load(path: path, realm: "prod") }
        #expect(error?.code == .invalidConfig)
        #expect(error?.message.contains(path) == true, "\(String(describing: error))")
    }

    @Test func malformedJSONIsAnErrorNamingFileAndOffset() {
        let directory = TemporaryDirectory("realms")
        let path = directory.write("realms.json", #"{"realm": "prod",}"#)
        let error = #expect(throws: LavaError.self) { try RealmsFile.load(path: path, realm: "prod") }
        #expect(error?.code == .invalidConfig)
        #expect(error?.message.contains(path) == true, "\(String(describing: error))")
        #expect(error?.message.contains("invalid JSON at byte 17") == true, "\(String(describing: error))")
    }

    @Test(arguments: [
        (#"{"Item": {"realm": {"S": "prod"}, "x-workers": {"Q": {}}}}"#, "x-workers"),
        (#"{"Item": {"realm": {"S": "prod"}, "x-workers": {"M": {"core": {"M": {"threads": {"N": 4}}}}}}}"#, "x-workers.core.threads"),
        (#"{"Item": {"realm": {"S": "prod"}, "x-workers": {"S": "a", "N": "1"}}}"#, "x-workers"),
        (#"{"Item": {"realm": {"S": "prod"}, "tags": {"SS": [1]}}}"#, "tags"),
        (#"{"Item": [1]}"#, "object"),
        (#"[{"nope": 1}]"#, "realm"),
        (#"[7]"#, "object"),
    ] as [(String, String)])
    func malformedItemsAreErrorsNamingTheAttribute(_ json: String, _ named: String) {
        let error = #expect(throws: LavaError.self) { try load(json, realm: "prod") }
        #expect(error?.code == .invalidConfig)
        #expect(error?.message.contains(named) == true, "\(String(describing: error)) should name \(named)")
    }

    // MARK: Defaults

    @Test func withoutConfigurationEveryKeyTakesItsDefault() throws {
        for workers in [nil, "{}", #"{"core": {}}"#, #"{"_": {}}"#] as [String?] {
            let host = try RealmConfigTests.host(workers)
            #expect(RealmConfigTests.summary(host.host) == Summary(), "x-workers \(workers ?? "absent")")
            #expect(host.workers.map(RealmConfigTests.summary) == [Summary()], "x-workers \(workers ?? "absent")")
            #expect(host.host.environment.isEmpty)
            #expect(host.warnings.isEmpty)
            #expect(host.realm == "prod")
        }
    }

    @Test func everyKeyIsReadFromTheWorker() throws {
        let host = try RealmConfigTests.host("""
        {"core": {"version": "8.2.0", "threads": 8, "daemons": 3, "env": {"LAVA_X": "y"},
                  "stop_minutes": 60, "heartbeat_minutes": 2}}
        """)
        #expect(RealmConfigTests.summary(host.host) == Summary(version: "8.2.0", threads: 8, daemons: 3, env: ["LAVA_X": "y"],
                                                               stopMinutes: 60, heartbeatMinutes: 2))
    }

    @Test func everyKeyFallsBackToUnderscore() throws {
        let host = try RealmConfigTests.host("""
        {"_": {"version": "8.1.0", "threads": 8, "daemons": 3, "env": {"LAVA_X": "y"},
               "stop_minutes": 60, "heartbeat_minutes": 2}}
        """)
        #expect(RealmConfigTests.summary(host.host) == Summary(version: "8.1.0", threads: 8, daemons: 3, env: ["LAVA_X": "y"],
                                                               stopMinutes: 60, heartbeatMinutes: 2))
    }

    @Test func fallbackIsPerKey() throws {
        let workers = """
        {"_": {"version": "8.1.0", "threads": 4, "daemons": 2, "stop_minutes": 10, "heartbeat_minutes": 3},
         "core": {"daemons": 5, "heartbeat_minutes": 7},
         "batch": {"version": "8.2.0", "threads": "16"}}
        """
        let core = try RealmConfigTests.host(workers, worker: "core").host
        #expect(core.version == "8.1.0")
        #expect(core.threads == 4)
        #expect(core.daemons == 5)
        #expect(core.stopMinutes == 10)
        #expect(core.heartbeatMinutes == 7)
        let batch = try RealmConfigTests.host(workers, worker: "batch").host
        #expect(batch.version == "8.2.0")
        #expect(batch.threads == 16)
        #expect(batch.daemons == 2)
        #expect(batch.stopMinutes == 10)
        #expect(batch.heartbeatMinutes == 3)
        // A worker with no entry of its own takes everything from `_`.
        let other = try RealmConfigTests.host(workers, worker: "other").host
        #expect(other.version == "8.1.0")
        #expect(other.threads == 4)
        #expect(other.daemons == 2)
        #expect(other.worker == "other")
    }

    @Test func workersOwnValuesIgnoreOtherWorkers() throws {
        let host = try RealmConfigTests.host(#"{"batch": {"threads": 9, "version": "7.0.0"}}"#)
        #expect(host.host.threads == nil)
        #expect(host.host.version == nil)
    }

    // MARK: env

    @Test func workerEnvReplacesUnderscoreEnvWhole() throws {
        let workers = """
        {"_": {"env": {"A": "1", "B": "2"}},
         "core": {"env": {"C": "3"}},
         "empty": {"env": {}},
         "plain": {"threads": 2}}
        """
        #expect(RealmConfigTests.environment(try RealmConfigTests.host(workers, worker: "core").host) == ["C": "3"])
        #expect(RealmConfigTests.environment(try RealmConfigTests.host(workers, worker: "empty").host) == [:])
        #expect(RealmConfigTests.environment(try RealmConfigTests.host(workers, worker: "plain").host) == ["A": "1", "B": "2"])
        #expect(RealmConfigTests.environment(try RealmConfigTests.host(workers, worker: "absent").host) == ["A": "1", "B": "2"])
    }

    @Test func envWithOnlyBadKeysStillReplacesUnderscoreEnv() throws {
        let host = try RealmConfigTests.host(#"{"_": {"env": {"A": "1"}}, "core": {"env": {"bad-key": "x"}}}"#)
        #expect(host.host.environment.isEmpty)
        #expect(host.warnings.count == 1)
    }

    static let trickyValues: [String: String] = [
        "DQ": "say \"hi\"",
        "SQ": "it's 'quoted'",
        "DOLLAR": "$HOME ${PATH} $(id) $$",
        "BACKTICK": "`rm -rf /`",
        "NEWLINES": "line1\nline2\r\n\tindented\n",
        "SEMI": "a; b && c | d > /tmp/x",
        "EMPTY": "",
        "SPACES": "  leading and trailing  ",
        "EQUALS": "a=b=c",
        "BACKSLASH": #"C:\path\n"#,
        "UNICODE": "Grüße 😀",
        "STAR": "* ? [a-z] ~",
    ]

    @Test func envValuesArePassedVerbatim() throws {
        var members = [JSONMember]()
        for (name, value) in RealmConfigTests.trickyValues.sorted(by: { $0.key < $1.key }) {
            members.append(JSONMember(name, .string(value)))
        }
        let env = JSONValue.object(members).serialized()
        let host = try RealmConfigTests.host(#"{"core": {"env": \#(env)}}"#)
        #expect(RealmConfigTests.environment(host.host) == RealmConfigTests.trickyValues)
        #expect(host.warnings.isEmpty)
    }

    @Test func typedEnvValuesArePassedVerbatim() throws {
        let json = """
        {"Item": {"realm": {"S": "prod"}, "x-workers": {"M": {"core": {"M": {"env": {"M": {
          "Q": {"S": "\\"$X\\" `y` 'z'\\n"}, "NUM": {"N": "0012.50"}, "FLAG": {"BOOL": false}}}}}}}}}
        """
        let host = try RealmConfig(realm: "prod", item: try load(json, realm: "prod")).host(worker: "core")
        #expect(RealmConfigTests.environment(host.host) == ["Q": "\"$X\" `y` 'z'\n", "NUM": "0012.50", "FLAG": "false"])
    }

    @Test func badEnvKeysAreSkippedWithAWarning() throws {
        let bad = ["bad-key", "1ST", "has space", "", "ÄB", "A.B", "X=Y", "$HOME"]
        var members = [JSONMember("GOOD_1", .string("g")), JSONMember("_under", .string("u")), JSONMember("lower", .string("l"))]
        for name in bad { members.append(JSONMember(name, .string("v"))) }
        let host = try RealmConfigTests.host(#"{"core": {"env": \#(JSONValue.object(members).serialized())}}"#)
        #expect(RealmConfigTests.environment(host.host) == ["GOOD_1": "g", "_under": "u", "lower": "l"])
        #expect(host.warnings.count == bad.count, "\(host.warnings)")
        for name in bad {
            let warning = host.warnings.first { $0.contains("\"\(name)\"") }
            #expect(warning != nil, "no warning names \(name.debugDescription): \(host.warnings)")
            #expect(warning?.contains("prod") == true)
            #expect(warning?.contains("core") == true)
        }
    }

    @Test func badEnvKeysOfUnderscoreWarnForTheWorkersThatUseThem() throws {
        let host = try RealmConfigTests.host(#"{"_": {"env": {"OK": "1", "no-good": "2"}}, "core": {"workers": "core batch"}}"#)
        #expect(RealmConfigTests.environment(host.host) == ["OK": "1"])
        #expect(RealmConfigTests.environment(host.workers[1]) == ["OK": "1"])
        #expect(!host.warnings.isEmpty)
        #expect(host.warnings.allSatisfy { $0.contains("\"no-good\"") }, "\(host.warnings)")
    }

    @Test(arguments: [
        #"{"core": {"env": {"A": {"nested": "x"}}}}"#,
        #"{"core": {"env": {"A": ["x"]}}}"#,
        #"{"core": {"env": {"A": null}}}"#,
        #"{"core": {"env": {"A": "nul\u0000byte"}}}"#,
    ])
    func envValuesThatCannotBePassedAreErrorsNamingTheKey(_ workers: String) {
        let error = RealmConfigTests.configError(workers)
        #expect(error?.message.contains("prod") == true, "\(String(describing: error))")
        #expect(error?.message.contains("core") == true, "\(String(describing: error))")
        #expect(error?.message.contains("env.A") == true, "\(String(describing: error))")
    }

    // MARK: workers

    @Test func workersListIsRunInItsOrder() throws {
        let host = try RealmConfigTests.host(#"{"core": {"workers": "batch core extra"}}"#)
        #expect(host.workers.map(\.worker) == ["batch", "core", "extra"])
        #expect(host.host.worker == "core")
    }

    @Test func workersListDropsDuplicatesAndExtraWhitespace() throws {
        let host = try RealmConfigTests.host(#"{"core": {"workers": "  core\tbatch  core batch\nextra  "}}"#)
        #expect(host.workers.map(\.worker) == ["core", "batch", "extra"])
    }

    @Test func workersListFallsBackToUnderscore() throws {
        let host = try RealmConfigTests.host(#"{"_": {"workers": "core batch"}}"#)
        #expect(host.workers.map(\.worker) == ["core", "batch"])
        let own = try RealmConfigTests.host(#"{"_": {"workers": "core batch"}, "core": {"workers": "core"}}"#)
        #expect(own.workers.map(\.worker) == ["core"])
    }

    @Test func eachListedWorkerTakesItsOwnKeysWithFallback() throws {
        let host = try RealmConfigTests.host("""
        {"_": {"daemons": 3, "env": {"X": "shared"}, "version": "8.0.0"},
         "core": {"workers": "core batch report", "version": "8.2.0"},
         "batch": {"version": "8.1.0", "threads": "2", "env": {"Y": "own"}},
         "report": {"daemons": 0}}
        """)
        #expect(host.workers.map(\.worker) == ["core", "batch", "report"])
        let core = host.workers[0], batch = host.workers[1], report = host.workers[2]
        #expect(core == host.host)
        #expect(core.version == "8.2.0")
        #expect(core.daemons == 3)
        #expect(RealmConfigTests.environment(core) == ["X": "shared"])
        #expect(batch.version == "8.1.0")
        #expect(batch.threads == 2)
        #expect(batch.daemons == 3)
        #expect(RealmConfigTests.environment(batch) == ["Y": "own"])
        #expect(report.version == "8.0.0")
        #expect(report.daemons == 0)
        #expect(report.threads == nil)
    }

    @Test func aBadValueOfAListedWorkerIsAnError() {
        let error = RealmConfigTests.configError(#"{"core": {"workers": "core batch"}, "batch": {"threads": "lots"}}"#)
        #expect(error?.message.contains("batch") == true, "\(String(describing: error))")
        #expect(error?.message.contains(#"threads: "lots""#) == true, "\(String(describing: error))")
    }

    @Test(arguments: [
        (#"{"core": {"workers": "core ba/d"}}"#, "ba/d"),
        (#"{"core": {"workers": "core -x"}}"#, "-x"),
        (#"{"core": {"workers": "core .."}}"#, ".."),
        (#"{"core": {"workers": "core $(id)"}}"#, "$(id)"),
        (#"{"core": {"workers": ""}}"#, #"workers: """#),
        (#"{"core": {"workers": "   "}}"#, #"workers: "   ""#),
        (#"{"core": {"workers": 5}}"#, "workers: 5"),
        (#"{"core": {"workers": ["a", "b"]}}"#, "workers"),
        (#"{"_": {"workers": "core b@d"}}"#, "b@d"),
    ] as [(String, String)])
    func badWorkersListsAreErrors(_ workers: String, _ named: String) {
        let error = RealmConfigTests.configError(workers)
        #expect(error?.message.contains("prod") == true, "\(String(describing: error))")
        #expect(error?.message.contains("workers") == true, "\(String(describing: error))")
        #expect(error?.message.contains(named) == true, "\(String(describing: error)) should name \(named)")
    }

    // MARK: Bad values

    @Test(arguments: [
        ("threads", #""6x""#),
        ("threads", #""""#),
        ("threads", #""4.5""#),
        ("threads", #"" 6""#),
        ("threads", #""+6""#),
        ("threads", "4.0"),
        ("threads", "1e2"),
        ("threads", "true"),
        ("threads", #""99999999999999999999""#),
        ("threads", "99999999999999999999"),
        ("daemons", #""two""#),
        ("daemons", "-1"),
        ("daemons", "1.5"),
        ("stop_minutes", "721"),
        ("stop_minutes", "-1"),
        ("stop_minutes", "5.5"),
        ("stop_minutes", #""abc""#),
        ("heartbeat_minutes", "0"),
        ("heartbeat_minutes", "31"),
        ("heartbeat_minutes", #""x""#),
        ("version", "8"),
        ("version", #""latest""#),
        ("version", #""""#),
        ("version", #""8.2.0; rm -rf /""#),
        ("version", #""../8.2.0""#),
        ("env", #""A=1""#),
        ("env", "[1]"),
    ] as [(String, String)])
    func badValuesAreErrorsNamingRealmWorkerKeyAndValue(_ key: String, _ value: String) throws {
        let error = RealmConfigTests.configError(#"{"core": {"\#(key)": \#(value)}}"#)
        let message = error?.message ?? ""
        #expect(message.contains("prod"), "\(message)")
        #expect(message.contains("core"), "\(message)")
        // Scalars are shown as written (strings quoted), so the operator can find the value.
        let shown = value.hasPrefix("[") ? "\(key):" : "\(key): \(value)"
        #expect(message.contains(shown), "\(message) should contain \(shown)")
    }

    @Test func theFamousExample() {
        let error = RealmConfigTests.configError(#"{"core": {"threads": "6x"}}"#)
        #expect(error?.message.hasPrefix("prod: ") == true, "\(String(describing: error))")
        #expect(error?.message.contains(#"worker core: threads: "6x""#) == true, "\(String(describing: error))")
    }

    @Test func aBadValueInUnderscoreNamesUnderscore() {
        let error = RealmConfigTests.configError(#"{"_": {"daemons": "many"}, "core": {}}"#)
        #expect(error?.message.contains("prod") == true, "\(String(describing: error))")
        #expect(error?.message.contains("_") == true, "\(String(describing: error))")
        #expect(error?.message.contains(#"daemons: "many""#) == true, "\(String(describing: error))")
    }

    @Test(arguments: [
        ("stop_minutes", 0), ("stop_minutes", 720), ("stop_minutes", 1),
        ("heartbeat_minutes", 1), ("heartbeat_minutes", 30),
    ] as [(String, Int)])
    func rangeBoundsAreAccepted(_ key: String, _ value: Int) throws {
        let host = try RealmConfigTests.host(#"{"core": {"\#(key)": \#(value)}}"#)
        #expect((key == "stop_minutes" ? host.host.stopMinutes : host.host.heartbeatMinutes) == value)
    }

    @Test(arguments: ["threads", "daemons"])
    func countsMayBeNumbersOrStringsOfDigits(_ key: String) throws {
        for typed in [#"{"N": "6"}"#, #"{"S": "6"}"#, #"{"N": "06"}"#, #"{"S": "06"}"#] {
            let json = #"{"Item": {"realm": {"S": "prod"}, "x-workers": {"M": {"core": {"M": {"\#(key)": \#(typed)}}}}}}"#
            let host = try RealmConfig(realm: "prod", item: try load(json, realm: "prod")).host(worker: "core")
            #expect((key == "threads" ? host.host.threads : host.host.daemons) == 6, "\(typed)")
        }
    }

    @Test func versionMayCarryAPreReleaseSuffix() throws {
        #expect(try RealmConfigTests.host(#"{"core": {"version": "8.2.0rc1"}}"#).host.version == "8.2.0rc1")
    }

    // MARK: Structure

    @Test func xWorkersMustBeAMap() {
        let error = #expect(throws: LavaError.self) {
            try RealmConfig(realm: "prod", item: ["realm": .string("prod"), "x-workers": .string("core")])
        }
        #expect(error?.code == .invalidConfig)
        #expect(error?.message.contains("x-workers") == true)
        #expect(error?.message.contains("prod") == true)
    }

    @Test(arguments: ["core", "_"])
    func aWorkerEntryMustBeAMap(_ entry: String) {
        let error = RealmConfigTests.configError(#"{"\#(entry)": "threads=4"}"#)
        #expect(error?.message.contains("prod") == true, "\(String(describing: error))")
        #expect(error?.message.contains("worker \(entry)") == true, "\(String(describing: error))")
    }

    @Test(arguments: ["", "../etc", "a/b", "-rf", ".hidden", "sp ace", String(repeating: "w", count: 65)])
    func unsafeWorkerNamesAreRejected(_ name: String) throws {
        let config = try RealmConfig(realm: "prod", item: try RealmConfigTests.item("{}"))
        let error = #expect(throws: LavaError.self) { try config.host(worker: name) }
        #expect(error?.code == .invalidConfig)
    }

    @Test(arguments: ["", "../etc", "a/b", "-rf"])
    func unsafeRealmNamesAreRejected(_ name: String) {
        let error = #expect(throws: LavaError.self) { try RealmConfig(realm: name, item: [:]) }
        #expect(error?.code == .invalidConfig)
    }

    @Test func safeNamesAreAccepted() throws {
        let config = try RealmConfig(realm: "prod-eu_1.x", item: try RealmConfigTests.item("{}", realm: "prod-eu_1.x"))
        let host = try config.host(worker: "Core_2-a.b")
        #expect(host.host.worker == "Core_2-a.b")
        #expect(host.realm == "prod-eu_1.x")
    }
}
