#if canImport(Glibc)
import Glibc
#endif
import CShim
import Dispatch
import LavaSystem
import Synchronization
import LavaTestSupport
import Testing

/// Children run through the Reaper: statuses, output, timeouts, exec failures and zombies.
@Suite struct SubprocessTests {
    static let environment = ["PATH=/usr/bin:/bin"]

    static func shell(_ script: String, _ arguments: [String] = []) -> SpawnRequest {
        SpawnRequest(executable: "/bin/sh", arguments: ["-c", script, "sh"] + arguments, environment: environment)
    }

    /// Runs to the end; returns the result, every line, and the wall time it took.
    static func run(_ request: SpawnRequest, timeout: Subprocess.Timeout? = nil) throws -> (Subprocess.Result, [String], Duration) {
        var lines = [String]()
        let start = ContinuousClock.now
        let result = try Subprocess.run(request, timeout: timeout) { lines.append($0) }
        return (result, lines, ContinuousClock.now - start)
    }

    static func run(_ script: String, timeout: Subprocess.Timeout? = nil) throws -> (Subprocess.Result, [String], Duration) {
        try run(shell(script), timeout: timeout)
    }

    // MARK: Status

    @Test(arguments: [0, 1, 3, 127, 255] as [Int32])
    func exitStatusIsReported(_ code: Int32) throws {
        let (result, lines, _) = try SubprocessTests.run("exit \(code)")
        #expect(result.status == .exited(code))
        #expect(result.status.isSuccess == (code == 0))
        #expect(!result.timedOut)
        #expect(lines.isEmpty)
    }

    @Test(arguments: [SIGTERM, SIGKILL, SIGINT, SIGSEGV, SIGUSR1])
    func deathBySignalIsReported(_ signal: Int32) throws {
        let (result, _, _) = try SubprocessTests.run("kill -\(signal) $$; sleep 5")
        #expect(result.status == .signaled(signal))
        #expect(!result.status.isSuccess)
        #expect(!result.timedOut)
    }

    /// Where the kernel refuses close_range, each descriptor is marked close-on-exec instead:
    /// none of the parent's crosses exec either way.
    @Test(arguments: [false, true])
    func noParentDescriptorCrossesExec(_ refused: Bool) throws {
        let inheritable = open("/dev/null", O_RDONLY)  // no O_CLOEXEC: only the spawn protects it
        defer { close(inheritable) }
        lava_set_close_range_refused(refused ? 1 : 0)
        defer { lava_set_close_range_refused(0) }
        let (result, lines, _) = try SubprocessTests.run("for f in /proc/$$/fd/*; do echo \"${f##*/}\"; done")
        #expect(result.status == .exited(0))
        #expect(!lines.contains(String(inheritable)), "fd \(inheritable) leaked into the child: \(lines)")
        #expect(lines.contains("0") && lines.contains("1") && lines.contains("2"))
    }

    @Test func statusDescriptions() {
        #expect(LavaSystem.ExitStatus.exited(3).description == "exit status 3")
        #expect(LavaSystem.ExitStatus.signaled(SIGKILL).description == "killed by SIGKILL")
        #expect(LavaSystem.ExitStatus.signaled(SIGTERM).description == "killed by SIGTERM")
        #expect(signalName(SIGSEGV) == "SIGSEGV")
    }

    // MARK: Output

    @Test func outputLinesArriveInOrder() throws {
        let (result, lines, _) = try SubprocessTests.run("printf 'one\\ntwo\\n\\nthree'")
        #expect(result.status == .exited(0))
        #expect(lines == ["one", "two", "", "three"])
    }

    @Test func standardOutputAndErrorAreOneStreamInOrder() throws {
        let (_, lines, _) = try SubprocessTests.run("echo 1; echo 2 >&2; echo 3; echo 4 >&2")
        #expect(lines == ["1", "2", "3", "4"])
    }

    @Test func manyLinesAllArriveInOrder() throws {
        let (result, lines, _) = try SubprocessTests.run(SpawnRequest(executable: "/usr/bin/seq", arguments: ["1", "20000"],
                                                                      environment: SubprocessTests.environment))
        #expect(result.status == .exited(0))
        #expect(lines == (1...20000).map(String.init))
    }

