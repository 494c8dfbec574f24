import Foundation
import LavaControl
import LavaSystem
import Testing

@Suite struct AgentLockTests {
    @Test func directoryLayoutUnderTheRoot() {
        let directory = AgentDirectory(root: HostRoot("/tmp/r/"))
        #expect(directory.path == "/tmp/r/run/lava-boot")
        #expect(directory.socketPath == "/tmp/r/run/lava-boot/control.sock")
        #expect(directory.pidPath == "/tmp/r/run/lava-boot/lava-boot.pid")
        #expect(AgentDirectory(root: HostRoot(nil)).socketPath == "/run/lava-boot/control.sock")
    }

    @Test func acquireCreatesTheDirectoryAndWritesThePID() throws {
        let root = TemporaryRoot()
        let lock = try AgentLock.acquire(root.directory)
        defer { lock.release() }
        var info = stat()
        #expect(stat(root.directory.path, &info) == 0)
        #expect(info.st_mode & 0o7777 == 0o755)
        #expect(try Files.readText(root.directory.pidPath) == "\(getpid())\n")
        #expect(lock.pid == getpid())
    }

    @Test func secondAcquireFailsEvenInTheSameProcess() throws {
        let root = TemporaryRoot()
        let first = try AgentLock.acquire(root.directory)
        let error = expectLavaError(.agentRunning) { _ = try AgentLock.acquire(root.directory) }
        #expect(error?.message == "another lava-boot agent (pid \(getpid())) is running on this host; stop it first or use `lava-boot status`")
        // The failed attempt left the holder's pid file alone.
        #expect(try Files.readText(root.directory.pidPath) == "\(getpid())\n")

        first.release()
        #expect(!Files.exists(root.directory.pidPath))
        let second = try AgentLock.acquire(root.directory)
        #expect(try Files.readText(root.directory.pidPath) == "\(getpid())\n")
        second.release()
    }

    @Test func aLockHeldByAnotherProcessIsReported() throws {
        let root = TemporaryRoot()
        try Files.makeDirectories(root.directory.path)
        try Files.writeAtomically(root.directory.pidPath, Array("31337\n".utf8))
        // flock(1) takes the lock and becomes `sleep` (no fork), which holds it until killed.
        // Started through the process's one Reaper: Foundation's Process would race its wait4(-1).
        let holder = try Reaper.shared.spawn(SpawnRequest(
            executable: "/usr/bin/flock", arguments: ["--exclusive", "--no-fork", root.directory.pidPath, "sleep", "30"],
            environment: ["PATH=/usr/bin:/bin"]))
        defer {
            kill(holder, SIGKILL)
            _ = Reaper.shared.wait(holder)
        }
        // Wait until flock has the lock, probing without touching the file.
        var held = false
        for _ in 0..<500 where !held {
            let probe = open(root.directory.pidPath, O_RDONLY | O_CLOEXEC)
            held = flock(probe, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK
            close(probe)
            if !held { usleep(10_000) }
        }
        #expect(held)
        let error = expectLavaError(.agentRunning) { _ = try AgentLock.acquire(root.directory) }
        #expect(error?.code == .agentRunning)
        #expect(error?.message.contains("(pid 31337)") == true, "\(error?.message ?? "")")
    }

    @Test func aStalePIDFileIsTakenOver() throws {
        let root = TemporaryRoot()
        try Files.makeDirectories(root.directory.path)
        try Files.writeAtomically(root.directory.pidPath, Array("99999999\nleft over by a crash\n".utf8))
        let lock = try AgentLock.acquire(root.directory)
        #expect(try Files.readText(root.directory.pidPath) == "\(getpid())\n")
        lock.release()
    }

    @Test func releaseRemovesThePIDFileAndTheSocket() throws {
        let root = TemporaryRoot()
        let lock = try AgentLock.acquire(root.directory)
        let server = try ControlServer(directory: root.directory) { _ in ControlResponse.ok() }
        #expect(Files.exists(root.directory.socketPath))
        lock.release()
        lock.release()  // twice is fine
        #expect(!Files.exists(root.directory.socketPath))
        #expect(!Files.exists(root.directory.pidPath))
        server.stop()
    }

    @Test func aDirectoryWritableByOthersIsNarrowed() throws {
        let root = TemporaryRoot()
        try Files.makeDirectories(root.directory.path)
        chmod(root.directory.path, 0o777)
        let lock = try AgentLock.acquire(root.directory)
        defer { lock.release() }
        var info = stat()
        #expect(stat(root.directory.path, &info) == 0)
        #expect(info.st_mode & 0o7777 == 0o755)
    }

    @Test func aSymlinkedPIDFileIsRefused() throws {
        let root = TemporaryRoot()
        try Files.makeDirectories(root.directory.path)
        let victim = root.path + "/victim"
        try Files.writeAtomically(victim, Array("keep me\n".utf8))
        #expect(symlink(victim, root.directory.pidPath) == 0)
        expectLavaError(.system) { _ = try AgentLock.acquire(root.directory) }
        #expect(try Files.readText(victim) == "keep me\n")
    }
}
