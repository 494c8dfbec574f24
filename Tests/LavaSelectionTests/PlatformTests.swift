#if canImport(Glibc)
import Glibc
#endif
import LavaSelection
import LavaSystem
import LavaTestSupport
import Testing

/// SPEC §3 and §14: the platform read off a host tree (`--root`), and the overrides `plan` takes.
@Suite struct PlatformTests {
    /// A host tree with optional os-release text.
    static func root(osRelease: String? = nil) -> TemporaryDirectory {
        let directory = TemporaryDirectory("platform")
        if let osRelease { directory.write("etc/os-release", osRelease) }
        return directory
    }

    static func link(_ directory: TemporaryDirectory, _ relative: String, to target: String) {
        let path = directory.sub(relative)
        try! Files.makeDirectories(Paths.parent(of: path))
        #expect(symlink(target, path) == 0, "symlink \(path)")
    }

    static func detect(_ directory: TemporaryDirectory, os: String? = nil, arch: String? = "x86_64",
                       python: String? = nil) throws -> (Platform, [String]) {
        try PlatformDetector(root: HostRoot(directory.path), os: os, arch: arch, python: python).detect()
    }

    static func detectedOS(_ osRelease: String) throws -> String {
        let directory = root(osRelease: osRelease)
        return try detect(directory, python: "3.11").0.os
    }

