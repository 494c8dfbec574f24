import Foundation
import LavaJSON
import LavaSystem
import LavaTestSupport
import Testing

/// Exit codes, error lines and output of the built binary.
@Suite struct CLITests {
    static let typedRealm = """
    {"Item": {"realm": {"S": "prod"}, "x-workers": {"M": {
      "_": {"M": {"daemons": {"N": "2"}, "env": {"M": {"SECRET_TOKEN": {"S": "s3cr3t-v@lue"}, "bad-key": {"S": "x"}}}}},
      "core": {"M": {"workers": {"S": "core batch"}, "threads": {"S": "4"}}},
      "batch": {"M": {"version": {"S": "8.1.0"}}}
    }}}}
    """

    func fixture() -> LocalFixture {
        let fixture = LocalFixture()
        let arch = fixture.machineArch
        fixture.bundle("lava-8.1.0-amzn2023-py3.11-\(arch).tar.bz2", TestBundle.lava(version: "8.1.0"))
        fixture.bundle("lava-8.2.0-amzn2023-py3.11-\(arch).tar.bz2", TestBundle.lava(version: "8.2.0"))
        fixture.bundle("lava-8.3.0rc1-amzn2023-py3.11-\(arch).tar.bz2", TestBundle.lava(version: "8.3.0rc1"))
        fixture.bundle("lava-9.0.0-ubuntu24-py3.12-\(arch).tar.bz2", os: "ubuntu24", TestBundle.lava(version: "9.0.0"))
        fixture.directory.write("code/_boot_/10-first.sh", "#!/bin/sh\n", mode: 0o755)
        fixture.directory.write("code/_boot_/50-lava.sh", "#!/bin/sh\n", mode: 0o755)
        fixture.directory.write("code/_boot_/90-last.sh", "#!/bin/sh\n", mode: 0o755)
        fixture.directory.write("code/_boot_/README.md", "docs\n")
        fixture.directory.write("code/_boot_/sub/deeper.sh", "#!/bin/sh\n", mode: 0o755)
        fixture.realms(CLITests.typedRealm)
        return fixture
    }

    func expectOneErrorLine(_ result: CommandResult, containing text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.exitCode == 1, "exit code", sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
        #expect(lines.count == 1, "one line on stderr, got: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(lines.first?.hasPrefix("lava-boot: error: ") == true, "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.contains(text), "\(result.stderr) should contain \(text)", sourceLocation: sourceLocation)
    }

    @Test func versionFlag() {
        let result = LavaBootBinary.run(["--version"])
        #expect(result.exitCode == 0)
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").count == 3)
    }

    @Test(arguments: [
        ["plan"],
        ["plan", "file:///tmp", "realm"],
        ["plan", "file:///tmp", "r", "w", "--bogus"],
        ["install", "file:///tmp", "r", "w", "--installer", "rpm"],
        ["plan", "file:///tmp", "r", "w", "--level", "loud"],
        ["versions", "file:///tmp", "--all", "--os", "amzn2023"],
        ["status", "--bogus"],
        ["boot", "file:///tmp", "r", "w", "--script-timeout", "soon"],
        // Durations are digits, an optional fraction and unit: nothing Double's parser also takes.
        ["boot", "file:///tmp", "r", "w", "--stop-timeout", "0x10"],
        ["boot", "file:///tmp", "r", "w", "--stop-timeout", "1e3"],
        ["boot", "file:///tmp", "r", "w", "--stop-timeout", "-5s"],
        ["boot", "file:///tmp", "r", "w", "--script-timeout", "+3m"],
        ["boot", "file:///tmp", "r", "w", "--script-timeout", ".5m"],
        ["boot", "file:///tmp", "r", "w", "--script-timeout", "inf"],
        // An empty --root would act on the live system.
        ["install", "file:///tmp", "r", "w", "--root", ""],
        ["plan", "file:///tmp", "r", "w", "--root="],
    ])
    func usageErrorsExit64WithUsage(_ arguments: [String]) {
        let result = LavaBootBinary.run(arguments)
        #expect(result.exitCode == 64, "\(arguments): \(result.stderr)")
        #expect(result.stderr.contains("Usage:") || result.stderr.contains("USAGE:"), "\(result.stderr)")
    }

