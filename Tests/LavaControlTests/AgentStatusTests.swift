@testable import LavaControl
import LavaJSON
import LavaSupervisor
import LavaSystem
import Testing

@Suite struct AgentStatusTests {
    static let sampleJSON = """
        {"pid":4242,"realm":"demo","worker":"core","source":"file:///srv/lava-code","started":1795460645.25,"stopping":false,\
        "daemons":[\
        {"worker":"core","index":0,"version":"8.2.0","pid":4250,"restarts":0,"uptime":7385.5,"state":"running","last_exit":null},\
        {"worker":"core","index":1,"version":"8.2.0","pid":null,"restarts":3,"uptime":null,"state":"restarting","last_exit":"exit status 1"},\
        {"worker":"batch","index":0,"version":"7.0.3","pid":4301,"restarts":12,"uptime":42.125,"state":"running","last_exit":"signal 9 (SIGKILL)"}]}
        """

    @Test func encodesTheDocumentedSchema() {
        #expect(sampleStatus().json.serialized() == Self.sampleJSON)
    }

    @Test func decodesWhatItEncodes() throws {
        let parsed = try JSONValue(parsing: Self.sampleJSON)
        #expect(try AgentStatus(json: parsed) == sampleStatus())
        var stopping = sampleStatus()
        stopping.stopping = true
        stopping.daemons = []
        #expect(try AgentStatus(json: stopping.json) == stopping)
    }

    @Test func lifecycleAndDrainRoundTripAndShowInTheText() throws {
        var status = sampleStatus()
        var lifecycle = LifecycleStatus()
        lifecycle.group = "lava-prod"
        lifecycle.hook = "drain"
        lifecycle.instanceID = "i-0123456789abcdef0"
        lifecycle.targetState = "Terminated"
        lifecycle.notices = ["spot rebalance recommendation: {}"]
        var drain = DrainStatus(trigger: "SIGTERM", deadline: Clock.wallSeconds() + 300)
        drain.heartbeatsSent = 2
        drain.nextHeartbeat = Clock.wallSeconds() + 60
        drain.completion = "CONTINUE accepted"
        lifecycle.drain = drain
        status.lifecycle = lifecycle
        let decoded = try AgentStatus(json: try JSONValue(parsing: status.json.serialized()))
        #expect(decoded.lifecycle?.group == "lava-prod")
        #expect(decoded.lifecycle?.notices == lifecycle.notices)
        #expect(decoded.lifecycle?.drain?.heartbeatsSent == 2)
        #expect(decoded.lifecycle?.drain?.completion == "CONTINUE accepted")
        #expect(decoded.lifecycle?.drain?.trigger == "SIGTERM")
        #expect(status.text.contains("auto scaling: group lava-prod, hook drain, instance i-0123456789abcdef0, target state Terminated"))
        #expect(status.text.contains("draining (SIGTERM): 4m5"), "\(status.text)")
        #expect(status.text.contains("2 heartbeats sent"))
    }

