import Foundation
import LavaSystem
import LavaTestSupport
import Testing

/// SPEC §8a: launch readiness and warm pools, against the fake IMDS / Auto Scaling peer.
@Suite struct LaunchTests {
    let fixture = LocalFixture()
    let imds: FakeIMDS
    let records: String

    init() throws {
        imds = try FakeIMDS.start()
        records = fixture.recordDirectory()
        fixture.workerBundle("8.2.0")
        realm()
    }

    func realm(extraEnv: String = "", realm: String = "prod") {
        fixture.realms(#"{"realm": "\#(realm)", "x-workers": {"core": {"daemons": 2, "env": {"FAKE_RECORD_DIR": "\#(records)"\#(extraEnv)}}}}"#)
    }

    /// In group G with a launching hook L and a terminating hook H; `state` the instance's.
    func group(state: String = "Pending:Wait", pendingHook: String? = "L", launchHeartbeatTimeout: Int = 3600) throws {
        let pending = pendingHook.map { #"[{"instance": "\#(FakeIMDS.instanceID)", "group": "G", "hook": "\#($0)"}]"# } ?? "[]"
        try imds.control(json: #"{"autoscaling": {"instances": {"\#(FakeIMDS.instanceID)": {"group": "G", "state": "\#(state)"}}, "hooks": {"G": [{"name": "L", "transition": "autoscaling:EC2_INSTANCE_LAUNCHING", "heartbeat_timeout": \#(launchHeartbeatTimeout)}, {"name": "H", "transition": "autoscaling:EC2_INSTANCE_TERMINATING"}]}, "pending": \#(pending)}}"#)
    }

    var environment: [String: String] { imds.agentEnvironment(home: fixture.directory.path) }

    func boot(readyAfter: String = "2s", realm: String = "prod", heartbeat: String = "0.5s") throws -> RunningAgent {
        try RunningAgent(["boot", fixture.source, realm, "core", "--realms-file", fixture.realmsFile, "--root", fixture.root,
                          "--user-mode", "--stop-timeout", "30s", "--heartbeat-interval", heartbeat, "--ready-after", readyAfter],
                         environment: environment)
    }

    func nothingRunning() -> Bool {
        WorkerRecord.all(in: records).allSatisfy { kill($0.pid, 0) != 0 }
    }

    @Test func continueOnlyOnceEveryDaemonStayedUpForReadyAfter() throws {
        try group()
        let agent = try boot(readyAfter: "3s")
        #expect(waitUntil(timeout: 30) { WorkerRecord.all(in: records).count == 2 }, "\(agent.log)")
        let started = Date().timeIntervalSince1970
        #expect(waitUntil(timeout: 30) { ((try? imds.completions()) ?? []).count == 1 }, "\(agent.log)")
        let completion = try #require(try imds.completions().first)
        #expect(completion["result"] as? String == "CONTINUE")
        #expect(completion["hook"] as? String == "L")
        #expect((completion["time"] as? Double ?? 0) - started >= 1.5, "not before the daemons stayed up for 3 s (1.5 s of slack for a busy machine)")
        #expect(try imds.calls("RecordLifecycleActionHeartbeat").count >= 1, "heartbeats until then")
        let heartbeatTimes = try imds.calls("RecordLifecycleActionHeartbeat").compactMap { $0["time"] as? Double }
        #expect(heartbeatTimes.allSatisfy { $0 < completion["time"] as? Double ?? 0 }, "none after the completion")
        #expect(try imds.calls("CompleteLifecycleAction").count == 1)
        #expect(agent.stop() == .exited(0), "\(agent.log)")
    }

    /// The launching hook's own HeartbeatTimeout halves the interval, whatever the terminating hook's.
    @Test func launchHeartbeatsKeepWithinTheLaunchingHooksTimeout() throws {
        try group(launchHeartbeatTimeout: 2)
        let agent = try boot(readyAfter: "5s", heartbeat: "30s")
        #expect(waitUntil(timeout: 60) { ((try? imds.completions()) ?? []).count == 1 }, "\(agent.log)")
        let heartbeats = try imds.calls("RecordLifecycleActionHeartbeat").filter { $0["status"] as? Int == 200 }
        #expect(heartbeats.count >= 2, "about one a second until ready, not one per 30 s: \(heartbeats.count)")
        #expect(heartbeats.allSatisfy { ($0["params"] as? [String: String])?["LifecycleHookName"] == "L" })
        #expect(agent.stop() == .exited(0), "\(agent.log)")
    }

    /// When each attempt to complete the launching hook L's action came.
    func launchTries() -> [Double] {
        (((try? imds.calls("CompleteLifecycleAction")) ?? []).filter { ($0["params"] as? [String: String])?["LifecycleHookName"] == "L" })
            .compactMap { $0["time"] as? Double }
    }

    /// A launch completion Auto Scaling keeps refusing is given up once a stop comes: the drain
    /// goes ahead and completes the terminating action (SPEC §8a).
    @Test(arguments: ["SIGTERM", "Terminated"])
    func aStopEndsTheLaunchCompletionsRetries(_ stop: String) throws {
        try group(pendingHook: "H")  // completing L answers "No active Lifecycle Action found"
        let agent = try boot(readyAfter: "0s")
        #expect(waitUntil(timeout: 30) { launchTries().count >= 2 }, "retrying: \(agent.log)")
        if stop == "SIGTERM" { agent.signal(SIGTERM) } else { try imds.targetState("Terminated") }
        #expect(waitUntil(timeout: 60) { agent.status != nil }, "the drain does not wait out the launch completion's 300 s: \(agent.log)")
        #expect(agent.status == .exited(0), "\(agent.log)")
        let completions = try imds.completions()
        #expect(completions.map { $0["hook"] as? String } == ["H"], "\(completions)")
        let completedAt = completions.first?["time"] as? Double ?? 0
        #expect(launchTries().allSatisfy { $0 < completedAt }, "no launch retry after the terminating completion")
        #expect(waitUntil(timeout: 20) { nothingRunning() })
    }

    @Test(arguments: ["missing realm", "no package", "install failure", "scriptlet exit 1", "daemon exits early"])
    func aBootThatCannotFinishAbandonsTheLaunch(_ failure: String) throws {
        try group()
        var bootRealm = "prod"
        switch failure {
        case "missing realm": bootRealm = "staging"
        case "no package": fixture.realms(#"{"realm": "prod", "x-workers": {"core": {"version": "9.9.9"}}}"#)
        case "install failure": fixture.workerBundle("8.2.0", extra: [.symlink("escape", target: "../../../..")])
        case "scriptlet exit 1": fixture.scriptlet("10-check.sh", "exit 1\n")
        default: realm(extraEnv: #", "FAKE_FORK_JOB": "0.5""#)
        }
        let agent = try boot(realm: bootRealm)
        #expect(waitUntil(timeout: 60) { agent.status != nil }, "\(agent.log)")
        #expect(agent.status == .exited(1), "\(failure): \(agent.log)")
        let all = try imds.completions()
        #expect(all.count == 1 && all.first?["result"] as? String == "ABANDON", "\(failure): \(all)")
        #expect(agent.log.contains("ABANDON"), "\(agent.log)")
        #expect(waitUntil(timeout: 20) { nothingRunning() }, "nothing left running after \(failure)")
    }

    /// A stop while a boot that failed before its plan retries ABANDON ends the retries; the
    /// terminating action is completed before the boot exits 1 (SPEC §8, §8a).
    @Test func aStopDuringTheAbandonRetriesOfAFailedBootCompletesTheTermination() throws {
        try group(pendingHook: "H")  // completing L answers "No active Lifecycle Action found"
        let agent = try boot(realm: "staging")
        #expect(waitUntil(timeout: 30) { launchTries().count >= 2 }, "retrying ABANDON: \(agent.log)")
        agent.signal(SIGTERM)
        #expect(waitUntil(timeout: 60) { agent.status != nil }, "the ABANDON retries' 300 s are not waited out: \(agent.log)")
        #expect(agent.status == .exited(1), "the boot still failed: \(agent.log)")
        let completions = try imds.completions()
        #expect(completions.map { $0["hook"] as? String } == ["H"], "\(completions)")
        #expect(completions.first?["result"] as? String == "CONTINUE")
        let completedAt = completions.first?["time"] as? Double ?? 0
        #expect(launchTries().allSatisfy { $0 < completedAt }, "no ABANDON retry after the terminating completion")
        #expect(WorkerRecord.all(in: records).isEmpty, "nothing started")
    }

    @Test(arguments: ["Warmed:Stopped", "Warmed:Hibernated"])
    func aWarmUpBootInstallsStartsNothingCompletesAndExits(_ state: String) throws {
        try group(state: "Warmed:Pending:Wait")
        try imds.targetState(state)
        let agent = try boot()
        #expect(waitUntil(timeout: 60) { agent.status != nil }, "\(agent.log)")
        #expect(agent.status == .exited(0), "\(agent.log)")
        #expect(WorkerRecord.all(in: records).isEmpty, "no daemon started")
        #expect(Files.isDirectory(fixture.root + "/opt/lava/releases/lava-8.2.0-amzn2023-py3.11-\(fixture.machineArch)"))
        #expect(try imds.completions().map { $0["result"] as? String } == ["CONTINUE"])

        // The next boot is a normal one that reuses what the warm-up installed.
        try imds.targetState("InService")
        try group(state: "Pending:Wait")
        let next = try boot(readyAfter: "0s")
        #expect(waitUntil(timeout: 30) { WorkerRecord.all(in: records).count == 2 }, "\(next.log)")
        #expect(next.log.contains("already installed from the same object; reusing it"), "\(next.log)")
        #expect(waitUntil(timeout: 30) { ((try? imds.completions()) ?? []).count == 2 })
        #expect(next.stop() == .exited(0))
    }

    @Test func warmedTerminatedExitsAtOnce() throws {
        try group(state: "Warmed:Pending:Wait")
        try imds.targetState("Warmed:Terminated")
        let agent = try boot()
        #expect(waitUntil(timeout: 30) { agent.status != nil }, "\(agent.log)")
        #expect(agent.status == .exited(0))
        #expect(!Files.exists(fixture.root + "/opt/lava/releases"), "nothing installed")
        #expect(try imds.completions().isEmpty)
    }

    @Test func warmedRunningStartsItsWorkersOnInService() throws {
        try group(state: "Warmed:Pending:Wait")
        try imds.targetState("Warmed:Running")
        let agent = try boot(readyAfter: "1s")
        #expect(waitUntil(timeout: 30) { ((try? imds.completions()) ?? []).count == 1 }, "\(agent.log)")
        #expect(agent.status == nil, "stays up")
        #expect(WorkerRecord.all(in: records).isEmpty)
        try group(state: "Pending:Wait")
        try imds.targetState("InService")
        #expect(waitUntil(timeout: 30) { WorkerRecord.all(in: records).count == 2 }, "\(agent.log)")
        #expect(waitUntil(timeout: 30) { ((try? imds.completions()) ?? []).count == 2 }, "the new launch action: \(agent.log)")
        #expect(try imds.completions().map { $0["result"] as? String } == ["CONTINUE", "CONTINUE"])
        #expect(agent.stop() == .exited(0))
    }

    /// `Warmed:Terminated` (the pool lets a warm instance go) ends the wait as `Terminated` does.
    @Test(arguments: ["Terminated", "Warmed:Terminated"])
    func terminationDuringAWarmUpDrainsAndCompletesTheTerminatingAction(_ target: String) throws {
        try group(state: "Warmed:Pending:Wait")
        try imds.targetState("Warmed:Running")
        let agent = try boot()
        #expect(waitUntil(timeout: 30) { agent.log.contains("waiting for InService") }, "\(agent.log)")
        try imds.control(json: #"{"autoscaling": {"pending": [{"instance": "\#(FakeIMDS.instanceID)", "group": "G", "hook": "H"}]}}"#)
        try imds.targetState(target)
        #expect(waitUntil(timeout: 60) { agent.status != nil }, "\(agent.log)")
        #expect(agent.status == .exited(0))
        #expect(try imds.completions().map { $0["hook"] as? String } == ["L", "H"])
    }

    /// No permission is an answer: one call, one warning, and no lifecycle call after it.
    @Test(arguments: ["not in a group", "AccessDenied"])
    func withoutAutoScalingTheBootIsANormalOne(_ kind: String) throws {
        if kind == "AccessDenied" {
            try group()
            try imds.control(json: #"{"autoscaling_faults": [{"action": "DescribeAutoScalingInstances", "count": 5, "status": 403, "code": "AccessDenied", "message": "not authorized"}]}"#)
        }
        let agent = try boot()
        #expect(waitUntil(timeout: 30) { WorkerRecord.all(in: records).count == 2 }, "\(agent.log)")
        #expect(agent.status == nil)
        if kind == "AccessDenied" {
            #expect(agent.log.split(separator: "\n").filter { $0.contains("AccessDenied") }.count == 1, "one warning names it: \(agent.log)")
            let actions = ((try imds.counters()["autoscaling_calls"] as? [[String: Any]]) ?? []).compactMap { $0["action"] as? String }
            #expect(actions == ["DescribeAutoScalingInstances"], "not retried, nothing after it: \(actions)")
        }
        #expect(try imds.completions().isEmpty)
        #expect(agent.stop() == .exited(0))
    }

    /// Auto Scaling failing past the client's own retries (3 attempts) is asked again: the
    /// launch action is still completed (SPEC §14).
    @Test(arguments: [(500, "InternalFailure"), (400, "Throttling")])
    func aLookupFailingForAWhileStillCompletesTheLaunch(_ status: Int, _ code: String) throws {
        try group()
        try imds.control(json: #"{"autoscaling_faults": [{"action": "DescribeAutoScalingInstances", "count": 7, "status": \#(status), "code": "\#(code)"}]}"#)
        let agent = try boot(readyAfter: "0s")
        #expect(waitUntil(timeout: 60) { ((try? imds.completions()) ?? []).count == 1 || agent.status != nil }, "\(agent.log)")
        #expect(try imds.completions().map { $0["result"] as? String } == ["CONTINUE"], "\(agent.log)")
        let lookups = try imds.calls("DescribeAutoScalingInstances").map { $0["injected"] as? Bool == true }
        #expect(lookups == Array(repeating: true, count: 7) + [false], "asked until it answered, then no more: \(lookups)")
        #expect(agent.stop() == .exited(0), "\(agent.log)")
    }

    /// A stop while the lookup is being tried again is answered at once, not after the lookup's limit.
    @Test func aStopDuringALookupThatKeepsFailingIsAnsweredAtOnce() throws {
        try group()
        try imds.control(json: #"{"autoscaling_faults": [{"action": "DescribeAutoScalingInstances", "count": 100000, "status": 503, "code": "ServiceUnavailable"}]}"#)
        let agent = try boot()
        #expect(waitUntil(timeout: 60) { ((try? imds.calls("DescribeAutoScalingInstances")) ?? []).count >= 4 || agent.status != nil },
                "asked again past the client's own 3 attempts: \(agent.log)")
        #expect(agent.status == nil, "\(agent.log)")
        agent.signal(SIGTERM)
        #expect(waitUntil(timeout: 60) { agent.status != nil }, "the 300 s lookup limit is not waited out: \(agent.log)")
        #expect(agent.status == .exited(0), "\(agent.log)")
        #expect(WorkerRecord.all(in: records).isEmpty, "nothing started")
        #expect(try imds.completions().isEmpty)
    }

    /// An IMDS outage at boot does not turn a warm-up into a normal boot: only IMDS's answer
    /// decides (SPEC §8a, §14).
    @Test func aWarmUpBootWaitsForIMDSToTellItsTargetState() throws {
        try group(state: "Warmed:Pending:Wait")
        try imds.targetState("Warmed:Stopped")
        // Three times the IMDS client's own 4 attempts.
        try imds.control(json: #"{"fail_next": 12, "status": 500, "path": "/latest/meta-data/autoscaling/target-lifecycle-state"}"#)
        let agent = try boot()
        #expect(waitUntil(timeout: 60) { agent.status != nil || !WorkerRecord.all(in: records).isEmpty }, "\(agent.log)")
        #expect(WorkerRecord.all(in: records).isEmpty, "no daemon started: \(agent.log)")
        #expect(waitUntil(timeout: 60) { agent.status != nil }, "\(agent.log)")
        #expect(agent.status == .exited(0), "\(agent.log)")
        #expect(try imds.counters()["failures_served"] as? Int == 12)
        #expect(Files.isDirectory(fixture.root + "/opt/lava/releases/lava-8.2.0-amzn2023-py3.11-\(fixture.machineArch)"))
        #expect(try imds.completions().map { $0["result"] as? String } == ["CONTINUE"])
    }
}
