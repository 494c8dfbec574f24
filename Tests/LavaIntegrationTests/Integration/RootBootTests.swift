import Foundation
import LavaSystem
import LavaTestSupport
import Testing

/// `boot` as root with real accounts, created and removed by the tests. Serialized: the tests
/// share the `lava` group.
@Suite(.serialized) struct RootBootTests {
    let fixture = LocalFixture()
    let suffix = String(UInt32.random(in: 0..<UInt32.max), radix: 36)

    func runTool(_ tool: String, _ arguments: [String]) {
        var request = SpawnRequest(executable: tool, arguments: arguments, environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
        request.standardOutput = -1
        request.standardError = -1
        if let pid = try? Reaper.shared.spawn(request) { _ = Reaper.shared.wait(pid) }
    }

    /// Runs `body`, then removes the accounts and, when the test made it, the `lava` group.
    func withAccounts(_ workers: [String], _ body: () throws -> Void) throws {
        try #require(getuid() == 0, "these tests create accounts and need root")
        let groupExisted = getgrnam("lava") != nil
        defer {
            for worker in workers {
                runTool("/usr/bin/pkill", ["-KILL", "-u", "lava-\(worker)"])
                runTool("/usr/sbin/userdel", ["--remove", "lava-\(worker)"])
            }
            if !groupExisted { runTool("/usr/sbin/groupdel", ["lava"]) }
        }
        try body()
    }

    static func hasProcesses(user: String) -> Bool {
        guard let uid = getpwnam(user)?.pointee.pw_uid else { return false }
        return (((try? Files.list("/proc")) ?? nil) ?? []).contains { entry in
            guard Int32(entry) != nil else { return false }
            var info = stat()
            return stat("/proc/\(entry)", &info) == 0 && info.st_uid == uid
        }
    }

    @Test func workersRunAsTheirAccountsWithExactlyTheirArgvAndEnvironment() throws {
        let one = "ta\(suffix)", two = "tb\(suffix)"
        try withAccounts([one, two]) {
            // Workers join `docker` when the host has that group.
            let dockerExisted = getgrnam("docker") != nil
            if !dockerExisted { runTool("/usr/sbin/groupadd", ["--system", "docker"]) }
            defer { if !dockerExisted { runTool("/usr/sbin/groupdel", ["docker"]) } }
            let dockerID = try #require(getgrnam("docker")).pointee.gr_gid
            fixture.workerBundle("8.1.0")
            fixture.workerBundle("8.2.0")
            let records = fixture.recordDirectory()
            let tricky = #"it's "quoted" $HOME `date` \ back; $(id)"#
            let trickyJSON = tricky.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            fixture.realms(#"""
                {"realm": "prod", "x-workers": {
                  "_": {"env": {"FAKE_RECORD_DIR": "\#(records)", "TRICKY": "\#(trickyJSON)", "bad-key": "x", "EMPTY": ""}},
                  "\#(one)": {"workers": "\#(one) \#(two)", "version": "8.1.0", "threads": "3"},
                  "\#(two)": {"version": "8.2.0"}
                }}
                """#)
            try Files.makeDirectories(fixture.root + "/tmp/lava/stale")
            let agent = try RunningAgent(["boot", fixture.source, "prod", one, "--realms-file", fixture.realmsFile,
                                          "--root", fixture.root, "--stop-timeout", "20s"],
                                         environment: ["SECRET_OF_THE_AGENT": "must-not-leak"])
            #expect(waitUntil(timeout: 30) { WorkerRecord.all(in: records).count == 2 }, "\(agent.log)")
            let records2 = WorkerRecord.all(in: records)
            let groupID = try #require(getgrnam("lava")).pointee.gr_gid
            for worker in [one, two] {
                let account = "lava-\(worker)"
                let entry = try #require(getpwnam(account))
                let home = String(cString: entry.pointee.pw_dir)
                let record = try #require(records2.first { $0.user == account }, "\(records2.map(\.directory))")
                #expect(record.ids[0] == String(entry.pointee.pw_uid))
                #expect(record.ids[1] == String(groupID), "primary group lava")
                #expect(record.ids.dropFirst(2).contains(String(groupID)))
                #expect(record.ids.dropFirst(2).contains(String(dockerID)), "in group docker too")
                #expect(String(cString: entry.pointee.pw_shell) == "/bin/false")
                #expect(record.text("cwd").trimmingCharacters(in: .newlines) == home)
                #expect(record.text("ppid").trimmingCharacters(in: .newlines) == String(agent.pid), "a direct child of the agent")
                #expect(record.environment == [
                    "EMPTY=", "FAKE_RECORD_DIR=\(records)", "HOME=\(home)", "LOGNAME=\(account)",
                    "PATH=\(fixture.root)/usr/local/bin:/usr/bin", "TRICKY=\(tricky)", "USER=\(account)",
                ], "exactly this environment")
                let version = worker == one ? "8.1.0" : "8.2.0"
                #expect(record.executable == "\(fixture.root)/opt/lava/releases/lava-\(version)-amzn2023-py3.11-\(fixture.machineArch)/.boot/bin/lava-worker",
                        "each worker runs its own release")
                var expected = ["--realm", "prod", "--worker", worker, "--jump-start", "--heartbeat", "60",
                                "--tag", "lava-prod-\(worker)", "--log", "@local0", "--level", "info", "--log-json"]
                if worker == one { expected += ["--threads", "3"] }
                #expect(record.argv == expected)
            }
            #expect(agent.log.contains("bad-key"), "a skipped env key is warned about")
            #expect(!agent.log.contains("must-not-leak") && !agent.log.contains("quoted"), "no env value in the log")
            // /tmp/lava recreated empty, the realm's directory group lava, mode 1770.
            #expect(try Files.list(fixture.root + "/tmp/lava")?.sorted() == ["prod"])
            var info = stat()
            #expect(stat(fixture.root + "/tmp/lava/prod", &info) == 0)
            #expect(info.st_mode & 0o7777 == 0o1770)
            #expect(info.st_gid == groupID)
            #expect(Files.readLink(fixture.root + "/opt/lava/current")?.contains("lava-8.1.0") == true, "current is the host worker's")
            #expect(agent.stop() == .exited(0), "\(agent.log)")
            #expect(WorkerRecord.all(in: records).allSatisfy { $0.signals == ["HUP"] })

            // A second boot keeps the accounts.
            let uid = getpwnam("lava-\(one)")?.pointee.pw_uid
            let again = try RunningAgent(["boot", fixture.source, "prod", one, "--realms-file", fixture.realmsFile,
                                          "--root", fixture.root, "--stop-timeout", "20s"])
            #expect(waitUntil(timeout: 30) { WorkerRecord.all(in: records).count == 4 }, "\(again.log)")
            #expect(getpwnam("lava-\(one)")?.pointee.pw_uid == uid)
            #expect(!again.log.contains("created account"))
            #expect(again.stop() == .exited(0))
        }
    }

    @Test func workersThatIgnoreTheDrainAreTerminatedThenKilled() throws {
        let one = "tc\(suffix)"
        try withAccounts([one]) {
            fixture.workerBundle("8.2.0")
            let records = fixture.recordDirectory()
            fixture.realms(#"{"realm": "prod", "x-workers": {"_": {"env": {"FAKE_RECORD_DIR": "\#(records)", "FAKE_DRAIN_SECONDS": "600", "FAKE_IGNORE_TERM": "1"}}}}"#)
            let agent = try RunningAgent(["boot", fixture.source, "prod", one, "--realms-file", fixture.realmsFile,
                                          "--root", fixture.root, "--stop-timeout", "12s"])
            #expect(waitUntil(timeout: 30) { WorkerRecord.all(in: records).count == 1 }, "\(agent.log)")
            let start = Date()
            let status = agent.stop(timeout: 40)
            let took = Date().timeIntervalSince(start)
            #expect(status == .exited(0), "\(agent.log)")
            #expect(took >= 11 && took < 60, "SIGTERM at 2 s, SIGKILL 10 s later: took \(took) s")
            #expect(agent.log.contains("sending SIGTERM"))
            #expect(agent.log.contains("sending SIGKILL"))
            #expect(WorkerRecord.all(in: records).first?.signals == ["HUP", "TERM"])
            #expect(waitUntil(timeout: 5) { !RootBootTests.hasProcesses(user: "lava-\(one)") }, "SIGKILL took the worker's own processes too")
        }
    }
}