    /// Out of range is a usage error naming option, value and why, before anything runs: an
    /// interval of 0 would spin, and beyond 720h the deadline arithmetic would trap.
    @Test(arguments: [
        ("--heartbeat-interval", "0s", "must be longer than 0"),
        ("--heartbeat-interval", "0", "must be longer than 0"),
        ("--heartbeat-interval", "99999999999999999999", "longer than 720h"),
        ("--script-timeout", "99999999999999999999", "longer than 720h"),
        ("--stop-timeout", "721h", "longer than 720h"),
        ("--ready-after", "43201m", "longer than 720h"),
    ])
    func durationsOutOfRangeAreUsageErrors(_ option: String, _ value: String, _ reason: String) {
        let result = LavaBootBinary.run(["boot", "file:///tmp", "r", "w", option, value])
        #expect(result.exitCode == 64, "\(result.stderr)")
        let error = result.stderr.split(separator: "\n").first { $0.hasPrefix("Error:") } ?? ""
        #expect(error.contains("'\(value)'") && error.contains(option) && error.contains(reason), "\(result.stderr)")
        #expect(result.stderr.contains("Usage:"), "\(result.stderr)")
    }

    /// Accepted durations get past parsing: the boot then fails on the missing realm, exit 1.
    @Test(arguments: ["1.5m", "90", "720h"])
    func durationsInRangeAreAccepted(_ value: String) {
        let fixture = fixture()
        for option in ["--heartbeat-interval", "--script-timeout", "--stop-timeout", "--ready-after"] {
            let result = LavaBootBinary.run(["boot", fixture.source, "staging", "core", "--realms-file", fixture.realmsFile,
                                             "--root", fixture.root, "--user-mode", option, value])
            expectOneErrorLine(result, containing: "staging: no such realm")
        }
    }

    @Test(arguments: ["s4://bucket/prefix", "s3://", "file://relative/path", "http://example.com/x", "bucket/prefix"])
    func malformedSourcesAreRuntimeErrorsNamingTheSource(_ source: String) {
        let fixture = fixture()
        for command in ["plan", "install"] {
            let result = LavaBootBinary.run([command, source, "prod", "core", "--realms-file", fixture.realmsFile, "--root", fixture.root])
            expectOneErrorLine(result, containing: source)
        }
        expectOneErrorLine(LavaBootBinary.run(["versions", source]), containing: source)
    }

    @Test func s3SourcesNeedARegion() {
        let fixture = fixture()
        let result = LavaBootBinary.run(["plan", "s3://lava-code/prod", "prod", "core", "--realms-file", fixture.realmsFile],
                                        environment: ["AWS_EC2_METADATA_DISABLED": "true", "HOME": fixture.directory.path])
        expectOneErrorLine(result, containing: "no AWS region")
    }

