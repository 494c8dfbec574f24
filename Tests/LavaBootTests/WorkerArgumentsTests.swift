import LavaBoot
@testable import LavaRealm
import LavaSelection
import LavaTestSupport
import Testing

/// The worker's argv (SPEC §7): `--log-json` from 7.1 on, `--threads` only when set.
@Suite struct WorkerArgumentsTests {
    func config(threads: Int?) -> WorkerConfig {
        WorkerConfig(realm: "prod", worker: "core", version: nil, threads: threads, daemons: 1, environment: [],
                     stopMinutes: 5, heartbeatMinutes: 5)
    }

    static let base = ["--realm", "prod", "--worker", "core", "--jump-start", "--heartbeat", "60",
                       "--tag", "lava-prod-core", "--log", "@local0", "--level", "info"]

    @Test(arguments: [("7.0.9", false), ("7.1.0", true), ("7.1.0rc1", true), ("8.2.0", true), ("6.9", false), ("10.0.0", true)])
    func logJSONFromSevenOne(_ version: String, _ json: Bool) throws {
        let parsed = try #require(LavaVersion(version))
        #expect(Agent.workerArguments(realm: "prod", worker: config(threads: nil), version: parsed)
                == WorkerArgumentsTests.base + (json ? ["--log-json"] : []))
    }

    @Test func threadsOnlyWhenSet() throws {
        let version = try #require(LavaVersion("8.2.0"))
        #expect(Agent.workerArguments(realm: "prod", worker: config(threads: 6), version: version)
                == WorkerArgumentsTests.base + ["--log-json", "--threads", "6"])
    }
}
