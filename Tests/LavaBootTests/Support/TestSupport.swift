import CArchive
import Foundation
import LavaSystem
import Testing

/// A private directory removed at the end of the test.
final class TemporaryDirectory {
    let path: String

    init(_ label: String = "test") {
        var template = Array("/tmp/lava-boot-\(label).XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = String(cString: created!)
    }

    deinit { try? Files.removeTree(path) }

    func sub(_ relative: String) -> String { Paths.join(path, relative) }

    @discardableResult
    func write(_ relative: String, _ text: String, mode: mode_t = 0o644) -> String {
        let full = sub(relative)
        try! Files.makeDirectories(Paths.parent(of: full))
        try! Files.writeAtomically(full, Array(text.utf8), mode: mode)
        chmod(full, mode)
        return full
    }
}

/// One entry of a test bundle, written with libarchive so hostile entries are possible too.
enum BundleEntry {
    case file(String, String, mode: mode_t = 0o644, mtime: Int = 1_600_000_000)
    case directory(String, mode: mode_t = 0o755, mtime: Int = 1_600_000_000)
    case symlink(String, target: String)
    case hardlink(String, target: String)
    case fifo(String)
    case characterDevice(String)
    /// `head` followed by `zeros` zero bytes, written in chunks (never held whole).
    case padded(String, head: String, zeros: Int, mode: mode_t = 0o755)
}

enum TestBundle {
    /// Writes a real `.tar.bz2` (pax format) holding `entries`.
    static func write(_ path: String, _ entries: [BundleEntry]) {
        try! Files.makeDirectories(Paths.parent(of: path))
        let archive = archive_write_new()!
        archive_write_add_filter_bzip2(archive)
        archive_write_set_format_pax_restricted(archive)
        precondition(archive_write_open_filename(archive, path) == ARCHIVE_OK)
        for item in entries {
            let entry = archive_entry_new()!
            var data: [UInt8] = []
            var zeros = 0
            switch item {
            case .file(let name, let text, let mode, let mtime):
                data = Array(text.utf8)
                archive_entry_set_pathname(entry, name)
                archive_entry_set_filetype(entry, 0o100000)
                archive_entry_set_perm(entry, mode)
                archive_entry_set_size(entry, la_int64_t(data.count))
                archive_entry_set_mtime(entry, time_t(mtime), 0)
            case .directory(let name, let mode, let mtime):
                archive_entry_set_pathname(entry, name)
                archive_entry_set_filetype(entry, 0o040000)
                archive_entry_set_perm(entry, mode)
                archive_entry_set_mtime(entry, time_t(mtime), 0)
            case .symlink(let name, let target):
                archive_entry_set_pathname(entry, name)
                archive_entry_set_filetype(entry, 0o120000)
                archive_entry_set_perm(entry, 0o777)
                archive_entry_set_symlink(entry, target)
            case .hardlink(let name, let target):
                archive_entry_set_pathname(entry, name)
                archive_entry_set_filetype(entry, 0o100000)
                archive_entry_set_perm(entry, 0o644)
                archive_entry_set_hardlink(entry, target)
            case .fifo(let name):
                archive_entry_set_pathname(entry, name)
                archive_entry_set_filetype(entry, 0o010000)
                archive_entry_set_perm(entry, 0o644)
            case .characterDevice(let name):
                archive_entry_set_pathname(entry, name)
                archive_entry_set_filetype(entry, 0o020000)
                archive_entry_set_perm(entry, 0o644)
                archive_entry_set_rdev(entry, 0x103)
            case .padded(let name, let head, let count, let mode):
                data = Array(head.utf8)
                zeros = count
                archive_entry_set_pathname(entry, name)
                archive_entry_set_filetype(entry, 0o100000)
                archive_entry_set_perm(entry, mode)
                archive_entry_set_size(entry, la_int64_t(data.count + count))
            }
            archive_entry_set_uid(entry, 4242)
            archive_entry_set_gid(entry, 4242)
            precondition(archive_write_header(archive, entry) == ARCHIVE_OK, "write header: \(String(cString: archive_error_string(archive)))")
            if !data.isEmpty {
                _ = data.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) }
            }
            let chunk = [UInt8](repeating: 0, count: 1 << 20)
            while zeros > 0 {
                let n = min(zeros, chunk.count)
                _ = chunk.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, n) }
                zeros -= n
            }
            archive_entry_free(entry)
        }
        archive_write_close(archive)
        archive_write_free(archive)
    }

    /// A good lava bundle: a shell `lava-worker`, a python `lava-admin`, `lava-run`, a library.
    static func lava(version: String) -> [BundleEntry] {
        [
            .directory("./", mode: 0o755),
            .directory("bin", mode: 0o700, mtime: 1_500_000_000),
            .file("bin/lava-worker", "#!/bin/sh\necho lava-worker \(version) \"$@\"\n", mode: 0o755, mtime: 1_500_000_001),
            .file("bin/lava-admin", "#!/usr/bin/env python3\nprint('lava-admin \(version)')\n", mode: 0o700),
            .file("bin/README", "not executable\n", mode: 0o600),
            .file("lava-run", "#!/bin/sh\nexec python3 \"$(dirname \"$(readlink -f \"$0\")\")/bin/$(basename \"$0\")\" \"$@\"\n", mode: 0o755),
            .directory("lib/lava", mode: 0o750),
            .file("lib/lava/version.py", "VERSION = '\(version)'\n", mode: 0o4640, mtime: 1_234_567_890),
            .symlink("lib/lava/current.py", target: "version.py"),
            .hardlink("lib/lava/same.py", target: "lib/lava/version.py"),
        ]
    }
}

