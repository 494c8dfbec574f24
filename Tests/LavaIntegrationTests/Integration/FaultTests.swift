import CShim
import Foundation
import LavaSystem
import LavaTestSupport
import Testing

/// Faults a fleet meets (SPEC §5, §7): a killed agent, workers that leave jobs behind,
/// scriptlets that leave children or run long when a stop comes, realm env overriding the base.
@Suite struct FaultTests {
    let fixture = LocalFixture()

    init() {
        // Orphans of a killed agent come to this process, whose Reaper collects them, so none
        // stays a zombie under an init that does not reap.
        _ = lava_become_subreaper()
    }

    func boot(_ extra: [String] = [], environment: [String: String] = [:]) throws -> RunningAgent {
        try RunningAgent(["boot", fixture.source, "prod", "core", "--realms-file", fixture.realmsFile, "--root", fixture.root,
                          "--user-mode", "--stop-timeout", "30s"] + extra, environment: environment)
    }

    func realm(daemons: Int = 1, records: String, extraEnv: String = "") {
        fixture.realms(#"{"realm": "prod", "x-workers": {"core": {"daemons": \#(daemons), "env": {"FAKE_RECORD_DIR": "\#(records)"\#(extraEnv)}}}}"#)
    }

    static func alive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        let state = ((try? Files.readText("/proc/\(pid)/stat")) ?? nil)?.split(separator: ")").last?.split(separator: " ").first
        return state != "Z"
    }

    static func descriptorCount(_ pid: pid_t) -> Int { ((try? Files.list("/proc/\(pid)/fd")) ?? nil)?.count ?? -1 }

    @Test func killedAgentsDaemonsAreStoppedBeforeTheNextBootStartsItsOwn() throws {
        fixture.workerBundle("8.2.0")
        let records = fixture.recordDirectory()
        realm(daemons: 2, records: records)
        let first = try boot()
        #expect(waitUntil(timeout: 30) { WorkerRecord.all(in: records).count == 2 }, "\(first.log)")
        let old = WorkerRecord.all(in: records).map(\.pid)
        first.signal(SIGKILL)
        #expect(waitUntil(timeout: 10) { first.status != nil })

        let second = try boot()
        #expect(waitUntil(timeout: 60) { WorkerRecord.all(in: records).count == 4 }, "\(second.log)")
        #expect(second.log.contains("daemons of an agent that is gone are still running"), "\(second.log)")
        #expect(old.allSatisfy { !FaultTests.alive($0) }, "old daemons are gone once new ones run")
        #expect(second.stop() == .exited(0), "\(second.log)")
        #expect(WorkerRecord.all(in: records).allSatisfy { !FaultTests.alive($0.pid) })
    }

