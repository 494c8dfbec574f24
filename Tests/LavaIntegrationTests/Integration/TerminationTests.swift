import Foundation
import LavaSystem
import LavaTestSupport
import Testing

/// SPEC §8: the drain of a terminating instance against the fake IMDS / Auto Scaling peer
/// (every Auto Scaling call's SigV4 recomputed there), with fake workers recording signals.
@Suite struct TerminationTests {
    let fixture = LocalFixture()
    let imds: FakeIMDS
    let records: String

    init() throws {
        imds = try FakeIMDS.start()
        records = fixture.recordDirectory()
        fixture.workerBundle("8.2.0")
    }

    func realm(drainSeconds: Int = 0, ignoreTerm: Bool = false, stopMinutes: Int? = nil) {
        let env = #""FAKE_RECORD_DIR": "\#(records)", "FAKE_DRAIN_SECONDS": "\#(drainSeconds)", "FAKE_IGNORE_TERM": "\#(ignoreTerm ? 1 : 0)", "FAKE_NODISPATCH": "\#(fixture.root)/tmp/lava/__nodispatch__""#
        let stop = stopMinutes.map { #", "stop_minutes": \#($0)"# } ?? ""
        fixture.realms(#"{"realm": "prod", "x-workers": {"core": {"daemons": 1\#(stop), "env": {\#(env)}}}}"#)
    }

    /// The instance in group G with terminating hook H and (when `pending`) an action waiting.
    func group(heartbeatTimeout: Int = 3600, pending: Bool = true, token: String? = nil, inGroup: Bool = true) throws {
        let tokenJSON = token.map { "\"\($0)\"" } ?? "null"
        let instances = inGroup ? #"{"\#(FakeIMDS.instanceID)": {"group": "G", "state": "InService"}}"# : "{}"
        let pendingJSON = pending ? #"[{"instance": "\#(FakeIMDS.instanceID)", "group": "G", "hook": "H", "token": \#(tokenJSON)}]"# : "[]"
        try imds.control(json: #"{"autoscaling": {"instances": \#(instances), "hooks": {"G": [{"name": "H", "transition": "autoscaling:EC2_INSTANCE_TERMINATING", "heartbeat_timeout": \#(heartbeatTimeout)}, {"name": "L", "transition": "autoscaling:EC2_INSTANCE_LAUNCHING"}]}, "pending": \#(pendingJSON)}}"#)
    }

    var environment: [String: String] { imds.agentEnvironment(home: fixture.directory.path) }

    func boot(stopTimeout: String? = "60s", heartbeat: String = "1s", _ extra: [String] = []) throws -> RunningAgent {
        try RunningAgent(["boot", fixture.source, "prod", "core", "--realms-file", fixture.realmsFile, "--root", fixture.root,
                          "--user-mode", "--heartbeat-interval", heartbeat, "--log-json"]
                         + (stopTimeout.map { ["--stop-timeout", $0] } ?? []) + extra, environment: environment)
    }

    func waitForWorker(_ agent: RunningAgent) -> WorkerRecord? {
        _ = waitUntil(timeout: 30) { WorkerRecord.all(in: records).count == 1 }
        return WorkerRecord.all(in: records).first
    }

    /// An agent booted outside any group (discovery finds none), its worker running: the drain
    /// must find the action itself.
    func bootOutsideAGroup(drainSeconds: Int = 0, stopTimeout: String? = "60s") throws -> (RunningAgent, WorkerRecord) {
        try group(inGroup: false)
        realm(drainSeconds: drainSeconds)
        let agent = try boot(stopTimeout: stopTimeout)
        let worker = try #require(waitForWorker(agent), "\(agent.log)")
        #expect(waitUntil(timeout: 20) { agent.log.contains("in no Auto Scaling group") }, "\(agent.log)")
        return (agent, worker)
    }

    /// Auto Scaling calls the fake holds unanswered right now.
    func heldCalls() -> Int { ((try? imds.counters()["autoscaling_held"] as? Int) ?? nil) ?? 0 }

    func expectEverySignatureChecked() throws {
        let all = (try imds.counters()["autoscaling_calls"] as? [[String: Any]]) ?? []
        #expect(!all.isEmpty)
        #expect(all.allSatisfy { $0["signature_ok"] as? Bool == true }, "\(all)")
    }

    @Test func terminatedStateDrainsWithHeartbeatsAndOneCompletion() throws {
        try group()
        realm(drainSeconds: 3)
        let agent = try boot()
        let worker = try #require(waitForWorker(agent), "\(agent.log)")
        #expect(waitUntil(timeout: 20) { agent.log.contains("terminating hook H") }, "\(agent.log)")
        let triggered = Date().timeIntervalSince1970
        try imds.setPath("/latest/meta-data/autoscaling/target-lifecycle-state", "Terminated")
        #expect(waitUntil(timeout: 60) { agent.status != nil }, "\(agent.log)")
        let exited = Date().timeIntervalSince1970
        #expect(agent.status == .exited(0), "\(agent.log)")
        #expect(exited - triggered < 40, "well inside the 60 s budget")
        #expect(worker.signals == ["nodispatch", "HUP"], "__nodispatch__ before SIGHUP, then nothing else: \(worker.signals)")
        let heartbeats = try imds.calls("RecordLifecycleActionHeartbeat")
        let completes = try imds.calls("CompleteLifecycleAction")
        #expect(heartbeats.count >= 1, "heartbeats while the worker drains")
        #expect(completes.count == 1, "exactly one completion: \(completes)")
        let completedAt = completes.first?["time"] as? Double ?? 0
        #expect(heartbeats.allSatisfy { ($0["time"] as? Double ?? .infinity) < completedAt }, "no heartbeat after the completion")
        #expect(completedAt - triggered >= 3, "completed after the worker's 3 s of in-flight jobs, not before")
        let params = completes.first?["params"] as? [String: String]
        #expect(params?["LifecycleActionResult"] == "CONTINUE")
        #expect(params?["InstanceId"] == FakeIMDS.instanceID)
        #expect(params?["LifecycleActionToken"] == nil, "no token unless one was given")
        #expect(try imds.completions().count == 1)
        try expectEverySignatureChecked()
        #expect(agent.log.contains("completed the lifecycle action: CONTINUE"))
    }

    @Test func deadlineSendsTermThenKillAndStillCompletes() throws {
        try group()
        realm(drainSeconds: 600, ignoreTerm: true)
        let agent = try boot(stopTimeout: "30s")
        let worker = try #require(waitForWorker(agent), "\(agent.log)")
        #expect(waitUntil(timeout: 20) { agent.log.contains("terminating hook H") }, "\(agent.log)")
        let triggered = Date().timeIntervalSince1970
        agent.signal(SIGTERM)
        #expect(waitUntil(timeout: 60) { agent.status != nil }, "\(agent.log)")
        #expect(agent.status == .exited(0), "\(agent.log)")
        #expect(Date().timeIntervalSince1970 - triggered < 40, "the drain ends with its 30 s budget, not with the worker's 600 s")
        #expect(worker.signals == ["nodispatch", "HUP", "TERM"], "\(worker.signals)")
        #expect(agent.log.contains("ignored SIGTERM; sending SIGKILL"), "\(agent.log)")
        #expect(try imds.calls("CompleteLifecycleAction").count == 1)
    }

    /// Without `--stop-timeout`, the realm's `stop_minutes` is the budget.
    @Test func realmStopMinutesBoundsTheDrain() throws {
        try group()
        realm(drainSeconds: 600, ignoreTerm: true, stopMinutes: 1)
        let agent = try boot(stopTimeout: nil)
        let worker = try #require(waitForWorker(agent), "\(agent.log)")
        let triggered = Date().timeIntervalSince1970
        agent.signal(SIGTERM)
        #expect(waitUntil(timeout: 90) { agent.status != nil }, "\(agent.log)")
        #expect(agent.status == .exited(0))
        #expect(Date().timeIntervalSince1970 - triggered < 75, "within stop_minutes: 1, not the worker's 600 s")
        #expect(worker.signals == ["nodispatch", "HUP", "TERM"], "\(worker.signals)")
        #expect(try imds.calls("CompleteLifecycleAction").count == 1)
    }

    @Test func spotNoticeSetsADeadlineFifteenSecondsBeforeIts() throws {
        try group()
        realm(drainSeconds: 600)
        let agent = try boot(stopTimeout: "10m")
        _ = try #require(waitForWorker(agent), "\(agent.log)")
        let time = Date().timeIntervalSince1970 + 40
        let formatter = ISO8601DateFormatter()
        try imds.setPath("/latest/meta-data/spot/instance-action", #"{"action": "terminate", "time": "\#(formatter.string(from: Date(timeIntervalSince1970: time)))"}"#)
        #expect(waitUntil(timeout: 60) { agent.status != nil }, "\(agent.log)")
        #expect(agent.status == .exited(0))
        #expect(Date().timeIntervalSince1970 < time - 5, "done 15 s before the spot time (10 s of slack), not after the 10 m budget")
        #expect(agent.log.contains("spot interruption"))
        #expect(try imds.calls("CompleteLifecycleAction").count == 1)
    }

    @Test func stopNamesGroupHookAndToken() throws {
        try group(token: "token-1234", inGroup: false)
        realm()
        let agent = try boot()
        _ = try #require(waitForWorker(agent), "\(agent.log)")
        #expect(waitUntil(timeout: 20) { agent.log.contains("in no Auto Scaling group") }, "\(agent.log)")
        let stop = LavaBootBinary.run(["stop", "--root", fixture.root, "--wait", "--auto-scaling-group-name", "G",
                                       "--lifecycle-hook-name", "H", "--lifecycle-action-token", "token-1234"], environment: environment)
        #expect(stop.exitCode == 0, "\(stop.stderr)")
        #expect(waitUntil(timeout: 30) { agent.status != nil })
        let params = try imds.calls("CompleteLifecycleAction").first?["params"] as? [String: String]
        #expect(params?["LifecycleActionToken"] == "token-1234")
        #expect(params?["AutoScalingGroupName"] == "G" && params?["LifecycleHookName"] == "H")
        #expect(try imds.completions().count == 1)
    }

    @Test func stopWithNoAgentStillCompletesTheNamedAction() throws {
        try group()
        let stop = LavaBootBinary.run(["stop", "--root", fixture.root, "--auto-scaling-group-name", "G", "--lifecycle-hook-name", "H"],
                                      environment: environment)
        #expect(stop.exitCode == 0, "\(stop.stderr)")
        #expect(stop.stdout.contains("completed the lifecycle action of \(FakeIMDS.instanceID)"), "\(stop.stdout)")
        #expect(try imds.completions().count == 1)
        try expectEverySignatureChecked()
        try imds.control(json: #"{"autoscaling_reset": true}"#)
        let none = LavaBootBinary.run(["stop", "--root", fixture.root], environment: environment)
        #expect(none.exitCode == 1, "nothing named, in no group, nothing running: an error")
    }

    /// SPEC §8's lookups: the group's terminating hook, and the group itself when not named.
    @Test(arguments: [["--auto-scaling-group-name", "G"], []])
    func stopWithNoAgentFindsWhatIsNotNamed(_ named: [String]) throws {
        try group()
        let stop = LavaBootBinary.run(["stop", "--root", fixture.root] + named, environment: environment)
        #expect(stop.exitCode == 0, "\(stop.stderr)")
        #expect(stop.stdout.contains("completed the lifecycle action of \(FakeIMDS.instanceID) (group G, hook H)"), "\(stop.stdout)")
        #expect(try imds.completions().map { $0["hook"] as? String } == ["H"])
        try expectEverySignatureChecked()
    }

    /// The drain's first steps need no answer from Auto Scaling: the instance joined its group
    /// after boot, and the lookup at the trigger is held unanswered until the daemon heard the stop.
    @Test func theDaemonsHearTheStopBeforeTheLifecycleLookupsAnswer() throws {
        let (agent, worker) = try bootOutsideAGroup()
        try imds.control(json: #"{"autoscaling": {"instances": {"\#(FakeIMDS.instanceID)": {"group": "G", "state": "Terminating:Wait"}}}, "autoscaling_hold": ["DescribeAutoScalingInstances"]}"#)
        agent.signal(SIGTERM)
        let heard = waitUntil(timeout: 20) { worker.signals.contains("HUP") }
        let looking = waitUntil(timeout: 20) { heldCalls() >= 1 }
        try imds.control(json: #"{"autoscaling_hold": []}"#)
        #expect(heard, "SIGHUP sent while DescribeAutoScalingInstances went unanswered: \(agent.log)")
        #expect(looking, "the group was looked up at the trigger: \(agent.log)")
        #expect(worker.signals == ["nodispatch", "HUP"], "\(worker.signals)")
        #expect(waitUntil(timeout: 60) { agent.status != nil }, "\(agent.log)")
        #expect(agent.status == .exited(0))
        #expect(try imds.completions().map { $0["hook"] as? String } == ["H"], "the action found once the answer came")
    }

    /// The drain's deadline is fixed at the trigger: a group lookup Auto Scaling never answers
    /// neither delays the daemons' SIGTERM nor keeps the agent past its 20 s budget.
    @Test func theDeadlineHoldsWhileTheLifecycleLookupGoesUnanswered() throws {
        let (agent, worker) = try bootOutsideAGroup(drainSeconds: 600, stopTimeout: "20s")
        try imds.control(json: #"{"autoscaling": {"instances": {"\#(FakeIMDS.instanceID)": {"group": "G", "state": "Terminating:Wait"}}}, "autoscaling_hold": ["DescribeAutoScalingInstances"]}"#)
        defer { _ = try? imds.control(json: #"{"autoscaling_hold": []}"#) }
        let triggered = Date().timeIntervalSince1970
        agent.signal(SIGTERM)
        #expect(waitUntil(timeout: 30) { worker.signals.contains("TERM") }, "SIGTERM while the lookup goes unanswered: \(agent.log)")
        #expect(heldCalls() >= 1, "the group lookup was still held when the worker got SIGTERM")
        #expect(waitUntil(timeout: 60) { agent.status != nil }, "\(agent.log)")
        #expect(Date().timeIntervalSince1970 - triggered < 40, "done with the 20 s budget, not with the held lookup")
        #expect(agent.status == .exited(0), "\(agent.log)")
        #expect(worker.signals == ["nodispatch", "HUP", "TERM"], "\(worker.signals)")
        #expect(heldCalls() >= 1, "the lookup was never answered")
        #expect(agent.log.contains("the lifecycle action is still not known at the deadline"), "\(agent.log)")
        #expect(try imds.calls("CompleteLifecycleAction").isEmpty)
    }

    /// A hook lookup answered only after the worker got SIGTERM: the action is completed once,
    /// after the worker is gone, and the agent exits 0.
    @Test func aLifecycleLookupAnsweredLateIsCompletedAfterTheDaemons() throws {
        let (agent, worker) = try bootOutsideAGroup(drainSeconds: 600, stopTimeout: "30s")
        try imds.control(json: #"{"autoscaling": {"instances": {"\#(FakeIMDS.instanceID)": {"group": "G", "state": "Terminating:Wait"}}}, "autoscaling_hold": ["DescribeLifecycleHooks"]}"#)
        agent.signal(SIGTERM)
        let terminated = waitUntil(timeout: 30) { worker.signals.contains("TERM") }
        let stillHeld = heldCalls() >= 1
        try imds.control(json: #"{"autoscaling_hold": []}"#)
        #expect(terminated, "SIGTERM while the hook lookup goes unanswered: \(agent.log)")
        #expect(stillHeld, "the hook lookup was still held when the worker got SIGTERM")
        #expect(waitUntil(timeout: 60) { agent.status != nil }, "\(agent.log)")
        #expect(agent.status == .exited(0), "\(agent.log)")
        #expect(worker.signals == ["nodispatch", "HUP", "TERM"], "\(worker.signals)")
        #expect(try imds.completions().map { $0["hook"] as? String } == ["H"], "exactly one completion, of the hook found late")
        let hooksAnswered = try #require(imds.calls("DescribeLifecycleHooks").last?["time"] as? Double)
        let completedAt = try #require(imds.calls("CompleteLifecycleAction").first?["time"] as? Double)
        #expect(hooksAnswered < completedAt, "completed once the hook was known")
        try expectEverySignatureChecked()
    }

    /// A hook found at the trigger whose GlobalTimeout ends before the budget brings SIGTERM
    /// closer: the drain plans for the shorter of the two.
    @Test func aShorterGlobalTimeoutFoundAtTheTriggerBringsTheDeadlineCloser() throws {
        let (agent, worker) = try bootOutsideAGroup(drainSeconds: 600, stopTimeout: "120s")
        try imds.control(json: #"{"autoscaling": {"instances": {"\#(FakeIMDS.instanceID)": {"group": "G", "state": "Terminating:Wait"}}, "hooks": {"G": [{"name": "H", "heartbeat_timeout": 30, "global_timeout": 40}]}}}"#)
        let triggered = Date().timeIntervalSince1970
        agent.signal(SIGTERM)
        #expect(waitUntil(timeout: 90) { agent.status != nil }, "\(agent.log)")
        #expect(agent.status == .exited(0), "\(agent.log)")
        #expect(Date().timeIntervalSince1970 - triggered < 60, "within the hook's 40 s, not the 120 s budget")
        #expect(worker.signals == ["nodispatch", "HUP", "TERM"], "\(worker.signals)")
        #expect(agent.log.contains("GlobalTimeout ends the drain sooner"), "\(agent.log)")
        #expect(try imds.completions().map { $0["hook"] as? String } == ["H"])
    }

    @Test func imdsFailingForAWhileIsNoTrigger() throws {
        try group()
        realm()
        try imds.control(json: #"{"fail_next": 8, "status": 500}"#)
        let agent = try boot()
        _ = try #require(waitForWorker(agent), "\(agent.log)")
        func served() -> Int { ((try? imds.counters()["failures_served"] as? Int) ?? nil) ?? 0 }
        let before = served()
        try imds.control(json: #"{"fail_next": 30, "status": 503}"#)
        #expect(waitUntil(timeout: 30) { served() >= before + 30 }, "\(served()) \(agent.log)")
        #expect(waitUntil(timeout: 10) { agent.log.contains("instance metadata answers again") })
        #expect(agent.status == nil, "still running: \(agent.log)")
        #expect(try imds.calls("CompleteLifecycleAction").isEmpty)
        try imds.setPath("/latest/meta-data/autoscaling/target-lifecycle-state", "Terminated")
        #expect(waitUntil(timeout: 30) { agent.status != nil }, "\(agent.log)")
        #expect(agent.status == .exited(0))
        #expect(try imds.calls("CompleteLifecycleAction").count == 1)
    }

    /// A target state IMDS does not have (404) is polled twelve times less often than the rest.
    @Test func aMissingTargetStateIsPolledSlowly() throws {
        try group()
        realm()
        let agent = try boot()
        _ = try #require(waitForWorker(agent), "\(agent.log)")
        func gets(_ path: String) -> Int {
            (((try? imds.counters()["requests"] as? [[String: Any]]) ?? nil) ?? []).filter { $0["path"] as? String == path }.count
        }
        #expect(waitUntil(timeout: 30) { gets("/latest/meta-data/spot/instance-action") >= 24 })
        let targetStateGets = gets("/latest/meta-data/autoscaling/target-lifecycle-state")
        #expect(targetStateGets >= 1 && targetStateGets <= 5, "\(targetStateGets) target-state polls beside 24 spot polls")
        #expect(agent.stop() == .exited(0))
    }

    @Test func heartbeatAndCompletionErrorsAreRetried() throws {
        try group()
        realm(drainSeconds: 3)
        try imds.control(json: #"{"autoscaling_faults": [{"action": "RecordLifecycleActionHeartbeat", "count": 1, "status": 400, "code": "Throttling", "message": "Rate exceeded"}, {"action": "CompleteLifecycleAction", "count": 1, "status": 500, "code": "InternalFailure"}, {"action": "CompleteLifecycleAction", "count": 2, "status": 400, "code": "ValidationError", "message": "No active Lifecycle Action found with instance ID \#(FakeIMDS.instanceID)"}]}"#)
        let agent = try boot()
        _ = try #require(waitForWorker(agent), "\(agent.log)")
        agent.signal(SIGTERM)
        #expect(waitUntil(timeout: 60) { agent.status != nil }, "\(agent.log)")
        #expect(agent.status == .exited(0))
        let completes = try imds.calls("CompleteLifecycleAction")
        #expect(completes.filter { $0["status"] as? Int == 200 }.count == 1, "\(completes)")
        #expect(completes.count >= 4, "the 500 and both 'No active' answers were retried")
        #expect(try imds.completions().count == 1)
    }

    @Test func aHeartbeatIntervalTheHookWouldNotWaitForIsShortened() throws {
        try group(heartbeatTimeout: 2)
        realm(drainSeconds: 4)
        let agent = try boot(heartbeat: "10s")
        _ = try #require(waitForWorker(agent), "\(agent.log)")
        #expect(waitUntil(timeout: 20) { agent.log.contains("sending every 1 s") }, "\(agent.log)")
        agent.signal(SIGTERM)
        #expect(waitUntil(timeout: 60) { agent.status != nil })
        #expect(try imds.calls("RecordLifecycleActionHeartbeat").count >= 2, "a heartbeat each second of the 4 s drain")
    }

    /// The limits of a hook found only at the trigger count as well as those of one found at boot.
    @Test func aHookFoundAtTheTriggerShortensTheHeartbeatInterval() throws {
        try group(heartbeatTimeout: 2, inGroup: false)
        realm(drainSeconds: 5)
        let agent = try boot(heartbeat: "30s")
        _ = try #require(waitForWorker(agent), "\(agent.log)")
        #expect(waitUntil(timeout: 20) { agent.log.contains("in no Auto Scaling group") }, "\(agent.log)")
        let stop = LavaBootBinary.run(["stop", "--root", fixture.root, "--wait", "--auto-scaling-group-name", "G"], environment: environment)
        #expect(stop.exitCode == 0, "\(stop.stderr)")
        #expect(waitUntil(timeout: 30) { agent.status != nil }, "\(agent.log)")
        #expect(agent.status == .exited(0))
        #expect(agent.log.contains("sending every 1 s"), "\(agent.log)")
        let heartbeats = try imds.calls("RecordLifecycleActionHeartbeat").filter { $0["status"] as? Int == 200 }
        #expect(heartbeats.count >= 2, "about one a second through the 5 s drain, not one per 30 s: \(heartbeats.count)")
        #expect(try imds.completions().map { $0["hook"] as? String } == ["H"])
    }

    @Test func credentialsRotatedMidDrainAreRefreshed() throws {
        try imds.control(json: #"{"credential_lifetime": 305}"#)
        try group()
        realm(drainSeconds: 6)
        let agent = try boot()
        _ = try #require(waitForWorker(agent), "\(agent.log)")
        agent.signal(SIGTERM)
        #expect(waitUntil(timeout: 20) { ((try? imds.calls("RecordLifecycleActionHeartbeat")) ?? []).count >= 1 })
        try imds.control(json: #"{"expire_now": true, "reject_old_keys": true}"#)
        #expect(waitUntil(timeout: 60) { agent.status != nil }, "\(agent.log)")
        let completes = try imds.calls("CompleteLifecycleAction")
        #expect(completes.filter { $0["status"] as? Int == 200 }.count == 1, "\(completes)")
        let keys = Set(((try imds.counters()["autoscaling_calls"] as? [[String: Any]]) ?? []).compactMap { $0["access_key_id"] as? String })
        #expect(keys.count >= 2, "the calls after the rotation are signed with the new key")
    }

    @Test func statusShowsTheGroupAndTheDrain() throws {
        try group()
        realm(drainSeconds: 8)
        let agent = try boot(stopTimeout: "5m")
        _ = try #require(waitForWorker(agent), "\(agent.log)")
        #expect(waitUntil(timeout: 20) { agent.log.contains("terminating hook H") })
        try imds.control(json: #"{"paths": {"/latest/meta-data/events/recommendations/rebalance": "{\"noticeTime\": \"2026-12-01T12:00:00Z\"}"}}"#)
        #expect(waitUntil(timeout: 20) { agent.log.contains("spot rebalance recommendation") })
        agent.signal(SIGTERM)
        #expect(waitUntil(timeout: 20) { agent.log.contains("lifecycle heartbeat sent") }, "\(agent.log)")
        let status = LavaBootBinary.run(["status", "--json", "--root", fixture.root])
        #expect(status.exitCode == 0, "\(status.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        let lifecycle = try #require(json["lifecycle"] as? [String: Any], "\(status.stdout)")
        #expect(lifecycle["group"] as? String == "G")
        #expect(lifecycle["hook"] as? String == "H")
        #expect((lifecycle["notices"] as? [String])?.first?.contains("rebalance") == true)
        let drain = try #require(lifecycle["drain"] as? [String: Any])
        #expect(drain["trigger"] as? String == "SIGTERM")
        #expect((drain["heartbeats_sent"] as? Int ?? 0) >= 1)
        #expect((drain["time_left"] as? Double ?? 0) > 200)
        let text = LavaBootBinary.run(["status", "--root", fixture.root])
        #expect(text.stdout.contains("auto scaling: group G, hook H"), "\(text.stdout)")
        #expect(text.stdout.contains("draining (SIGTERM)"))
        #expect(waitUntil(timeout: 60) { agent.status != nil })
    }
}