    @Test func decodingIgnoresUnknownFieldsAndAcceptsMissingOptionalOnes() throws {
        let text = """
            {"pid":7,"realm":"r","worker":"w","stopping":true,"extra":{"new":1},\
            "daemons":[{"worker":"w","index":0,"version":"9.0","restarts":0,"state":"stopped","future":true}]}
            """
        let status = try AgentStatus(json: JSONValue(parsing: text))
        #expect(status == AgentStatus(agentPID: 7, realm: "r", worker: "w", source: "", stopping: true, startedAt: 0,
                                      daemons: [DaemonStatus(worker: "w", index: 0, version: "9.0", pid: nil, restarts: 0,
                                                                uptime: nil, phase: .init(rawValue: "stopped"), lastExit: nil)]))
    }

    @Test func decodingErrorsNameTheField() throws {
        let cases: [(String, String)] = [
            ("[]", "status: expected a JSON object"),
            ("{\"pid\":1,\"realm\":\"r\",\"worker\":\"w\",\"stopping\":false}", "status.daemons: missing"),
            ("{\"pid\":\"1\",\"realm\":\"r\",\"worker\":\"w\",\"stopping\":false,\"daemons\":[]}", "status.pid: expected a whole number"),
            ("{\"pid\":1,\"realm\":\"r\",\"worker\":\"w\",\"stopping\":false,\"daemons\":[{\"worker\":\"w\",\"index\":0,\"version\":\"1\",\"restarts\":0,\"state\":\"running\",\"uptime\":\"5s\"}]}",
             "status.daemons[0].uptime: expected a number"),
            ("{\"pid\":1,\"realm\":\"r\",\"worker\":\"w\",\"stopping\":false,\"daemons\":[{\"worker\":\"w\",\"index\":0,\"version\":\"1\",\"restarts\":0,\"state\":\"running\",\"pid\":99999999999}]}",
             "status.daemons[0].pid: out of range"),
        ]
        for (text, message) in cases {
            let error = expectLavaError(.controlProtocol) { _ = try AgentStatus(json: JSONValue(parsing: text)) }
            #expect(error?.message == message)
        }
    }

    @Test func textIsATablePeopleRead() {
        let expected = """
            lava-boot agent pid 4242, realm demo, worker core, started 2026-11-23 19:04 UTC, stopping: no
            source file:///srv/lava-code
            WORKER  #  VERSION  PID   UPTIME  RESTARTS  STATE       LAST EXIT
            core    0  8.2.0    4250  2h03m   0         running     -
            core    1  8.2.0    -     -       3         restarting  exit status 1
            batch   0  7.0.3    4301  42s     12        running     signal 9 (SIGKILL)

            """
        #expect(sampleStatus().text == expected)
    }

    @Test func textWhenStoppingWithNoDaemons() {
        var status = sampleStatus()
        status.stopping = true
        status.daemons = []
        status.source = ""
        #expect(status.text == """
            lava-boot agent pid 4242, realm demo, worker core, started 2026-11-23 19:04 UTC, stopping: yes
            WORKER  #  VERSION  PID  UPTIME  RESTARTS  STATE  LAST EXIT
            (no daemons)

            """)
    }

    @Test func secondsAndDurations() {
        #expect(jsonSeconds(12) == "12")
        #expect(jsonSeconds(12.5) == "12.5")
        #expect(jsonSeconds(0.0004) == "0")
        #expect(jsonSeconds(0.0996) == "0.1")
        #expect(jsonSeconds(1_795_460_645.123) == "1795460645.123")
        #expect(jsonSeconds(-1.5) == "-1.5")
        #expect(jsonSeconds(.nan) == "0")
        #expect(formatDuration(0) == "0s")
        #expect(formatDuration(59.9) == "59s")
        #expect(formatDuration(65) == "1m05s")
        #expect(formatDuration(3 * 3600 + 7 * 60 + 30) == "3h07m")
        #expect(formatDuration(2 * 86_400 + 4 * 3600) == "2d04h")
        #expect(formatDuration(-5) == "0s")
    }
}

@Suite struct ControlRequestTests {
    @Test func statusRequestJSON() throws {
        #expect(ControlRequest.status.json.serialized() == "{\"command\":\"status\"}")
        #expect(try ControlRequest(json: JSONValue(parsing: "{\"command\":\"status\"}")) == .status)
    }

    @Test func stopRequestJSONWithEveryFlag() throws {
        let stop = StopRequest(signal: 15, wait: true, noDispatch: true, autoScalingGroupName: "asg",
                               lifecycleHookName: "hook", lifecycleActionToken: "tok", instanceID: "i-1",
                               lifecycleHeartbeat: true)
        let text = ControlRequest.stop(stop).json.serialized()
        #expect(text == """
            {"command":"stop","signal":15,"wait":true,"no_dispatch":true,"auto_scaling_group_name":"asg",\
            "lifecycle_hook_name":"hook","lifecycle_action_token":"tok","instance_id":"i-1","lifecycle_heartbeat":true}
            """)
        #expect(try ControlRequest(json: JSONValue(parsing: text)) == .stop(stop))
    }

    @Test func stopRequestDefaults() throws {
        #expect(ControlRequest.stop(StopRequest()).json.serialized() == "{\"command\":\"stop\",\"wait\":false,\"no_dispatch\":false}")
        #expect(try ControlRequest(json: JSONValue(parsing: "{\"command\":\"stop\"}")) == .stop(StopRequest()))
        let nulls = "{\"command\":\"stop\",\"signal\":null,\"instance_id\":null,\"lifecycle_heartbeat\":null}"
        #expect(try ControlRequest(json: JSONValue(parsing: nulls)) == .stop(StopRequest()))
        #expect(try ControlRequest(json: JSONValue(parsing: "{\"command\":\"stop\",\"signal\":2.0}")) == .stop(StopRequest(signal: 2)))
    }

    @Test func responses() {
        #expect(ControlResponse.ok().serialized() == "{\"ok\":true}")
        #expect(ControlResponse.error("no \"x\"").serialized() == "{\"ok\":false,\"error\":\"no \\\"x\\\"\"}")
        #expect(ControlResponse.status(sampleStatus()).serialized() == "{\"ok\":true,\"status\":\(AgentStatusTests.sampleJSON)}")
    }
}