    static func unameFields() -> (system: String, release: String, machine: String) {
        var name = utsname()
        _ = uname(&name)
        func text<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        }
        return (text(name.sysname), text(name.release), text(name.machine))
    }

    // MARK: OS

    @Test func amazonLinux() throws {
        let text = """
        NAME="Amazon Linux"
        VERSION="2023"
        ID="amzn"
        ID_LIKE="fedora"
        VERSION_ID="2023"
        PLATFORM_ID="platform:al2023"
        PRETTY_NAME="Amazon Linux 2023.6.20241212"
        ANSI_COLOR="0;33"
        CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2023"
        HOME_URL="https://aws.amazon.com/linux/amazon-linux-2023/"
        """
        #expect(try PlatformTests.detectedOS(text + "\n") == "amzn2023")
    }

    @Test func ubuntuTakesTheMajorVersion() throws {
        let text = """
        PRETTY_NAME="Ubuntu 24.04.1 LTS"
        NAME="Ubuntu"
        VERSION_ID="24.04"
        VERSION="24.04.1 LTS (Noble Numbat)"
        VERSION_CODENAME=noble
        ID=ubuntu
        ID_LIKE=debian
        UBUNTU_CODENAME=noble
        """
        #expect(try PlatformTests.detectedOS(text) == "ubuntu24")
    }

    @Test(arguments: [
        ("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n", "rocky9"),
        ("ID='debian'\nVERSION_ID='12'\n", "debian12"),
        ("ID=amzn\nVERSION_ID=2\n", "amzn2"),
        ("# ID=wrong\n\n  ID=alpine  \nVERSION_ID=3.19.1\n", "alpine3"),
        ("VERSION_ID=\"8.10\"\nID=\"almalinux\"", "almalinux8"),
        ("ID=arch\nBUILD_ID=rolling\n", "arch"),
        ("ID=rhel\nVERSION_ID=\"10.0\"\nID=rhel\n", "rhel10"),
    ] as [(String, String)])
    func osReleaseVariants(_ text: String, _ expected: String) throws {
        #expect(try PlatformTests.detectedOS(text) == expected)
    }

    @Test func osReleaseThroughARelativeLinkInTheRoot() throws {
        let directory = PlatformTests.root()
        directory.write("usr/lib/os-release", "ID=fedora\nVERSION_ID=41\n")
        PlatformTests.link(directory, "etc/os-release", to: "../usr/lib/os-release")
        #expect(try PlatformTests.detect(directory, python: "3.13").0.os == "fedora41")
    }

    @Test func osReleaseWithoutIDIsAnError() {
        let directory = PlatformTests.root(osRelease: "NAME=\"Mystery\"\nVERSION_ID=\"1.0\"\nID=\n")
        let error = #expect(throws: LavaError.self) { try PlatformTests.detect(directory, python: "3.11") }
        #expect(error?.code == .platform)
        #expect(error?.message.contains(directory.sub("etc/os-release")) == true, "\(String(describing: error))")
        #expect(error?.message.contains("--os") == true, "\(String(describing: error))")
    }

    @Test func withoutOSReleaseUnameIsUsed() throws {
        let directory = PlatformTests.root()
        let name = PlatformTests.unameFields()
        let expected = name.system.lowercased() + String(name.release.prefix { $0 != "." })
        let os = try PlatformTests.detect(directory, python: "3.11").0.os
        #expect(os == expected)
        #expect(os.hasPrefix("linux"))
        #expect(os.dropFirst("linux".count).allSatisfy(\.isNumber) && os.count > "linux".count, "\(os)")
    }

    @Test func osOverrideWinsAndSkipsOSRelease() throws {
        let broken = PlatformTests.root(osRelease: "NAME=no-id\n")
        #expect(try PlatformTests.detect(broken, os: "rocky9", python: "3.11").0.os == "rocky9")
        let good = PlatformTests.root(osRelease: "ID=ubuntu\nVERSION_ID=24.04\n")
        #expect(try PlatformTests.detect(good, os: "amzn2023", python: "3.11").0.os == "amzn2023")
    }

    // MARK: Arch

    @Test(arguments: [("x86_64", "x64"), ("x64", "x86_64"), ("aarch64", "arm64"), ("arm64", "aarch64")])
    func archAndItsAlias(_ arch: String, _ alias: String) throws {
        let (platform, _) = try PlatformTests.detect(PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n"),
                                                     arch: arch, python: "3.11")
        #expect(platform.arch == arch)
        #expect(platform.archAlias == alias)
        #expect(platform.archSpellings == [arch, alias])
        #expect(platform.description == "amzn2023/py3.11/\(arch)")
    }

    @Test func archDefaultsToTheMachine() throws {
        let machine = PlatformTests.unameFields().machine
        let directory = PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n")
        let detector = PlatformDetector(root: HostRoot(directory.path), python: "3.11")
        if ["x86_64", "aarch64"].contains(machine) {
            #expect(try detector.detect().0.arch == machine)
        } else {
            #expect(throws: LavaError.self) { try detector.detect() }
        }
    }

    @Test(arguments: ["i686", "riscv64", "armv7l", "X86_64", "amd64", "", "x86-64", "ppc64le"])
    func unsupportedArchIsAnError(_ arch: String) {
        let directory = PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n")
        let error = #expect(throws: LavaError.self) { try PlatformTests.detect(directory, arch: arch, python: "3.11") }
        #expect(error?.code == .platform)
        #expect(error?.message.contains("\"\(arch)\"") == true, "\(String(describing: error))")
        let direct = #expect(throws: LavaError.self) { try Platform(os: "amzn2023", arch: arch, python: "3.11") }
        #expect(direct?.code == .platform)
    }

    // MARK: Python

    @Test func pythonFromTheLinkName() throws {
        let directory = PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n")
        PlatformTests.link(directory, "usr/bin/python3", to: "python3.12")
        let (platform, warnings) = try PlatformTests.detect(directory)
        #expect(platform.python == "3.12")
        #expect(warnings.isEmpty)
    }

    @Test func pythonFromAnAbsoluteLinkIsReadInsideTheRoot() throws {
        let directory = PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n")
        PlatformTests.link(directory, "usr/bin/python3", to: "/usr/bin/python3-current")
        PlatformTests.link(directory, "usr/bin/python3-current", to: "/opt/python/bin/python3.10")
        #expect(try PlatformTests.detect(directory).0.python == "3.10")
    }

    @Test func pythonFromAChainOfRelativeLinks() throws {
        let directory = PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n")
        PlatformTests.link(directory, "usr/bin/python3", to: "alternatives/python")
        PlatformTests.link(directory, "usr/bin/alternatives/python", to: "../python3.9")
        #expect(try PlatformTests.detect(directory).0.python == "3.9")
    }

    @Test func pythonByRunningItWhenTheNameSaysNothing() throws {
        let directory = PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n")
        directory.write("usr/local/bin/python3", "#!/bin/sh\necho \"Python 3.9.18\"\n", mode: 0o755)
        PlatformTests.link(directory, "usr/bin/python3", to: "python3.12")
        let (platform, warnings) = try PlatformTests.detect(directory)
        #expect(platform.python == "3.9")
        #expect(warnings.isEmpty)
    }

    @Test func pythonVersionPrintedOnStandardError() throws {
        let directory = PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n")
        directory.write("usr/bin/python3", "#!/bin/sh\necho \"Python 3.8.10\" >&2\n", mode: 0o755)
        #expect(try PlatformTests.detect(directory).0.python == "3.8")
    }

    @Test func pythonIsRunWithVersionFlag() throws {
        let directory = PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n")
        directory.write("usr/bin/python3", "#!/bin/sh\n[ \"$1\" = --version ] || exit 2\necho \"Python 3.13.1\"\n", mode: 0o755)
        #expect(try PlatformTests.detect(directory).0.python == "3.13")
    }

    @Test func usrLocalBinWinsOverUsrBin() throws {
        let directory = PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n")
        PlatformTests.link(directory, "usr/local/bin/python3", to: "python3.13")
        directory.write("usr/bin/python3", "#!/bin/sh\necho \"Python 3.9.18\"\n", mode: 0o755)
        #expect(try PlatformTests.detect(directory).0.python == "3.13")
    }

    @Test func aPython3ThatCannotRunIsPassedOver() throws {
        let directory = PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n")
        directory.write("usr/local/bin/python3", "not a program\n", mode: 0o644)
        PlatformTests.link(directory, "usr/bin/python3", to: "python3.11")
        #expect(try PlatformTests.detect(directory).0.python == "3.11")
    }

    @Test func noPythonWarnsAndOnlyOldStyleNamesCanMatch() throws {
        let directory = PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n")
        try Files.makeDirectories(directory.sub("usr/bin"))
        directory.write("usr/bin/python2", "#!/bin/sh\necho Python 2.7.18\n", mode: 0o755)
        let (platform, warnings) = try PlatformTests.detect(directory)
        #expect(platform.python == nil)
        #expect(platform.description == "amzn2023/py?/x86_64")
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("python3") == true, "\(warnings)")
        #expect(warnings.first?.contains("old-style") == true, "\(warnings)")
    }

    @Test(arguments: [
        "#!/bin/sh\necho 'not python'\n",
        "#!/bin/sh\necho 'Python 3.11.2'\nexit 1\n",
        "#!/bin/sh\necho 'Python three'\n",
        "#!/bin/sh\nexit 0\n",
    ])
    func aPython3ThatDoesNotSayItsVersionCountsAsNone(_ script: String) throws {
        let directory = PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n")
        directory.write("usr/bin/python3", script, mode: 0o755)
        let (platform, warnings) = try PlatformTests.detect(directory)
        #expect(platform.python == nil)
        #expect(warnings.count == 1)
    }

    @Test func aLinkLoopIsNoPythonNotAHang() throws {
        let directory = PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n")
        PlatformTests.link(directory, "usr/bin/python3", to: "python3-a")
        PlatformTests.link(directory, "usr/bin/python3-a", to: "python3")
        let (platform, warnings) = try PlatformTests.detect(directory)
        #expect(platform.python == nil)
        #expect(warnings.count == 1)
    }

    @Test func pythonOverrideSkipsDetection() throws {
        let directory = PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n")
        PlatformTests.link(directory, "usr/bin/python3", to: "python3.12")
        let (platform, warnings) = try PlatformTests.detect(directory, python: "3.11")
        #expect(platform.python == "3.11")
        #expect(warnings.isEmpty)
        let bare = PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n")
        let (overridden, none) = try PlatformTests.detect(bare, python: "3.9")
        #expect(overridden.python == "3.9")
        #expect(none.isEmpty)
    }

    @Test(arguments: ["3", "3.11.2", "three", "", "3.x", " 3.11", "3.11 ", "py3.11", "3.", ".11", "-3.11"])
    func pythonOverrideMustBeMajorMinor(_ given: String) {
        let directory = PlatformTests.root(osRelease: "ID=amzn\nVERSION_ID=2023\n")
        let error = #expect(throws: LavaError.self) { try PlatformTests.detect(directory, python: given) }
        #expect(error?.code == .platform)
        #expect(error?.message.contains("--python \(given)") == true, "\(String(describing: error))")
    }

    @Test func allOverridesTogetherNeedNoHostFiles() throws {
        let directory = PlatformTests.root()
        let (platform, warnings) = try PlatformTests.detect(directory, os: "ubuntu24", arch: "arm64", python: "3.12")
        #expect(try platform == Platform(os: "ubuntu24", arch: "arm64", python: "3.12"))
        #expect(platform.archAlias == "aarch64")
        #expect(warnings.isEmpty)
    }
}
