import LavaSystem
#if canImport(Glibc)
import Glibc
#endif

/// What a bundle must be built for: OS, architecture (with its Oracle-style alias) and Python.
public struct Platform: Sendable, Equatable, CustomStringConvertible {
    public var os: String
    /// The machine's own spelling (`x86_64`, or `x64` when given so); package names try it first.
    public var arch: String
    /// The other spelling of the same architecture (`x64` for `x86_64`, `arm64` for `aarch64`).
    public var archAlias: String
    /// `major.minor`, or nil when no python3 was found (then only old-style names can match).
    public var python: String?

    public init(os: String, arch: String, python: String?) throws(LavaError) {
        guard let alias = Platform.alias(of: arch) else {
            throw LavaError(.platform, "unsupported architecture \"\(arch)\": lava runs on x86_64 (x64) and aarch64 (arm64)")
        }
        self.os = os
        self.arch = arch
        self.archAlias = alias
        self.python = python
    }

    static func alias(of arch: String) -> String? {
        switch arch {
        case "x86_64": return "x64"
        case "x64": return "x86_64"
        case "aarch64": return "arm64"
        case "arm64": return "aarch64"
        default: return nil
        }
    }

    /// Both spellings, own first.
    public var archSpellings: [String] { [arch, archAlias] }

    /// Oracle's spelling (`x64`, `arm64`), as Instant Client zips are named.
    public var oracleArch: String { arch == "x86_64" || arch == "aarch64" ? archAlias : arch }

    /// `amzn2023/py3.11/x86_64`, as error messages name a platform.
    public var description: String { "\(os)/py\(python ?? "?")/\(arch)" }
}

/// Reads the platform off the host (under `--root`), with overrides for `plan` from a laptop.
public struct PlatformDetector: Sendable {
    public var root: HostRoot
    public var osOverride: String?
    public var archOverride: String?
    public var pythonOverride: String?

    public init(root: HostRoot, os: String? = nil, arch: String? = nil, python: String? = nil) {
        self.root = root
        self.osOverride = os
        self.archOverride = arch
        self.pythonOverride = python
    }

    /// This machine's architecture (`uname -m`), checked.
    public static func machine() throws(LavaError) -> Platform {
        try Platform(os: "", arch: uname().machine, python: nil)
    }

    /// The platform, plus warnings for the caller to log (no python3 found).
    public func detect() throws(LavaError) -> (Platform, [String]) {
        var warnings = [String]()
        let os: String
        if let osOverride { os = osOverride } else { os = try detectOS() }
        let arch = archOverride ?? PlatformDetector.uname().machine
        var python = pythonOverride
        if let given = python, !PackageName.isPythonVersion(given) {
            throw LavaError(.platform, "--python \(given): expected major.minor such as 3.11")
        }
        if python == nil {
            python = try detectPython()
            if python == nil {
                warnings.append("no python3 in \(root.path("/usr/local/bin")) or \(root.path("/usr/bin")): only old-style package names can match")
            }
        }
        return (try Platform(os: os, arch: arch, python: python), warnings)
    }

    /// `ID` + major `VERSION_ID` from os-release; else lower-cased `uname -s` + major `uname -r`.
    func detectOS() throws(LavaError) -> String {
        let path = root.path("/etc/os-release")
        if let text = try Files.readText(path) {
            let fields = PlatformDetector.parseOSRelease(text)
            guard let id = fields["ID"], !id.isEmpty else {
                throw LavaError(.platform, "\(path) has no ID; pass --os")
            }
            let major = fields["VERSION_ID"].map { String($0.prefix { $0 != "." }) } ?? ""
            return id + major
        }
        let name = PlatformDetector.uname()
        return name.system.lowercased() + String(name.release.prefix { $0 != "." })
    }

    static func parseOSRelease(_ text: String) -> [String: String] {
        var fields = [String: String]()
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            guard !trimmed.hasPrefix("#"), let equals = trimmed.firstIndex(of: "=") else { continue }
            let key = String(trimmed[..<equals])
            var value = String(trimmed[trimmed.index(after: equals)...])
            while value.hasSuffix(" ") || value.hasSuffix("\r") { value.removeLast() }
            if value.count >= 2, let quote = value.first, quote == "\"" || quote == "'", value.last == quote {
                value = String(value.dropFirst().dropLast())
            }
            fields[key] = value
        }
        return fields
    }

    /// `major.minor` of the first python3 on `/usr/local/bin:/usr/bin` under the root: from the
    /// name its links lead to (`python3 -> python3.11`), else by running it with `--version`.
    func detectPython() throws(LavaError) -> String? {
        for directory in ["/usr/local/bin", "/usr/bin"] {
            let imagePath = "\(directory)/python3"
            guard Files.exists(root.path(imagePath)) else { continue }
            if let version = versionFromLinks(imagePath) { return version }
            if let version = try versionByRunning(root.path(imagePath)) { return version }
        }
        return nil
    }

    private func versionFromLinks(_ imagePath: String) -> String? {
        var current = imagePath
        for _ in 0..<16 {
            if let version = PlatformDetector.pythonVersion(inName: Paths.lastComponent(of: current)) { return version }
            guard let target = Files.readLink(root.path(current)) else { return nil }
            current = target.hasPrefix("/") ? target : Paths.join(Paths.parent(of: current), target)
        }
        return nil
    }

    /// `python3.11` → `3.11`.
    static func pythonVersion(inName name: String) -> String? {
        guard name.hasPrefix("python") else { return nil }
        let version = String(name.dropFirst("python".count))
        return PackageName.isPythonVersion(version) ? version : nil
    }

    private func versionByRunning(_ path: String) throws(LavaError) -> String? {
        guard access(path, X_OK) == 0 else { return nil }
        var output = [String]()
        let request = SpawnRequest(executable: path, arguments: ["--version"], environment: ["PATH=/usr/bin:/bin"])
        let result: Subprocess.Result
        do {
            result = try Subprocess.run(request, timeout: .init(seconds: 10, killAfter: 2)) { output.append($0) }
        } catch {
            return nil
        }
        guard result.status.isSuccess else { return nil }
        // "Python 3.11.7"
        for line in output {
            let words = line.split(separator: " ")
            guard words.count >= 2, words[0] == "Python" else { continue }
            let parts = words[1].split(separator: ".")
            if parts.count >= 2 {
                let version = "\(parts[0]).\(parts[1])"
                if PackageName.isPythonVersion(version) { return version }
            }
        }
        return nil
    }

    struct UnameFields {
        var system: String
        var release: String
        var machine: String
    }

    static func uname() -> UnameFields {
        var name = utsname()
        Glibc.uname(&name)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { raw in String(cString: raw.bindMemory(to: CChar.self).baseAddress!) }
        }
        return UnameFields(system: field(name.sysname), release: field(name.release), machine: field(name.machine))
    }
}
