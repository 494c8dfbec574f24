import Dispatch
import Foundation
import LavaJSON
import LavaSystem
import LavaTestSupport
import Synchronization
import Testing

/// pin / unpin / pins against moto's DynamoDB, through the fault proxy (SPEC §4).
@Suite struct PinTests {
    let moto: MotoServer
    let proxy: FaultProxy
    let fixture = LocalFixture()
    var arch: String { fixture.machineArch }

    init() throws {
        moto = try MotoServer.start()
        proxy = try FaultProxy.start(upstream: moto.endpoint)
        try moto.createRealmsTable()
    }

    var environment: [String: String] {
        ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
         "AWS_ENDPOINT_URL": proxy.endpoint, "AWS_EC2_METADATA_DISABLED": "true", "HOME": fixture.directory.path,
         "LAVA_BOOT_RETRY_BASE_SECONDS": "0.01"]
    }

    func run(_ arguments: [String]) -> CommandResult {
        LavaBootBinary.run(arguments, environment: environment)
    }

    /// The item as moto holds it, in DynamoDB JSON.
    func item(_ realm: String = "prod") throws -> JSONValue? {
        guard let item = try moto.getItem(realm: realm) else { return nil }
        return try JSONValue(parsing: Array(try JSONSerialization.data(withJSONObject: item)))
    }

    func version(_ worker: String, in item: JSONValue?) -> JSONValue? {
        item?["x-workers"]?["M"]?[worker]?["M"]?["version"]
    }

    @Test func missingMapsAreCreatedAndOtherAttributesKept() throws {
        try moto.putItem(itemJSON: #"{"realm": {"S": "prod"}, "owner": {"S": "team-a"}}"#)
        let first = run(["pin", "--realm", "prod", "--worker", "core", "8.3.0"])
        #expect(first.exitCode == 0, "\(first.stderr)")
        #expect(first.stdout.contains("core: (none) → 8.3.0"), "\(first.stdout)")
        var stored = try item()
        #expect(version("core", in: stored) == .object([JSONMember("S", .string("8.3.0"))]))
        #expect(stored?["owner"] == .object([JSONMember("S", .string("team-a"))]))

        // x-workers exists, the worker does not: created beside the others.
        let second = run(["pin", "--realm", "prod", "--worker", "_", "8.2.0"])
        #expect(second.exitCode == 0, "\(second.stderr)")
        // The worker exists with other keys: only version is added.
        try moto.putItem(itemJSON: #"{"realm": {"S": "prod"}, "x-workers": {"M": {"web": {"M": {"daemons": {"N": "3"}, "env": {"M": {"A": {"S": "1"}}}}}}}}"#)
        let third = run(["pin", "--realm", "prod", "--worker", "web", "8.1.0"])
        #expect(third.exitCode == 0, "\(third.stderr)")
        stored = try item()
        #expect(version("web", in: stored) == .object([JSONMember("S", .string("8.1.0"))]))
        #expect(stored?["x-workers"]?["M"]?["web"]?["M"]?["daemons"] == .object([JSONMember("N", .string("3"))]))
        #expect(stored?["x-workers"]?["M"]?["web"]?["M"]?["env"]?["M"]?["A"] != nil)

        // Changing a pin prints old → new; the same version again changes nothing.
        let fourth = run(["pin", "--realm", "prod", "--worker", "web", "8.1.1"])
        #expect(fourth.stdout.contains("web: 8.1.0 → 8.1.1"), "\(fourth.stdout)")
        let again = run(["pin", "--realm", "prod", "--worker", "web", "8.1.1"])
        #expect(again.exitCode == 0)
        #expect(again.stdout.contains("web: already 8.1.1; nothing changed"), "\(again.stdout)")
    }

    @Test func concurrentPinsOfDifferentWorkersAllSurvive() throws {
        try moto.putItem(itemJSON: #"{"realm": {"S": "prod"}}"#)
        let workers = (1...8).map { "w\($0)" }
        let results = Mutex<[String: Int32]>([:])
        let environment = self.environment
        // Blocking runs on GCD threads, all started before any is waited for.
        let group = DispatchGroup()
        for worker in workers {
            DispatchQueue.global().async(group: group) {
                let result = LavaBootBinary.run(["pin", "--realm", "prod", "--worker", worker, "8.3.0"], environment: environment)
                results.withLock { $0[worker] = result.exitCode }
            }
        }
        group.wait()
        #expect(results.withLock { $0 } == Dictionary(uniqueKeysWithValues: workers.map { ($0, Int32(0)) }))
        let stored = try item()
        for worker in workers {
            #expect(version(worker, in: stored) == .object([JSONMember("S", .string("8.3.0"))]), "\(worker) lost: \(String(describing: stored))")
        }
    }

    @Test func expectMakesTheWriteConditional() throws {
        try moto.putItem(itemJSON: #"{"realm": {"S": "prod"}, "x-workers": {"M": {"core": {"M": {"version": {"S": "8.2.0"}}}}}}"#)
        let refused = run(["pin", "--realm", "prod", "--worker", "core", "8.3.0", "--expect", "8.1.0"])
        #expect(refused.exitCode == 1)
        #expect(refused.stderr.contains("lava-boot: error: prod: worker core: version is \"8.2.0\", not the expected \"8.1.0\"; nothing changed"),
                "\(refused.stderr)")
        #expect(version("core", in: try item()) == .object([JSONMember("S", .string("8.2.0"))]))

        let nothingPinned = run(["pin", "--realm", "prod", "--worker", "web", "8.3.0", "--expect", "8.2.0"])
        #expect(nothingPinned.exitCode == 1)
        #expect(nothingPinned.stderr.contains("version is not pinned, not the expected \"8.2.0\""), "\(nothingPinned.stderr)")

        let accepted = run(["pin", "--realm", "prod", "--worker", "core", "8.3.0", "--expect", "8.2.0"])
        #expect(accepted.exitCode == 0, "\(accepted.stderr)")
        #expect(accepted.stdout.contains("core: 8.2.0 → 8.3.0"))
        #expect(version("core", in: try item()) == .object([JSONMember("S", .string("8.3.0"))]))
    }

    @Test func versionsTheCodeAreaLacksAreRefused() throws {
        try moto.putItem(itemJSON: #"{"realm": {"S": "prod"}}"#)
        fixture.bundle("lava-8.3.0-amzn2023-py3.11-\(arch).tar.bz2", TestBundle.lava(version: "8.3.0"))
        fixture.bundle("lava-8.3.0-rocky9-py3.9-aarch64.tar.bz2", os: "rocky9", TestBundle.lava(version: "8.3.0"))
        fixture.bundle("lava-7.9.0.tar.bz2", os: "rocky9", TestBundle.lava(version: "7.9.0"))

        let absent = run(["pin", "--realm", "prod", "--worker", "core", "9.0.0", "--source", fixture.source])
        #expect(absent.exitCode == 1)
        #expect(absent.stderr.contains("no platform has lava 9.0.0 in"), "\(absent.stderr)")

        let otherPlatform = run(["pin", "--realm", "prod", "--worker", "core", "8.3.0", "--source", fixture.source,
                                 "--os", "amzn2023", "--python", "3.12"])
        #expect(otherPlatform.exitCode == 1)
        #expect(otherPlatform.stderr.contains("lava 8.3.0 is not in"), "\(otherPlatform.stderr)")
        #expect(otherPlatform.stderr.contains("it exists for: amzn2023/py3.11/\(arch), rocky9/py3.9/aarch64"), "\(otherPlatform.stderr)")
        #expect(try item()?["x-workers"] == nil, "a refused pin writes nothing")

        // The other spelling of the arch names the same platform; an old-style name serves any.
        let alias = arch == "x86_64" ? "x64" : "arm64"
        let present = run(["pin", "--realm", "prod", "--worker", "core", "8.3.0", "--source", fixture.source,
                           "--os", "amzn2023", "--arch", alias, "--python", "3.11"])
        #expect(present.exitCode == 0, "\(present.stderr)")
        #expect(present.stdout.contains("8.3.0 is in \(fixture.source)/_dist_/pkg for: amzn2023/py3.11/\(arch)"), "\(present.stdout)")
        let oldStyle = run(["pin", "--realm", "prod", "--worker", "web", "7.9.0", "--source", fixture.source, "--os", "rocky9", "--python", "3.12"])
        #expect(oldStyle.exitCode == 0, "\(oldStyle.stderr)")
        let anyPlatform = run(["pin", "--realm", "prod", "--worker", "batch", "8.3.0", "--source", fixture.source])
        #expect(anyPlatform.exitCode == 0, "\(anyPlatform.stderr)")
        #expect(anyPlatform.stdout.contains("rocky9/py3.9/aarch64"))
    }

    /// A throttled UpdateItem was never applied, so it is simply sent again; one whose answer was
    /// lost after it applied is not applied twice: its retry finds our own value, and the change
    /// is still reported against the value it replaced.
    @Test func throttledAndLostWritesAreAppliedOnce() throws {
        try moto.putItem(itemJSON: #"{"realm": {"S": "prod"}, "x-workers": {"M": {"core": {"M": {"version": {"S": "8.2.0"}}}}}}"#)
        try proxy.setFaults(json: #"{"throttle_target": "DynamoDB_20120810.UpdateItem", "throttle_count": 2}"#)
        let throttled = run(["pin", "--realm", "prod", "--worker", "core", "8.3.0"])
        #expect(throttled.exitCode == 0, "\(throttled.stderr)")
        #expect(throttled.stdout.contains("core: 8.2.0 → 8.3.0"), "\(throttled.stdout)")
        var counters = try proxy.counters()
        #expect((counters["faults"] as? [String: Int])?["throttle"] == 2, "\(counters)")

        try proxy.setFaults(json: #"{"reset": true, "lose_target": "DynamoDB_20120810.UpdateItem", "lose_count": 1}"#)
        let lost = run(["pin", "--realm", "prod", "--worker", "core", "8.4.0"])
        #expect(lost.exitCode == 0, "\(lost.stderr)")
        #expect(lost.stdout.contains("core: 8.3.0 → 8.4.0"), "\(lost.stdout)")
        counters = try proxy.counters()
        #expect((counters["faults"] as? [String: Int])?["lose"] == 1, "\(counters)")
        #expect(version("core", in: try item()) == .object([JSONMember("S", .string("8.4.0"))]))

        try proxy.setFaults(json: #"{"reset": true, "lose_target": "DynamoDB_20120810.UpdateItem", "lose_count": 1}"#)
        let lostUnpin = run(["unpin", "--realm", "prod", "--worker", "core"])
        #expect(lostUnpin.exitCode == 0, "\(lostUnpin.stderr)")
        #expect(lostUnpin.stdout.contains("core: 8.4.0 → (none)"), "\(lostUnpin.stdout)")
    }

    @Test func unpinRemovesOnlyTheVersion() throws {
        try moto.putItem(itemJSON: #"{"realm": {"S": "prod"}, "x-workers": {"M": {"core": {"M": {"version": {"S": "8.2.0"}, "threads": {"N": "4"}}}}}}"#)
        let removed = run(["unpin", "--realm", "prod", "--worker", "core"])
        #expect(removed.exitCode == 0, "\(removed.stderr)")
        #expect(removed.stdout.contains("core: 8.2.0 → (none)"))
        let stored = try item()
        #expect(version("core", in: stored) == nil)
        #expect(stored?["x-workers"]?["M"]?["core"]?["M"]?["threads"] == .object([JSONMember("N", .string("4"))]))

        for worker in ["core", "nobody"] {
            let nothing = run(["unpin", "--realm", "prod", "--worker", worker])
            #expect(nothing.exitCode == 0, "\(nothing.stderr)")
            #expect(nothing.stdout.contains("\(worker): nothing pinned; nothing changed"))
        }
    }

    @Test func pinsShowsEachWorkersEffectiveConfigAndItsOrigin() throws {
        try moto.putItem(itemJSON: #"""
            {"realm": {"S": "prod"}, "x-workers": {"M": {
              "_": {"M": {"version": {"S": "8.2.0"}, "threads": {"N": "4"}, "env": {"M": {"TOKEN": {"S": "s3cr3t"}}}}},
              "core": {"M": {"version": {"S": "8.3.0"}, "daemons": {"N": "2"}}},
              "web": {"M": {"threads": {"S": "6x"}}}}}}
            """#)
        let text = run(["pins", "--realm", "prod"])
        #expect(text.exitCode == 1, "web's bad threads value fails the command after the table")
        #expect(text.stderr.contains("threads: \"6x\""), "\(text.stderr)")
        let lines = text.stdout.split(separator: "\n").map(String.init)
        let core = try #require(lines.first { $0.hasPrefix("core ") })
        #expect(core.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                == ["core", "8.3.0", "4", "(_)", "2", "(core)", "TOKEN", "(_)", "(5)", "(5)"], "\(core)")
        #expect(lines.contains { $0.hasPrefix("_ ") && $0.contains("8.2.0") })
        #expect(!text.stdout.contains("s3cr3t"), "env values never shown")

        let json = run(["pins", "--realm", "prod", "--json"])
        let document = try JSONValue(parsing: json.stdout)
        guard case .array(let workers)? = document["workers"] else { Issue.record("no workers: \(json.stdout)"); return }
        let coreJSON = try #require(workers.first { $0["worker"] == .string("core") })
        #expect(coreJSON["version"] == .object([JSONMember("value", .string("8.3.0")), JSONMember("from", .string("own"))]))
        #expect(coreJSON["threads"] == .object([JSONMember("value", .number("4")), JSONMember("from", .string("_"))]))
        #expect(coreJSON["stop_minutes"] == .object([JSONMember("value", .number("5")), JSONMember("from", .string("default"))]))
        #expect(coreJSON["env"]?["value"] == .array([.string("TOKEN")]))
        let webJSON = try #require(workers.first { $0["worker"] == .string("web") })
        #expect(webJSON["error"]?.stringValue?.contains("6x") == true)
    }

    @Test func aMissingRealmIsNamed() throws {
        for arguments in [["pin", "--realm", "nope", "--worker", "core", "8.3.0"], ["unpin", "--realm", "nope", "--worker", "core"],
                          ["pins", "--realm", "nope"]] {
            let result = run(arguments)
            #expect(result.exitCode == 1, "\(arguments)")
            #expect(result.stderr.hasSuffix("lava-boot: error: nope: no such realm\n"), "\(arguments): \(result.stderr)")
        }
        let created = try moto.getItem(realm: "nope")
        #expect(created == nil, "pin never creates a realm")
    }

    @Test func badArgumentsAreUsageErrors() {
        for arguments in [["pin", "--realm", "prod", "--worker", "core", "latest"],
                          ["pin", "--realm", "prod", "--worker", "core", "8.3.0", "--expect", "x"],
                          ["pin", "--realm", "prod", "--worker", "-core", "8.3.0"],
                          ["pin", "--realm", "prod", "--worker", "core", "8.3.0", "--os", "amzn2023"],
                          ["pins"]] {
            let result = run(arguments)
            #expect(result.exitCode == 64, "\(arguments): \(result.stderr)")
        }
    }
}