    @Test func aWorkersJobsDieWithItAndTheAgentKeepsNoDescriptorOfIt() throws {
        fixture.workerBundle("8.2.0")
        let records = fixture.recordDirectory()
        realm(records: records, extraEnv: #", "FAKE_FORK_JOB": "0.2""#)
        let agent = try boot()
        var descriptors = [Int]()
        for run in 1...5 {
            #expect(waitUntil(timeout: 60) { WorkerRecord.all(in: records).filter { !$0.text("job").isEmpty }.count >= run }, "\(agent.log)")
            let runs = WorkerRecord.all(in: records).sorted { $0.pid < $1.pid }
            // Every job of an earlier run is gone by the time a later run has started.
            for earlier in runs.dropLast() {
                let job = Int32(earlier.text("job").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
                #expect(job > 0 && !FaultTests.alive(job), "job \(job) of a dead worker still runs")
            }
            descriptors.append(FaultTests.descriptorCount(agent.pid))
        }
        // One leaked descriptor per restart would grow by 3 from the second run to the fifth.
        #expect(descriptors.dropFirst().allSatisfy { $0 <= descriptors[1] + 2 }, "agent descriptors over restarts: \(descriptors)")
        #expect(agent.log.contains("still running in its group"), "\(agent.log)")
        #expect(agent.stop() == .exited(0))
        for record in WorkerRecord.all(in: records) {
            let job = Int32(record.text("job").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            #expect(!FaultTests.alive(job) && !FaultTests.alive(record.pid), "nothing left after the drain")
        }
    }

    static func threadCount(_ pid: pid_t) -> Int { ((try? Files.list("/proc/\(pid)/task")) ?? nil)?.count ?? -1 }

    static func privateMemoryKiB(_ pid: pid_t) -> Int {
        let status = ((try? Files.readText("/proc/\(pid)/status")) ?? nil) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("RssAnon:") } ?? ""
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
    }

    /// Descriptors, threads and private memory after 10 restarts and after 40: a leak of one
    /// descriptor or thread per restart shows as 30 more, of 64 KiB per restart as 1.9 MiB more.
    @Test func theAgentStaysFlatOverManyRestarts() throws {
        fixture.workerBundle("8.2.0")
        let records = fixture.recordDirectory()
        realm(records: records, extraEnv: #", "FAKE_FORK_JOB": "0.05""#)
        let agent = try boot(environment: ["LAVA_BOOT_RESTART_BASE_SECONDS": "0.01"])
        var samples = [(descriptors: Int, threads: Int, privateKiB: Int)]()
        for starts in [10, 40] {
            #expect(waitUntil(timeout: 180) { WorkerRecord.all(in: records).count >= starts }, "\(agent.log)")
            samples.append((FaultTests.descriptorCount(agent.pid), FaultTests.threadCount(agent.pid), FaultTests.privateMemoryKiB(agent.pid)))
        }
        let (warm, late) = (samples[0], samples[1])
        #expect(warm.descriptors > 0 && late.descriptors <= warm.descriptors + 2, "descriptors \(samples)")
        #expect(warm.threads > 0 && late.threads <= warm.threads + 1, "threads \(samples)")
        #expect(warm.privateKiB > 0 && late.privateKiB <= warm.privateKiB + 1024, "RssAnon KiB \(samples)")
        #expect(agent.stop() == .exited(0), "\(agent.log)")
    }

    /// A log target nobody reads (a stalled syslog, a full pipe) holds up neither the workers'
    /// output, nor their restarts, nor the drain.
    @Test func aStalledLogTargetHoldsUpNeitherRestartsNorTheDrain() throws {
        fixture.workerBundle("8.2.0")
        let records = fixture.recordDirectory()
        realm(records: records, extraEnv: #", "FAKE_FORK_JOB": "0.2", "FAKE_NOISE": "3000""#)
        let fifo = fixture.directory.sub("log.fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        let reader = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)  // opened, never read
        #expect(reader >= 0)
        defer { close(reader) }
        let agent = try boot(["--log", fifo])
        #expect(waitUntil(timeout: 60) { WorkerRecord.all(in: records).count >= 3 }, "restarts go on with the log stalled")
        let stop = LavaBootBinary.run(["stop", "--wait", "--root", fixture.root])
        #expect(stop.exitCode == 0, "\(stop.stderr)")
        #expect(waitUntil(timeout: 30) { agent.status != nil })
        #expect(agent.status == .exited(0))
    }

    @Test func aScriptletsBackgroundChildDoesNotHoldTheBoot() throws {
        fixture.workerBundle("8.2.0")
        let records = fixture.recordDirectory()
        realm(records: records)
        let pidFile = fixture.directory.sub("background.pid")
        fixture.scriptlet("10-agent.sh", "sleep 300 &\necho $! > \(pidFile)\necho started a background agent\nexit 0\n")
        let agent = try boot(["--script-timeout", "20m"])
        #expect(waitUntil(timeout: 60) { WorkerRecord.all(in: records).count == 1 }, "the boot goes on: \(agent.log)")
        #expect(agent.log.contains("10-agent.sh finished"), "\(agent.log)")
        #expect(!agent.log.contains("timed out"))
        let child = FaultTests.pid(in: pidFile)
        #expect(child > 0 && FaultTests.alive(child), "the scriptlet's background child keeps running")
        #expect(agent.stop() == .exited(0))
        kill(child, SIGKILL)
    }

    static func pid(in path: String) -> pid_t {
        Int32(((try? Files.readText(path)) ?? nil)?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
    }

    static func lineCount(_ path: String) -> Int { (((try? Files.readText(path)) ?? nil) ?? "").split(separator: "\n").count }

    /// Descriptors of `pid` that are `link` (`pipe:[N]`).
    static func descriptors(of pid: pid_t, linkingTo link: String) -> [String] {
        (((try? Files.list("/proc/\(pid)/fd")) ?? nil) ?? []).filter { name in
            var target = [CChar](repeating: 0, count: 256)
            let n = readlink("/proc/\(pid)/fd/\(name)", &target, target.count - 1)
            return n > 0 && String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) == link
        }
    }

    /// Past the 1 s the boot reads it for, a background child's output is drained: its next
    /// write does not kill it (SIGPIPE), and the agent closes the pipe once the child is gone.
    @Test func aScriptletsBackgroundChildKeepsWritingAfterTheBootStopsReadingIt() throws {
        fixture.workerBundle("8.2.0")
        let records = fixture.recordDirectory()
        realm(records: records)
        let pidFile = fixture.directory.sub("background.pid"), ticks = fixture.directory.sub("ticks")
        fixture.scriptlet("10-agent.sh", "(while true; do echo tick; echo tick >> \(ticks); sleep 0.2; done) &\necho $! > \(pidFile)\nexit 0\n")
        let agent = try boot()
        #expect(waitUntil(timeout: 60) { WorkerRecord.all(in: records).count == 1 }, "the boot goes on: \(agent.log)")
        #expect(agent.log.contains("10-agent.sh finished"), "\(agent.log)")
        let child = FaultTests.pid(in: pidFile)
        try #require(child > 0)
        let group = getpgid(child)
        defer { if group > 0 { kill(-group, SIGKILL) } }
        // Each tick is written to the pipe first: two more, and one went there after the boot moved on.
        let seen = FaultTests.lineCount(ticks)
        #expect(waitUntil(timeout: 30) { FaultTests.lineCount(ticks) >= seen + 2 }, "the background child keeps writing")
        #expect(FaultTests.alive(child), "the scriptlet's background child keeps running")
        var pipe = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/\(child)/fd/1", &pipe, pipe.count - 1)
        try #require(n > 0)
        let link = String(decoding: pipe[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        kill(-group, SIGKILL)
        #expect(waitUntil(timeout: 30) { FaultTests.descriptors(of: agent.pid, linkingTo: link).isEmpty },
                "the agent closes the pipe once its writer is gone")
        #expect(agent.stop() == .exited(0), "\(agent.log)")
    }

    /// A boot whose scriptlet `10-slow.sh` starts a child that ignores SIGTERM, then sleeps; the
    /// child's pid is written to `pidFile`.
    func bootWithAStubbornChild(_ extra: [String] = []) throws -> (agent: RunningAgent, records: String, pidFile: String) {
        fixture.workerBundle("8.2.0")
        let records = fixture.recordDirectory()
        realm(records: records)
        let pidFile = fixture.directory.sub("stubborn.pid")
        fixture.scriptlet("10-slow.sh", "(trap '' TERM; while true; do sleep 0.2; done) &\necho $! > \(pidFile)\nsleep 600\n")
        return (try boot(extra), records, pidFile)
    }

    /// A scriptlet's group gets SIGKILL 10 s after the timeout's SIGTERM, even once the
    /// scriptlet itself has exited: a child that ignores SIGTERM does not outlive it.
    @Test func aScriptletsChildIgnoringSIGTERMIsKilledAfterTheTimeout() throws {
        let (agent, records, pidFile) = try bootWithAStubbornChild(["--script-timeout", "1s"])
        #expect(waitUntil(timeout: 60) { WorkerRecord.all(in: records).count == 1 }, "the boot goes on: \(agent.log)")
        #expect(agent.log.contains("10-slow.sh timed out"), "\(agent.log)")
        let child = FaultTests.pid(in: pidFile)
        try #require(child > 0)
        let group = getpgid(child)
        defer { if group > 0 { kill(-group, SIGKILL) } }
        #expect(waitUntil(timeout: 60) { !FaultTests.alive(child) }, "the child that ignores SIGTERM is killed: \(agent.log)")
        #expect(agent.stop() == .exited(0), "\(agent.log)")
    }

    @Test func sigtermDuringALongScriptletStopsTheBoot() throws {
        fixture.workerBundle("8.2.0")
        let records = fixture.recordDirectory()
        realm(records: records)
        let marker = fixture.directory.sub("long.started")
        fixture.scriptlet("10-long.sh", "touch \(marker)\nsleep 600\n")
        fixture.scriptlet("20-later.sh", "touch \(fixture.directory.sub("later.ran"))\n")
        let agent = try boot()
        #expect(waitUntil(timeout: 30) { Files.exists(marker) }, "\(agent.log)")
        agent.signal(SIGTERM)
        #expect(waitUntil(timeout: 15) { agent.status != nil }, "the agent answers SIGTERM within seconds: \(agent.log)")
        #expect(agent.status == .exited(0), "\(agent.log)")
        #expect(!Files.exists(fixture.directory.sub("later.ran")), "no later scriptlet runs")
        #expect(WorkerRecord.all(in: records).isEmpty, "nothing installed or started after the stop")
        #expect(agent.log.contains("10-long.sh stopped"), "\(agent.log)")
    }

    /// The agent stopped during a scriptlet leaves no member of its group running: one that
    /// ignores SIGTERM gets the SIGKILL 10 s later, before the agent exits.
    @Test func aStopDuringAScriptletKillsWhatIgnoresSIGTERMBeforeTheAgentExits() throws {
        let (agent, _, pidFile) = try bootWithAStubbornChild()
        #expect(waitUntil(timeout: 30) { FaultTests.pid(in: pidFile) > 0 }, "\(agent.log)")
        let child = FaultTests.pid(in: pidFile)
        try #require(child > 0)
        let group = getpgid(child)
        defer { if group > 0 { kill(-group, SIGKILL) } }
        agent.signal(SIGTERM)
        #expect(waitUntil(timeout: 60) { agent.status != nil }, "\(agent.log)")
        #expect(agent.status == .exited(0), "\(agent.log)")
        #expect(waitUntil(timeout: 30) { !FaultTests.alive(child) }, "the child that ignores SIGTERM is gone with the agent")
    }

    @Test func realmEnvReplacesBaseVariablesOfTheSameName() throws {
        fixture.workerBundle("8.2.0")
        let records = fixture.recordDirectory()
        realm(records: records, extraEnv: #", "PATH": "/opt/realm/bin:/usr/bin", "HOME": "/srv/realm-home""#)
        let agent = try boot()
        #expect(waitUntil(timeout: 30) { WorkerRecord.all(in: records).count == 1 }, "\(agent.log)")
        let environment = try #require(WorkerRecord.all(in: records).first).environment
        #expect(environment.filter { $0.hasPrefix("PATH=") } == ["PATH=/opt/realm/bin:/usr/bin"])
        #expect(environment.filter { $0.hasPrefix("HOME=") } == ["HOME=/srv/realm-home"])
        #expect(agent.log.contains("the realm's env sets PATH, replacing lava-boot's value"))
        #expect(agent.stop() == .exited(0))
    }
}
