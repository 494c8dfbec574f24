import LavaSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A worker's account, resolved to what the child side of fork needs.
public struct WorkerAccount: Sendable, Equatable {
    public var name: String
    public var home: String
    public var identity: SpawnRequest.Identity
}

/// Worker accounts (SPEC §7): group `lava`; per worker a locked system account `lava-W`
/// (`useradd --system --create-home --shell /bin/false`) in group `lava`, and in `docker`
/// when that group exists. Idempotent: existing accounts are kept and their groups topped up.
public struct Accounts: Sendable {
    public static let groupName = "lava"
    let logger: Logger
    let environment: [String]

    public init(logger: Logger) {
        self.logger = logger
        environment = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    }

    public static func accountName(worker: String) -> String { "lava-\(worker)" }

    /// Creates what is missing and returns the account.
    public func ensure(worker: String) throws(LavaError) -> WorkerAccount {
        if Accounts.group(Accounts.groupName) == nil {
            try run("/usr/sbin/groupadd", ["--system", Accounts.groupName])
            logger.info("created group \(Accounts.groupName)")
        }
        let name = Accounts.accountName(worker: worker)
        var groups = [Accounts.groupName]
        if Accounts.group("docker") != nil { groups.append("docker") }
        if Accounts.user(name) == nil {
            try run("/usr/sbin/useradd", ["--system", "--create-home", "--shell", "/bin/false",
                                          "--gid", Accounts.groupName, "--groups", groups.joined(separator: ","), name])
            logger.info("created account \(name)")
        } else {
            // Kept from an earlier boot: make sure it is still in its groups (docker may be new).
            try run("/usr/sbin/usermod", ["--append", "--groups", groups.joined(separator: ","), name])
        }
        guard let account = Accounts.user(name) else {
            throw LavaError(.system, "account \(name) does not exist after useradd")
        }
        if !Files.isDirectory(account.home) {
            try Files.makeDirectories(account.home, mode: 0o750)
            chown(account.home, account.identity.uid, account.identity.gid)
        }
        return account
    }

    private func run(_ tool: String, _ arguments: [String]) throws(LavaError) {
        var output = [String]()
        let result = try Subprocess.run(SpawnRequest(executable: tool, arguments: arguments, environment: environment),
                                        timeout: .init(seconds: 60)) { output.append($0) }
        guard result.status.isSuccess else {
            throw LavaError(.system, "\(Paths.lastComponent(of: tool)) \(arguments.joined(separator: " ")) failed (\(result.status)): \(output.joined(separator: "; "))")
        }
    }

    public static func group(_ name: String) -> gid_t? {
        guard let entry = getgrnam(name) else { return nil }
        return entry.pointee.gr_gid
    }

    /// The account with its supplementary groups, as initgroups would set them.
    public static func user(_ name: String) -> WorkerAccount? {
        guard let entry = getpwnam(name) else { return nil }
        let uid = entry.pointee.pw_uid
        let gid = entry.pointee.pw_gid
        let home = String(cString: entry.pointee.pw_dir)
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            _ = getgrouplist(name, gid, &groups, &count)
        }
        return WorkerAccount(name: name, home: home,
                             identity: SpawnRequest.Identity(uid: uid, gid: gid, groups: Array(groups.prefix(Int(count)))))
    }

    /// The invoking user, for `--user-mode`.
    public static func currentUser() -> (name: String, home: String) {
        guard let entry = getpwuid(getuid()) else { return ("\(getuid())", "/") }
        return (String(cString: entry.pointee.pw_name), String(cString: entry.pointee.pw_dir))
    }
}

/// `/tmp/lava` recreated empty, with `/tmp/lava/<REALM>` group `lava`, mode 1770. `/tmp` is
/// writable by every local user, so nothing here goes by path: whatever stands at `/tmp/lava`
/// is removed, not followed, and the new directory is checked to be ours before it is used.
public enum DispatchDirectory {
    static let name = "lava"

    public static func prepare(root: HostRoot, realm: String, group: gid_t?) throws(LavaError) {
        let tmp = try root.openDirectory("/tmp", create: true)
        let base = try freshDirectory(in: tmp)
        if fchmod(base.descriptor, 0o755) != 0 { throw .errno("chmod", base.displayPath) }
        try base.makeDirectory(realm, mode: 0o700)
        let realmDirectory = try base.openDirectory(realm)
        if let group, fchown(realmDirectory.descriptor, geteuid(), group) != 0 { throw .errno("chown", realmDirectory.displayPath) }
        if fchmod(realmDirectory.descriptor, 0o1770) != 0 { throw .errno("chmod", realmDirectory.displayPath) }
    }

    /// Removes what stands at `/tmp/lava` and makes a new directory there; another user may
    /// race to plant something in between, so the result is checked, and the race retried.
    private static func freshDirectory(in tmp: borrowing Directory) throws(LavaError) -> Directory {
        for _ in 0..<10 {
            try tmp.remove(name)
            if mkdirat(tmp.descriptor, name, 0o700) != 0 {
                if errno == EEXIST { continue }
                throw .errno("mkdir", Paths.join(tmp.displayPath, name))
            }
            guard let directory = try? tmp.openDirectory(name), let info = directory.status(), info.st_uid == geteuid() else { continue }
            return directory
        }
        throw LavaError(.system, "cannot create \(Paths.join(tmp.displayPath, name)): something keeps taking its place")
    }

    /// Tells workers to take no new jobs.
    public static func markNoDispatch(root: HostRoot) {
        guard let base = try? root.openDirectory("/tmp/lava") else { return }
        let fd = openat(base.descriptor, "__nodispatch__", O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
        if fd >= 0 { close(fd) }
    }
}