/// The output of one run of the built binary.
struct CommandResult {
    var status: LavaSystem.ExitStatus
    var stdout: String
    var stderr: String
    var exitCode: Int32 {
        if case .exited(let code) = status { return code }
        return -1
    }
}

enum LavaBootBinary {
    static var path: String {
        if let path = ProcessInfo.processInfo.environment["LAVA_BOOT_BIN"] { return path }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
        return packageRoot + "/.build/debug/lava-boot"
    }

    /// Runs lava-boot with exactly `environment` (plus PATH), stdout and stderr kept apart.
    static func run(_ arguments: [String], environment: [String: String] = [:]) -> CommandResult {
        Command.run(path, arguments, environment: environment)
    }
}

enum Command {
    /// Runs `executable` with exactly `environment` (plus PATH), stdout and stderr kept apart.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) -> CommandResult {
        let scratch = TemporaryDirectory("run")
        let outPath = scratch.sub("stdout"), errPath = scratch.sub("stderr")
        let out = open(outPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        let err = open(errPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        var env = ["PATH=/usr/local/bin:/usr/bin:/bin"]
        for (key, value) in environment { env.append("\(key)=\(value)") }
        var request = SpawnRequest(executable: executable, arguments: arguments, environment: env)
        request.standardOutput = out
        request.standardError = err
        let pid = try! Reaper.shared.spawn(request)
        close(out)
        close(err)
        let status = Reaper.shared.wait(pid)
        return CommandResult(status: status,
                             stdout: (try? Files.readText(outPath)).flatMap { $0 } ?? "",
                             stderr: (try? Files.readText(errPath)).flatMap { $0 } ?? "")
    }
}

/// Peak memory of one command, measured in a python3 parent of its own: this test process's
/// own high-water mark is shared by every suite running beside it.
enum PeakMemory {
    static func run(_ executable: String, _ arguments: [String]) -> (exitCode: Int32, peakKiB: Int) {
        let code = """
            import resource, subprocess, sys
            status = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
            print(status, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
            """
        let python = (try? PeerScripts.python3()) ?? "/usr/bin/python3"
        let result = Command.run(python, ["-c", code, executable] + arguments)
        let fields = result.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count == 2, let status = Int32(fields[0]), let peak = Int(fields[1]) else {
            Issue.record("cannot measure \(executable): \(result.stdout) \(result.stderr)")
            return (-1, Int.max)
        }
        return (status, peak)
    }
}

/// A code area on local disk with its realms file.
final class LocalFixture {
    let directory = TemporaryDirectory("area")
    var area: String { directory.sub("code") }
    var source: String { "file://" + area }
    var realmsFile: String { directory.sub("realms.json") }
    var root: String { directory.sub("root") }

    init(os: String = "amzn2023", python: String? = "3.11") {
        try! Files.makeDirectories(area)
        try! Files.makeDirectories(root + "/etc")
        let versionID = os.drop { !$0.isNumber }
        let id = os.prefix { !$0.isNumber }
        directory.write("root/etc/os-release", "NAME=\"Test\"\nID=\(id)\nVERSION_ID=\"\(versionID)\"\n")
        if let python {
            try! Files.makeDirectories(root + "/usr/bin")
            symlink("python\(python)", root + "/usr/bin/python3")
        }
    }

    func bundle(_ name: String, os: String = "amzn2023", _ entries: [BundleEntry]) {
        TestBundle.write(Paths.join(area, "_dist_/pkg/\(os)/\(name)"), entries)
    }

    func realms(_ json: String) { directory.write("realms.json", json) }

    var machineArch: String {
        var name = utsname()
        uname(&name)
        return withUnsafeBytes(of: name.machine) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    }
}

/// A TCP listener on 127.0.0.1 that never accepts: it only tells whether anyone connected.
final class LoopbackListener {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw LavaError.errno("bind", "127.0.0.1") }
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit { close(fd) }

    /// Connections made so far (each accepted and closed here).
    func pendingConnections() -> Int {
        var count = 0
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 { return count }
            close(client)
            count += 1
        }
    }
}