    @Test func fileSourcesWithARealmsFileNeverTouchAWS() {
        let fixture = fixture()
        // An unreachable IMDS and no credentials: any AWS access would fail or hang.
        let result = LavaBootBinary.run(["plan", fixture.source, "prod", "core", "--realms-file", fixture.realmsFile, "--root", fixture.root],
                                        environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"])
        #expect(result.exitCode == 0, "\(result.stderr)")
    }

    @Test func missingRealmFailsNamingIt() {
        let fixture = fixture()
        let result = LavaBootBinary.run(["plan", fixture.source, "staging", "core", "--realms-file", fixture.realmsFile, "--root", fixture.root])
        expectOneErrorLine(result, containing: "staging: no such realm")
    }

    @Test func badConfigValueNamesRealmWorkerKeyAndValue() {
        let fixture = fixture()
        fixture.realms(#"{"realm": "prod", "x-workers": {"core": {"threads": "6x"}}}"#)
        let result = LavaBootBinary.run(["plan", fixture.source, "prod", "core", "--realms-file", fixture.realmsFile, "--root", fixture.root])
        expectOneErrorLine(result, containing: #"prod: worker core: threads: "6x""#)
    }

    /// A realms file is a regular file of at most 16 MiB of UTF-8: anything else is refused
    /// with its name, never read until memory runs out or waited on.
    @Test func realmsFileMustBeASmallRegularUTF8File() throws {
        let fixture = fixture()
        func plan(_ path: String) -> CommandResult {
            LavaBootBinary.run(["plan", fixture.source, "prod", "core", "--realms-file", path, "--root", fixture.root])
        }
        expectOneErrorLine(plan("/dev/zero"), containing: "realms file /dev/zero is not a regular file")
        let fifo = fixture.directory.sub("realms.fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        expectOneErrorLine(plan(fifo), containing: "realms file \(fifo) is not a regular file")
        expectOneErrorLine(plan(fixture.directory.path), containing: "is not a regular file")
        let big = fixture.directory.sub("big.json")
        try Files.writeAtomically(big, Array(#"{"realm": "prod", "pad": ""#.utf8) + [UInt8](repeating: 0x61, count: 17 << 20) + Array(#""}"#.utf8))
        expectOneErrorLine(plan(big), containing: "realms file \(big) is larger than 16 MiB")
        let latin1 = fixture.directory.sub("latin1.json")
        try Files.writeAtomically(latin1, Array(#"{"realm": "prod", "x-workers": {"core": {"env": {"NAME": "Ren"#.utf8) + [0xE9] + Array(#""}}}}"#.utf8))
        expectOneErrorLine(plan(latin1), containing: "realms file \(latin1) is not valid UTF-8")
    }

    /// `lava-W` must be an account name useradd takes: refused already by `plan`.
    @Test func workerNamesThatMakeNoAccountAreRefusedByPlan() {
        let fixture = fixture()
        let long = String(repeating: "w", count: 28)
        fixture.realms(#"{"realm": "prod", "x-workers": {"\#(long)": {"daemons": 1}}}"#)
        let result = LavaBootBinary.run(["plan", fixture.source, "prod", long, "--realms-file", fixture.realmsFile, "--root", fixture.root])
        expectOneErrorLine(result, containing: "prod: worker \(long): account name lava-\(long) is longer than 32 characters")
        fixture.realms(#"{"realm": "prod", "x-workers": {"core": {"workers": "core \#(long)"}}}"#)
        let parasitic = LavaBootBinary.run(["plan", fixture.source, "prod", "core", "--realms-file", fixture.realmsFile, "--root", fixture.root])
        expectOneErrorLine(parasitic, containing: #"prod: worker core: workers: "core \#(long)" names "\#(long)": account name"#)
        let fits = String(repeating: "w", count: 27)
        fixture.realms(#"{"realm": "prod", "x-workers": {"\#(fits)": {"daemons": 1}}}"#)
        #expect(LavaBootBinary.run(["plan", fixture.source, "prod", fits, "--realms-file", fixture.realmsFile, "--root", fixture.root]).exitCode == 0)
    }

    /// A region or bucket becomes a host name: an injected one is refused before any request, so
    /// a listener at the address it names sees no connection.
    @Test func regionAndBucketInjectionsReachNoHost() throws {
        let listener = try LoopbackListener()
        let environment = ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_EC2_METADATA_DISABLED": "true",
                           "HOME": "/nonexistent"]
        let injectedRegion = LavaBootBinary.run(["plan", "s3://lava-code/prod", "prod", "core", "--region", "x@127.0.0.1:\(listener.port)/"],
                                                environment: environment)
        expectOneErrorLine(injectedRegion, containing: #"invalid AWS region "x@127.0.0.1:\#(listener.port)/""#)
        let fromEnvironment = LavaBootBinary.run(["versions", "s3://lava-code/prod"],
                                                 environment: environment.merging(["AWS_REGION": "us-east-1.127.0.0.1:\(listener.port)#"]) { $1 })
        expectOneErrorLine(fromEnvironment, containing: "invalid AWS region")
        for bucket in ["x@127.0.0.1:\(listener.port)", "127.0.0.1", "lava..code", "Lava-Code"] {
            let result = LavaBootBinary.run(["versions", "s3://\(bucket)/prod", "--region", "us-east-1"], environment: environment)
            expectOneErrorLine(result, containing: "invalid bucket name \"\(bucket)\"")
        }
        #expect(listener.pendingConnections() == 0, "no request reached the injected address")
    }

    @Test func theFatalErrorReachesTheLogFileToo() throws {
        let fixture = fixture()
        let log = fixture.directory.sub("lava-boot.log")
        let result = LavaBootBinary.run(["plan", fixture.source, "staging", "core", "--realms-file", fixture.realmsFile,
                                         "--root", fixture.root, "--log", log])
        expectOneErrorLine(result, containing: "staging: no such realm")
        #expect(try Files.readText(log)?.contains("staging: no such realm") == true)
    }

    @Test func missingRootIsAnError() {
        let fixture = fixture()
        let result = LavaBootBinary.run(["plan", fixture.source, "prod", "core", "--realms-file", fixture.realmsFile, "--root", "/nonexistent/root"])
        expectOneErrorLine(result, containing: "--root /nonexistent/root")
    }

    @Test func planPrintsEverythingAndHidesEnvValues() {
        let fixture = fixture()
        // Global options before the positionals work as well as after.
        let result = LavaBootBinary.run(["plan", "--root", fixture.root, fixture.source, "prod", "core", "--realms-file", fixture.realmsFile])
        #expect(result.exitCode == 0, "\(result.stderr)")
        let arch = fixture.machineArch
        #expect(result.stdout.contains("lava-8.2.0-amzn2023-py3.11-\(arch).tar.bz2 (newest new-style, native installer)"))
        #expect(result.stdout.contains("lava-8.1.0-amzn2023-py3.11-\(arch).tar.bz2 (pinned, native installer)"))
        #expect(result.stdout.contains("SECRET_TOKEN (values hidden)"))
        #expect(result.stdout.contains("run   10-first.sh"))
        #expect(result.stdout.contains("skip  50-lava.sh"))
        #expect(!result.stdout.contains("README"))
        #expect(!result.stdout.contains("deeper.sh"))
        #expect(!(result.stdout + result.stderr).contains("s3cr3t"))
        #expect(result.stderr.contains("bad-key"), "a skipped env key is warned about")
        #expect(!Files.exists(fixture.root + "/opt"), "plan changes nothing")
    }

    @Test func planJSONFollowsTheDocumentedSchema() throws {
        let fixture = fixture()
        let result = LavaBootBinary.run(["plan", fixture.source, "prod", "core", "--realms-file", fixture.realmsFile,
                                         "--root", fixture.root, "--json", "--skip-script", "9*"])
        #expect(result.exitCode == 0, "\(result.stderr)")
        let json = try JSONValue(parsing: result.stdout)
        #expect(json["platform"]?["os"] == .string("amzn2023"))
        #expect(json["platform"]?["python"] == .string("3.11"))
        #expect(json["platform"]?["arch"] == .string(fixture.machineArch))
        guard case .array(let workers)? = json["workers"] else { Issue.record("no workers"); return }
        #expect(workers.count == 2)
        #expect(workers[0]["worker"] == .string("core"))
        #expect(workers[0]["version"] == .string("8.2.0"))
        #expect(workers[0]["reason"] == .string("newest new-style"))
        #expect(workers[0]["daemons"] == .number("2"))
        #expect(workers[0]["threads"] == .number("4"))
        #expect(workers[0]["env"] == .array([.string("SECRET_TOKEN")]))
        #expect(workers[1]["worker"] == .string("batch"))
        #expect(workers[1]["reason"] == .string("pinned"))
        #expect(workers[1]["threads"] == .null)
        #expect(json["scriptlets"] == .array([
            .object([JSONMember("name", .string("10-first.sh")), JSONMember("action", .string("run"))]),
            .object([JSONMember("name", .string("50-lava.sh")), JSONMember("action", .string("run"))]),
            .object([JSONMember("name", .string("90-last.sh")), JSONMember("action", .string("skip"))]),
        ]))
        #expect(!result.stdout.contains("s3cr3t"))
    }

    @Test func planOverridesPlatform() throws {
        let fixture = fixture()
        let result = LavaBootBinary.run(["plan", fixture.source, "prod", "core", "--realms-file", fixture.realmsFile,
                                         "--os", "ubuntu24", "--python", "3.12", "--json"])
        #expect(result.exitCode == 1, "8.1.0 is pinned for batch and not built for ubuntu24")
        #expect(result.stderr.contains("cannot find lava v8.1.0 for ubuntu24/py3.12/"))
        #expect(result.stderr.contains("9.0.0"), "lists the versions this platform has")
    }

    @Test func versionsListsThisPlatformOrAll() {
        let fixture = fixture()
        let mine = LavaBootBinary.run(["versions", fixture.source, "--root", fixture.root])
        #expect(mine.exitCode == 0, "\(mine.stderr)")
        #expect(mine.stdout.contains("8.3.0rc1"))
        #expect(mine.stdout.contains("new (pre-release)"))
        #expect(!mine.stdout.contains("9.0.0"))
        let all = LavaBootBinary.run(["versions", fixture.source, "--all"])
        #expect(all.exitCode == 0)
        #expect(all.stdout.contains("ubuntu24"))
        #expect(all.stdout.contains("lava-9.0.0-ubuntu24-py3.12-"))
        let lines = all.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("VERSION") == true)
        #expect(lines.count == 5)
    }

    @Test func jsonLogLinesCarryTheContractFieldsAndNoSecrets() throws {
        let fixture = fixture()
        let logFile = fixture.directory.sub("lava-boot.log")
        let result = LavaBootBinary.run(["install", fixture.source, "prod", "core", "--realms-file", fixture.realmsFile,
                                         "--root", fixture.root, "--log", logFile, "--log-json", "--level", "debug"])
        #expect(result.exitCode == 0, "\(result.stderr)")
        let text = try #require(try Files.readText(logFile))
        let lines = text.split(separator: "\n")
        #expect(lines.count >= 3)
        for line in lines {
            let json = try JSONValue(parsing: String(line))
            #expect(json["ts"]?.stringValue?.hasSuffix("Z") == true)
            #expect(["debug", "info", "warning", "error"].contains(json["level"]?.stringValue ?? ""))
            #expect(json["msg"]?.stringValue != nil)
            #expect(json["component"] != nil)
        }
        #expect(text.contains("\"realm\":\"prod\""))
        #expect(text.contains("\"worker\":\"core\""))
        #expect(text.contains("\"level\":\"debug\""))
        #expect(!text.contains("s3cr3t"))
        #expect(result.stderr.isEmpty, "everything went to the log file")

        let quiet = LavaBootBinary.run(["install", fixture.source, "prod", "core", "--realms-file", fixture.realmsFile,
                                        "--root", fixture.root, "--level", "error"])
        #expect(quiet.exitCode == 0)
        #expect(quiet.stderr.isEmpty, "--level error hides info lines: \(quiet.stderr)")
    }
}