    @Test func aLongLineArrivesIntact() throws {
        let (_, lines, _) = try SubprocessTests.run("head -c 40000 /dev/zero | tr '\\0' x; echo; echo after")
        #expect(lines.last == "after")
        let pieces = lines.dropLast()
        #expect(pieces.joined() == String(repeating: "x", count: 40000))
    }

    @Test func noPieceOfALongLineExceedsTheLimit() throws {
        // 16,000 bytes, a pause, then 4,000 more and the newline in one write: a 20,000-byte line.
        let directory = TemporaryDirectory("longline")
        let first = directory.write("first", String(repeating: "a", count: 16_000))
        let second = directory.write("second", String(repeating: "b", count: 4_000) + "\n")
        let (_, lines, _) = try SubprocessTests.run(SubprocessTests.shell("cat \"$1\"; sleep 0.3; cat \"$2\"; echo after", [first, second]))
        #expect(lines.last == "after")
        #expect(lines.dropLast().joined() == String(repeating: "a", count: 16_000) + String(repeating: "b", count: 4_000))
        #expect(lines.allSatisfy { $0.utf8.count <= 16 * 1024 }, "\(lines.map(\.utf8.count))")
    }

    @Test func argumentsAndEnvironmentArePassedVerbatim() throws {
        let environment = ["PATH=/usr/bin:/bin", "DQ=say \"hi\"", "DOLLAR=$HOME ${X} $(id)", "TICK=`id`", "EMPTY=", "SP=  a  b  "]
        let request = SpawnRequest(executable: "/usr/bin/env", arguments: [], environment: environment)
        let (_, lines, _) = try SubprocessTests.run(request)
        #expect(lines == environment)
        let (_, echoed, _) = try SubprocessTests.run(SubprocessTests.shell("for a; do echo \"[$a]\"; done", ["a b", "$X", "", "'q'"]))
        #expect(echoed == ["[a b]", "[$X]", "[]", "['q']"])
    }

    @Test func workingDirectoryIsSet() throws {
        let directory = TemporaryDirectory("cwd")
        var request = SubprocessTests.shell("pwd")
        request.workingDirectory = directory.path
        let (_, lines, _) = try SubprocessTests.run(request)
        #expect(lines == [directory.path])
    }

    @Test func theChildInheritsNoOtherDescriptors() throws {
        let directory = TemporaryDirectory("fd")
        let path = directory.write("held", "x")
        let fd = open(path, O_RDONLY)  // deliberately without O_CLOEXEC
        try #require(fd >= 0)
        defer { close(fd) }
        let (_, lines, _) = try SubprocessTests.run("[ -e /proc/$$/fd/\(fd) ] && echo leaked || echo closed")
        #expect(lines == ["closed"])
    }

    // MARK: Timeouts

    @Test func aChildThatFinishesInTimeIsNotTimedOut() throws {
        let (result, lines, _) = try SubprocessTests.run("echo done", timeout: .init(seconds: 10, killAfter: 1))
        #expect(result.status == .exited(0))
        #expect(!result.timedOut)
        #expect(lines == ["done"])
    }

    @Test func timeoutSendsSIGTERM() throws {
        let (result, lines, elapsed) = try SubprocessTests.run("echo started; exec sleep 30", timeout: .init(seconds: 0.5, killAfter: 0.5))
        #expect(result.timedOut)
        #expect(result.status == .signaled(SIGTERM))
        #expect(lines == ["started"])
        #expect(elapsed >= .milliseconds(450), "\(elapsed)")
        #expect(elapsed < .seconds(60), "only a timeout that never fires takes this long: \(elapsed)")
    }

    @Test func aChildIgnoringSIGTERMGetsSIGKILL() throws {
        let (result, lines, elapsed) = try SubprocessTests.run("trap '' TERM; echo ready; exec sleep 30",
                                                               timeout: .init(seconds: 0.5, killAfter: 0.5))
        #expect(result.timedOut)
        #expect(result.status == .signaled(SIGKILL))
        #expect(lines == ["ready"])
        #expect(elapsed >= .milliseconds(950), "\(elapsed)")
        #expect(elapsed < .seconds(60), "only a timeout that never fires takes this long: \(elapsed)")
    }

