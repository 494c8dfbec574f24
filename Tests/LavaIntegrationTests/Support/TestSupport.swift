import CArchive
import Foundation
import LavaSystem
import LavaTestSupport
import Testing

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

    /// A bundle for the install.sh installer: its `install.sh -c -d BASE BUNDLE` appends `label`
    /// to `BASE/install-runs` on every run, then fails while `BASE/fail` exists, else puts an
    /// executable `BASE/bin/lava-worker` in place.
    static func recordingInstallScript(_ label: String, extra: [BundleEntry] = []) -> [BundleEntry] {
        let script = """
        #!/bin/sh
        echo \(label) >> "$3/install-runs"
        if [ -e "$3/fail" ]; then echo "install.sh of \(label) failing" >&2; exit 3; fi
        mkdir -p "$3/bin" && printf '#!/bin/sh\\necho \(label)\\n' > "$3/bin/lava-worker" && chmod 755 "$3/bin/lava-worker"
        """
        return [.file("install.sh", script, mode: 0o755)] + extra
    }
}

enum LavaBootBinary {
    static var path: String { PackageExecutable.path("lava-boot") }

    /// Runs lava-boot with exactly `environment` (plus PATH), stdout and stderr kept apart.
    static func run(_ arguments: [String], environment: [String: String] = [:]) -> CommandResult {
        Command.run(path, arguments, environment: environment)
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

