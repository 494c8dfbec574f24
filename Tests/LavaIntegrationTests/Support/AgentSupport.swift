import Foundation
import LavaSystem
import LavaTestSupport
import Synchronization
import Testing

/// A `lava-boot boot` running in the background, in its own process group so a failed test
/// can still take it and its workers down.
final class RunningAgent: Sendable {
    let pid: pid_t
    let directory: String
    private let exit = ExitBox()

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        var template = Array("/tmp/lava-boot-agent.XXXXXX".utf8CString)
        directory = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }!)
        let out = open(directory + "/stdout", O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        let err = open(directory + "/stderr", O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        var env = ["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"]
        for (key, value) in environment { env.append("\(key)=\(value)") }
        var request = SpawnRequest(executable: LavaBootBinary.path, arguments: arguments, environment: env)
        request.standardOutput = out
        request.standardError = err
        request.newProcessGroup = true
        let box = exit
        pid = try Reaper.shared.spawn(request) { status in box.set(status) }
        close(out)
        close(err)
    }

    deinit {
        if status == nil {
            kill(pid, SIGTERM)
            if !waitUntil(timeout: 15, { self.status != nil }) {
                // Its daemons lead process groups of their own: a failed test takes them down too.
                for child in RunningAgent.children(of: pid) { kill(-child, SIGKILL) }
                kill(-pid, SIGKILL)
            }
        }
        _ = waitUntil(timeout: 5) { self.status != nil }
        try? Files.removeTree(directory)
    }

    var status: LavaSystem.ExitStatus? { exit.value }
    var log: String { ((try? Files.readText(directory + "/stderr")) ?? nil) ?? "" }
    var output: String { ((try? Files.readText(directory + "/stdout")) ?? nil) ?? "" }

    func signal(_ number: Int32) { kill(pid, number) }

    /// Sends SIGTERM and waits for the agent to exit.
    func stop(timeout: Double = 30) -> LavaSystem.ExitStatus? {
        signal(SIGTERM)
        _ = waitUntil(timeout: timeout) { self.status != nil }
        return status
    }

    /// Processes whose parent is `parent` right now.
    static func children(of parent: pid_t) -> [pid_t] {
        ((try? Files.list("/proc")) ?? nil ?? []).compactMap { Int32($0) }.filter { child in
            guard let stat = (try? Files.readText("/proc/\(child)/stat")) ?? nil,
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == parent
        }
    }

    /// Zombie children of the agent right now.
    func zombies() -> [pid_t] {
        RunningAgent.children(of: pid).filter { child in
            let stat = ((try? Files.readText("/proc/\(child)/stat")) ?? nil) ?? ""
            return stat.lastIndex(of: ")").map { stat[stat.index($0, offsetBy: 2)...].hasPrefix("Z") } ?? false
        }
    }
}

/// What the fake lava-worker (scripts/fake-lava-worker.sh) recorded about one start.
struct WorkerRecord {
    let directory: String
    var pid: pid_t { Int32(Paths.lastComponent(of: directory).split(separator: "-").last ?? "") ?? 0 }
    var user: String { String(Paths.lastComponent(of: directory).split(separator: "-").dropLast().joined(separator: "-")) }
    func text(_ name: String) -> String { ((try? Files.readText(directory + "/" + name)) ?? nil) ?? "" }
    var argv: [String] { text("argv").split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) }
    var environment: [String] { text("environ").split(separator: "\0").map(String.init).sorted() }
    var ids: [String] { text("ids").split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) } }
    var signals: [String] { text("signals").split(separator: "\n").map(String.init) }
    var executable: String { text("exe").trimmingCharacters(in: .whitespacesAndNewlines) }

    static func all(in directory: String) -> [WorkerRecord] {
        (((try? Files.list(directory)) ?? nil) ?? []).sorted().map { WorkerRecord(directory: directory + "/" + $0) }
            .filter { Files.exists($0.directory + "/ids") }
    }
}

extension LocalFixture {
    /// A worker bundle holding the fake lava-worker.
    func workerBundle(_ version: String, extra: [BundleEntry] = []) {
        let fake = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts/fake-lava-worker.sh").path
        let script = ((try? Files.readText(fake)) ?? nil) ?? ""
        bundle("lava-\(version)-amzn2023-py3.11-\(machineArch).tar.bz2",
               [.directory("bin"), .file("bin/lava-worker", script, mode: 0o755),
                .file("lib/version.txt", version + "\n")] + extra)
    }

    /// A directory every account may write records into.
    func recordDirectory() -> String {
        let path = directory.sub("records")
        try? Files.makeDirectories(path)
        chmod(path, 0o1777)
        chmod(directory.path, 0o755)
        return path
    }

    func scriptlet(_ name: String, _ body: String) {
        directory.write("code/_boot_/\(name)", "#!/bin/sh\n" + body, mode: 0o755)
    }
}