    @Test func aChildThatHandlesSIGTERMMayFinishCleanly() throws {
        let (result, lines, _) = try SubprocessTests.run("trap 'echo cleaning; kill $! 2>/dev/null; exit 0' TERM; echo up; sleep 30 </dev/null >/dev/null 2>&1 & wait",
                                                         timeout: .init(seconds: 0.5, killAfter: 5))
        #expect(result.timedOut)
        #expect(result.status == .exited(0))
        #expect(lines.first == "up")
        #expect(lines.contains("cleaning"))
    }

    @Test func timeoutBoundsTheRunEvenWhenAGrandchildHoldsTheOutput() throws {
        // The script's own child (`sleep`) holds the output pipe too; the timeout must still end the run.
        let (result, lines, elapsed) = try SubprocessTests.run("echo started; sleep 4; echo late",
                                                               timeout: .init(seconds: 0.5, killAfter: 0.5))
        #expect(result.timedOut)
        #expect(lines == ["started"])
        #expect(elapsed < .seconds(3.5), "run() returned after \(elapsed)")
    }

    /// Durations become whole units without a trap, whatever they hold.
    @Test func wholeUnitsSaturate() {
        #expect(Int(saturating: 2.9) == 2)
        #expect(Int(saturating: -2.9) == -2)
        #expect(Int(saturating: 1e20) == Int.max)
        #expect(Int(saturating: .infinity) == Int.max)
        #expect(Int(saturating: -1e20) == Int.min)
        #expect(Int(saturating: .nan) == 0)
        #expect(Int(saturating: Double(Int.max)) == Int.max)
    }

    // MARK: Exec failures

    @Test func aMissingBinaryIsAnError() {
        let request = SpawnRequest(executable: "/nonexistent/lava-boot-no-such-binary", arguments: [], environment: [])
        let error = #expect(throws: LavaError.self) { try Subprocess.run(request) { _ in } }
        #expect(error?.code == .process)
        #expect(error?.message.contains("/nonexistent/lava-boot-no-such-binary") == true, "\(String(describing: error))")
        #expect(error?.message.contains("execve") == true, "\(String(describing: error))")
        #expect(error?.message.contains("No such file or directory") == true, "\(String(describing: error))")
    }

