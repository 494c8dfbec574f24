import Foundation
import LavaJSON
import LavaSystem
import LavaTestSupport
import Testing

/// `boot` in user mode: scriptlets, the install slot, supervision, restarts and the drain.
@Suite struct BootTests {
    let fixture = LocalFixture()

    func boot(_ extra: [String] = [], environment: [String: String] = [:]) throws -> RunningAgent {
        try RunningAgent(["boot", fixture.source, "prod", "core", "--realms-file", fixture.realmsFile, "--root", fixture.root,
                          "--user-mode", "--stop-timeout", "30s"] + extra, environment: environment)
    }

    func realm(daemons: Int = 1, records: String, extraEnv: String = "") {
        fixture.realms(#"{"realm": "prod", "x-workers": {"core": {"daemons": \#(daemons), "env": {"FAKE_RECORD_DIR": "\#(records)"\#(extraEnv)}}}}"#)
    }

    @Test func scriptletsRunInOrderAroundTheInstallSlot() throws {
        fixture.workerBundle("8.2.0")
        let records = fixture.recordDirectory()
        realm(records: records)
        let trace = fixture.directory.sub("trace")
        let probe = #"""
            printf '%s|%s|%s|%s|%s|%s\n' "$SLOT" "$0" "$*" "$(pwd)" "$(stat -c %a .)" "$(readlink /proc/$$/fd/0)" >> "$TRACE"
            ls "$RECORDS" | grep -q . && echo "$SLOT workers-up" >> "$TRACE" || echo "$SLOT workers-down" >> "$TRACE"
            """#
        fixture.scriptlet("10-first.sh", "SLOT=10\n" + probe)
        fixture.scriptlet("50-lava.sh", "echo 50 ran >> \"$TRACE\"\n")
        fixture.scriptlet("90-last.sh", "sleep 0.5\nSLOT=90\n" + probe)
        fixture.scriptlet("README.md", "echo README ran >> \"$TRACE\"\n")
        fixture.scriptlet("sub/deeper.sh", "echo deeper ran >> \"$TRACE\"\n")
        let agent = try boot(environment: ["TRACE": trace, "RECORDS": records])
        #expect(waitUntil(timeout: 20) { ((try? Files.readText(trace)) ?? nil)?.contains("90 workers") == true }, "\(agent.log)")
        let lines = (((try? Files.readText(trace)) ?? nil) ?? "").split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(lines)")
        let first = lines[0].split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        #expect(first[0] == "10")
        #expect(first[1] == "./10-first.sh")
        #expect(first[2] == "\(fixture.source) prod core")
        #expect(first[3].hasPrefix("/tmp/lava-boot-scriptlet."), "a private directory")
        #expect(first[4] == "700")
        #expect(first[5] == "/dev/null")
        #expect(lines[1] == "10 workers-down")
        #expect(lines[2].hasPrefix("90|./90-last.sh|"))
        #expect(lines[3] == "90 workers-up", "the 90- scriptlet runs after the workers started")
        #expect(agent.log.contains("[scriptlet] 90-last.sh finished"))

        #expect(agent.stop() == .exited(0), "\(agent.log)")
        let worker = try #require(WorkerRecord.all(in: records).first)
        #expect(worker.signals == ["HUP"], "drained with SIGHUP")
        #expect(Files.exists(fixture.root + "/tmp/lava/__nodispatch__"))
    }

    /// A local user plants `/tmp/lava` as a link before the boot: it is replaced, never followed.
    @Test(arguments: ["file", "directory"])
    func plantedTmpLavaLinkIsReplacedNotFollowed(_ kind: String) throws {
        fixture.workerBundle("8.2.0")
        let records = fixture.recordDirectory()
        realm(records: records)
        let victim = fixture.directory.sub("victim")
        if kind == "file" {
            fixture.directory.write("victim", "precious\n", mode: 0o600)
        } else {
            #expect(mkdir(victim, 0o700) == 0)
        }
        try Files.makeDirectories(fixture.root + "/tmp")
        #expect(symlink(victim, fixture.root + "/tmp/lava") == 0)
        let agent = try boot()
        #expect(waitUntil(timeout: 30) { WorkerRecord.all(in: records).count == 1 }, "\(agent.log)")
        #expect(Files.readLink(fixture.root + "/tmp/lava") == nil, "the link is gone")
        var info = stat()
        #expect(lstat(fixture.root + "/tmp/lava/prod", &info) == 0 && info.st_mode & 0o7777 == 0o1770)
        #expect(agent.stop() == .exited(0), "\(agent.log)")
        #expect(Files.exists(fixture.root + "/tmp/lava/__nodispatch__"))
        #expect(lstat(victim, &info) == 0 && info.st_mode & 0o7777 == (kind == "file" ? 0o600 : 0o700), "the victim's mode is kept")
        if kind == "file" {
            #expect(try Files.readText(victim) == "precious\n")
        } else {
            #expect(try Files.list(victim) == [], "nothing created in the victim directory")
        }
    }

    @Test func exitOneAbortsTheBootBeforeTheInstall() throws {
        fixture.workerBundle("8.2.0")
        realm(records: fixture.recordDirectory())
        fixture.scriptlet("10-check.sh", "echo checking; exit 1\n")
        fixture.scriptlet("20-never.sh", "touch \"$0.ran\"\n")
        let agent = try boot()
        #expect(waitUntil(timeout: 20) { agent.status != nil })
        #expect(agent.status == .exited(1))
        #expect(agent.log.contains("lava-boot: error: scriptlet 10-check.sh exited with status 1; boot aborted before the workers were installed"))
        #expect(agent.log.contains("checking"), "the scriptlet's output is in the log")
        #expect(!Files.exists(fixture.root + "/opt/lava"), "nothing installed after it")
    }

    @Test func otherFailuresAndTimeoutsAreLoggedAndTheBootGoesOn() throws {
        fixture.workerBundle("8.2.0")
        let records = fixture.recordDirectory()
        realm(records: records)
        fixture.scriptlet("10-three.sh", "exit 3\n")
        fixture.scriptlet("20-slow.sh", "sleep 60\n")
        fixture.scriptlet("30-killed.sh", "kill -9 $$\n")
        let agent = try boot(["--script-timeout", "1s"])
        #expect(waitUntil(timeout: 30) { !WorkerRecord.all(in: records).isEmpty }, "\(agent.log)")
        let log = agent.log
        #expect(log.contains("10-three.sh failed (exit status 3); the boot goes on"))
        #expect(log.contains("20-slow.sh timed out after 1 s"))
        #expect(log.contains("30-killed.sh failed (killed by SIGKILL)"))
        #expect(agent.stop() == .exited(0))
    }

    @Test func aKilledDaemonIsRestartedWithBackoffAndNoZombiesRemain() throws {
        fixture.workerBundle("8.2.0")
        let records = fixture.recordDirectory()
        realm(daemons: 2, records: records)
        let agent = try boot()
        #expect(waitUntil(timeout: 20) { WorkerRecord.all(in: records).count == 2 }, "\(agent.log)")
        var killedAt = [Date]()
        for round in 1...2 {
            let before = WorkerRecord.all(in: records).count
            let victim = try #require(WorkerRecord.all(in: records).last)
            kill(victim.pid, SIGKILL)
            killedAt.append(Date())
            #expect(waitUntil(timeout: 10) { WorkerRecord.all(in: records).count == before + 1 }, "round \(round): \(agent.log)")
            let waited = Date().timeIntervalSince(killedAt.last!)
            #expect(waited >= Double(round) * 0.9, "round \(round) restarted after \(waited) s")
        }
        #expect(agent.log.contains("exited (killed by SIGKILL)"))
        let status = LavaBootBinary.run(["status", "--json", "--root", fixture.root])
        #expect(status.exitCode == 0, "\(status.stderr)")
        let json = try JSONValue(parsing: status.stdout)
        guard case .array(let daemons)? = json["daemons"] else { Issue.record("no daemons: \(status.stdout)"); return }
        #expect(daemons.map { $0["restarts"] } == [.number("0"), .number("2")], "the killed daemon counts two restarts")
        #expect(daemons.allSatisfy { $0["state"] == .string("running") })
        #expect(agent.log.contains("restarting in 1 s"))
        #expect(agent.log.contains("restarting in 2 s"))
        // Many more restarts of the other daemon: every exit reaped.
        for _ in 1...5 {
            let count = WorkerRecord.all(in: records).count
            guard let first = WorkerRecord.all(in: records).first(where: { kill($0.pid, 0) == 0 && $0.pid != WorkerRecord.all(in: records).last?.pid }) else { break }
            kill(first.pid, SIGKILL)
            _ = waitUntil(timeout: 70) { WorkerRecord.all(in: records).count > count }
        }
        #expect(agent.zombies().isEmpty)
        #expect(agent.stop() == .exited(0))
    }

    @Test func statusStopAndASecondAgent() throws {
        fixture.workerBundle("8.2.0")
        let records = fixture.recordDirectory()
        realm(daemons: 2, records: records)
        let agent = try boot()
        #expect(waitUntil(timeout: 20) { WorkerRecord.all(in: records).count == 2 }, "\(agent.log)")
        var info = stat()
        #expect(stat(fixture.root + "/run/lava-boot/control.sock", &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(info.st_uid == getuid())
        #expect(try Files.readText(fixture.root + "/run/lava-boot/lava-boot.pid") == "\(agent.pid)\n")

        let second = try boot()
        #expect(waitUntil(timeout: 20) { second.status != nil })
        #expect(second.status == .exited(1))
        #expect(second.log.contains("another lava-boot agent (pid \(agent.pid)) is running"), "\(second.log)")
        #expect(WorkerRecord.all(in: records).count == 2, "the second agent started nothing")

        let text = LavaBootBinary.run(["status", "--root", fixture.root])
        #expect(text.exitCode == 0)
        #expect(text.stdout.contains("stopping: no"))
        #expect(text.stdout.split(separator: "\n").filter { $0.hasPrefix("core ") }.count == 2, "\(text.stdout)")

        let stop = LavaBootBinary.run(["stop", "--wait", "--root", fixture.root])
        #expect(stop.exitCode == 0, "\(stop.stderr)")
        #expect(stop.stdout == "stopped\n")
        #expect(waitUntil(timeout: 10) { agent.status != nil })
        #expect(agent.status == .exited(0))
        #expect(WorkerRecord.all(in: records).allSatisfy { $0.signals == ["HUP"] })
        #expect(!Files.exists(fixture.root + "/run/lava-boot/control.sock"))
        let none = LavaBootBinary.run(["status", "--root", fixture.root])
        #expect(none.exitCode == 1)
        #expect(none.stderr.hasPrefix("lava-boot: error: no lava-boot agent is running"))
    }

    @Test func stopWithAnotherSignal() throws {
        fixture.workerBundle("8.2.0")
        let records = fixture.recordDirectory()
        realm(records: records)
        let agent = try boot()
        #expect(waitUntil(timeout: 20) { WorkerRecord.all(in: records).count == 1 }, "\(agent.log)")
        #expect(LavaBootBinary.run(["stop", "--signal", "INT", "--root", fixture.root]).exitCode == 0)
        #expect(waitUntil(timeout: 10) { agent.status != nil })
        #expect(WorkerRecord.all(in: records).first?.signals == ["INT"])
    }

    @Test func jsonLogLinesCarryFieldsAndNoSecrets() throws {
        fixture.workerBundle("8.2.0")
        let records = fixture.recordDirectory()
        realm(records: records, extraEnv: #", "API_TOKEN": "s3cr3t-t0ken""#)
        fixture.scriptlet("10-hello.sh", "echo hello from a scriptlet\n")
        let agent = try boot(["--log-json"])
        #expect(waitUntil(timeout: 20) { !WorkerRecord.all(in: records).isEmpty })
        #expect(agent.stop() == .exited(0))
        let lines = agent.log.split(separator: "\n")
        #expect(lines.count > 5)
        var components = Set<String>()
        for line in lines {
            let json = try JSONValue(parsing: String(line))
            #expect(json["ts"] != nil && json["level"] != nil && json["msg"] != nil)
            #expect(json["realm"] == .string("prod"))
            if let component = json["component"]?.stringValue { components.insert(component) }
        }
        #expect(components.isSuperset(of: ["boot", "scriptlet", "install", "supervisor", "lava-worker"]), "\(components)")
        #expect(!agent.log.contains("s3cr3t"))
        #expect(agent.log.contains("hello from a scriptlet"))
    }
}