    @Test func aNonExecutableFileIsAnError() {
        let directory = TemporaryDirectory("noexec")
        let path = directory.write("tool", "#!/bin/sh\necho hi\n", mode: 0o644)
        let error = #expect(throws: LavaError.self) {
            try Subprocess.run(SpawnRequest(executable: path, arguments: [], environment: [])) { _ in }
        }
        #expect(error?.code == .process)
        #expect(error?.message.contains(path) == true, "\(String(describing: error))")
        #expect(error?.message.contains("Permission denied") == true, "\(String(describing: error))")
    }

    @Test func aMissingWorkingDirectoryIsAnError() {
        var request = SubprocessTests.shell("echo hi")
        request.workingDirectory = "/nonexistent/lava-boot-no-such-dir"
        let error = #expect(throws: LavaError.self) { try Subprocess.run(request) { _ in } }
        #expect(error?.code == .process)
        #expect(error?.message.contains("chdir") == true, "\(String(describing: error))")
    }

    @Test func theExecutableIsNotLookedUpOnPath() {
        let request = SpawnRequest(executable: "sh", arguments: ["-c", "true"], environment: SubprocessTests.environment)
        #expect(throws: LavaError.self) { try Subprocess.run(request) { _ in } }
    }

    // MARK: Reaper

    @Test func reaperDeliversStatusToACallback() throws {
        final class Box: Sendable {
            let status = Mutex<LavaSystem.ExitStatus?>(nil)
            let done = DispatchSemaphore(value: 0)
        }
        let box = Box()
        let request = SpawnRequest(executable: "/bin/sh", arguments: ["-c", "exit 7"], environment: [])
        let pid = try Reaper.shared.spawn(request) { status in
            box.status.withLock { $0 = status }
            box.done.signal()
        }
        #expect(pid > 0)
        #expect(box.done.wait(timeout: .now() + 10) == .success)
        #expect(box.status.withLock { $0 } == .exited(7))
    }

    @Test func reaperBlockingWait() throws {
        let pid = try Reaper.shared.spawn(SpawnRequest(executable: "/bin/sh", arguments: ["-c", "exit 5"], environment: []))
        #expect(Reaper.shared.wait(pid) == .exited(5))
        // A child that is already gone before the wait starts is still reported.
        let quick = try Reaper.shared.spawn(SpawnRequest(executable: "/bin/sh", arguments: ["-c", "exit 6"], environment: []))
        usleep(200_000)
        #expect(Reaper.shared.wait(quick) == .exited(6))
    }

    @Test func concurrentRunsGetTheirOwnStatusAndOutput() {
        let results = Mutex<[Int: (LavaSystem.ExitStatus, [String])]>([:])
        DispatchQueue.concurrentPerform(iterations: 24) { index in
            var lines = [String]()
            let request = SubprocessTests.shell("echo out-\(index); exit \(index)")
            let status = (try? Subprocess.run(request) { lines.append($0) })?.status
            if let status { results.withLock { $0[index] = (status, lines) } }
        }
        let collected = results.withLock { $0 }
        #expect(collected.count == 24)
        for index in 0..<24 {
            #expect(collected[index]?.0 == .exited(Int32(index)), "child \(index)")
            #expect(collected[index]?.1 == ["out-\(index)"], "child \(index)")
        }
    }

    /// Children of `me` (this process by default) that are zombies right now (state Z in /proc/PID/stat).
    static func zombieChildren(of me: Int32 = getpid()) -> [Int32] {
        var zombies = [Int32]()
        guard let names = try? Files.list("/proc") else { return [] }
        for name in names {
            guard let pid = Int32(name), let stat = (try? Files.readText("/proc/\(name)/stat")) ?? nil,
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, let parent = Int32(fields[1]) else { continue }
            if parent == me && fields[0] == "Z" { zombies.append(pid) }
        }
        return zombies
    }

    @Test func noZombiesAreLeftBehind() throws {
        for index in 0..<60 {
            switch index % 4 {
            case 0: _ = try SubprocessTests.run("exit 0")
            case 1: _ = try SubprocessTests.run("kill -KILL $$")
            case 2:
                let request = SpawnRequest(executable: "/nonexistent/lava-boot-zombie-\(index)", arguments: [], environment: [])
                #expect(throws: LavaError.self) { try Subprocess.run(request) { _ in } }
            default:
                let pid = try Reaper.shared.spawn(SpawnRequest(executable: "/bin/true", arguments: [], environment: [])) { _ in }
                #expect(pid > 0)
            }
        }
        _ = try SubprocessTests.run("exec sleep 5", timeout: .init(seconds: 0.1, killAfter: 0.1))
        // Other tests run children at the same time, so a zombie may exist for an instant; a leaked one stays.
        var zombies = SubprocessTests.zombieChildren()
        for _ in 0..<25 where !zombies.isEmpty {
            usleep(200_000)
            zombies = SubprocessTests.zombieChildren()
        }
        #expect(zombies.isEmpty, "zombie children of \(getpid()): \(zombies)")
    }

    @Test func zombieScanSeesARealZombie() throws {
        // The scan must be able to fail: `sh` forks `true`, then becomes `sleep`, which never waits for it.
        final class Done: Sendable { let semaphore = DispatchSemaphore(value: 0) }
        let done = Done()
        let request = SpawnRequest(executable: "/bin/sh", arguments: ["-c", "/bin/true & exec /bin/sleep 10"], environment: [])
        let pid = try Reaper.shared.spawn(request) { _ in done.semaphore.signal() }
        var zombies = [Int32]()
        for _ in 0..<50 where zombies.isEmpty {
            usleep(100_000)
            zombies = SubprocessTests.zombieChildren(of: pid)
        }
        kill(pid, SIGKILL)
        #expect(done.semaphore.wait(timeout: .now() + 10) == .success)
        #expect(zombies.count == 1, "zombie children of \(pid): \(zombies)")
    }
}
