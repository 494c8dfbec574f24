import Foundation
import LavaSystem
import LavaTestSupport
import Testing

/// `install` from a local code area: layout, links, modes, reuse, and hostile bundles.
@Suite struct InstallTests {
    let fixture = LocalFixture()
    var arch: String { fixture.machineArch }
    var releases: String { fixture.root + "/opt/lava/releases" }

    func name(_ version: String) -> String { "lava-\(version)-amzn2023-py3.11-\(arch)" }

    func pin(_ version: String?) {
        let pin = version.map { #", "version": "\#($0)""# } ?? ""
        fixture.realms(#"{"realm": "prod", "x-workers": {"core": {"daemons": 1\#(pin)}}}"#)
    }

    func install(_ extra: [String] = []) -> CommandResult {
        LavaBootBinary.run(["install", fixture.source, "prod", "core", "--realms-file", fixture.realmsFile, "--root", fixture.root] + extra)
    }

    func status(_ path: String) -> stat? {
        var info = stat()
        return lstat(path, &info) == 0 ? info : nil
    }

    func mode(_ path: String) -> mode_t? { status(path).map { $0.st_mode & 0o7777 } }

    /// A bundle of many bzip2 blocks, made by tar and lbzip2, installs to the same tree (names,
    /// bytes, symlinks, mtimes) as `tar -xjf` extracts: the block decoder and the parallel pipeline
    /// change no byte.
    @Test func aManyBlockBundleInstallsTheSameTreeAsTar() throws {
        let tree = fixture.directory.sub("tree")
        var random = SystemRandomNumberGenerator()
        for index in 0..<400 {
            let text: String
            switch index % 4 {
            case 0: text = String((0..<Int.random(in: 100...20_000, using: &random)).map { _ in "abcdefgh \n".randomElement(using: &random)! })
            case 1: text = String(repeating: "import lava.core as lava  # \(index)\n", count: 2_000)
            case 2: text = String(repeating: "x", count: 250_000 + index)
            default: text = "mod \(index)\n"
            }
            _ = fixture.directory.write("tree/lib/pkg\(index % 17)/mod\(index).py", text)
        }
        _ = fixture.directory.write("tree/bin/lava-worker", "#!/bin/sh\necho lava-worker\n", mode: 0o755)
        symlink("pkg0/mod0.py", tree + "/lib/first.py")
        let bundle = fixture.area + "/_dist_/pkg/amzn2023/\(name("8.2.0")).tar.bz2"
        try Files.makeDirectories(Paths.parent(of: bundle))
        let made = Command.run("/bin/sh", ["-c", "tar -C \"$1\" -cf - . | lbzip2 -9 -n 2 > \"$2\"", "sh", tree, bundle])
        try #require(made.exitCode == 0, "\(made.stderr)")
        let reference = fixture.directory.sub("reference")
        try Files.makeDirectories(reference)
        try #require(Command.run("/bin/tar", ["-C", reference, "-xjf", bundle]).exitCode == 0)
        pin(nil)
        let result = install()
        try #require(result.exitCode == 0, "\(result.stderr)")

        let release = "\(releases)/\(name("8.2.0"))"
        func describe(_ root: String) -> [String] {
            let found = Command.run("/bin/sh", ["-c", "cd \"$1\" && find . -path ./.boot -prune -o -printf '%y %p %T@ %l %s\\n' | sort", "sh", root])
            return found.stdout.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("d . ") }
        }
        let installed = describe(release), expected = describe(reference)
        #expect(installed.count > 400)
        #expect(installed == expected, "trees differ: \(Set(installed).symmetricDifference(expected).sorted().prefix(10))")
        let compare = Command.run("/usr/bin/diff", ["-r", "--no-dereference", "-x", ".boot", release, reference])
        #expect(compare.exitCode == 0, "\(compare.stdout.prefix(2000))")
    }

    @Test func goodInstallHasTheExactLayoutLinksAndModes() throws {
        fixture.bundle(name("8.2.0") + ".tar.bz2", TestBundle.lava(version: "8.2.0"))
        pin(nil)
        let result = install()
        #expect(result.exitCode == 0, "\(result.stderr)")
        let release = "\(releases)/\(name("8.2.0"))"
        #expect(result.stdout.contains("installed lava-8.2.0"))
        #expect(Files.readLink(fixture.root + "/opt/lava/current") == "releases/\(name("8.2.0"))")
        #expect(try Files.list(releases)?.sorted() == [name("8.2.0")], "no partial or stray directories")

        // Modes: setuid dropped, files at least go+r (go+x where the owner may run), dirs go+rx.
        #expect(mode(release + "/bin/lava-worker") == 0o755)
        #expect(mode(release + "/bin/lava-admin") == 0o755)
        #expect(mode(release + "/bin/README") == 0o644)
        #expect(mode(release + "/lib/lava/version.py") == 0o644)
        #expect(mode(release + "/bin") == 0o755)
        #expect(mode(release + "/lib/lava") == 0o755)
        // Owners are not restored; mtimes are.
        #expect(status(release + "/lib/lava/version.py")?.st_uid == getuid())
        #expect(status(release + "/lib/lava/version.py")?.st_mtim.tv_sec == 1_234_567_890)
        #expect(status(release + "/bin/lava-worker")?.st_mtim.tv_sec == 1_500_000_001)
        #expect(status(release + "/bin")?.st_mtim.tv_sec == 1_500_000_000)
        #expect(try Files.readText(release + "/lib/lava/version.py") == "VERSION = '8.2.0'\n")
        #expect(Files.readLink(release + "/lib/lava/current.py") == "version.py")
        #expect(status(release + "/lib/lava/same.py")?.st_ino == status(release + "/lib/lava/version.py")?.st_ino)

        // Per-release links: python scripts through lava-run, anything else to itself.
        #expect(Files.readLink(release + "/.boot/bin/lava-worker") == "../../bin/lava-worker")
        #expect(Files.readLink(release + "/.boot/bin/lava-admin") == "../../lava-run")
        #expect(!Files.exists(release + "/.boot/bin/README"))
        // /usr/local/bin goes through current, with relative links valid when the tree becomes /.
        #expect(Files.readLink(fixture.root + "/usr/local/bin/lava-worker") == "../../../opt/lava/current/bin/lava-worker")
        #expect(Files.readLink(fixture.root + "/usr/local/bin/lava-admin") == "../../../opt/lava/current/lava-run")
        #expect(try Files.readText(fixture.root + "/usr/local/bin/lava-worker")?.contains("lava-worker 8.2.0") == true)
    }

    @Test func identicalReleaseIsReusedAndAChangedOneReplaced() throws {
        fixture.bundle(name("8.2.0") + ".tar.bz2", TestBundle.lava(version: "8.2.0"))
        pin(nil)
        #expect(install().exitCode == 0)
        let release = "\(releases)/\(name("8.2.0"))"
        let inode = status(release)?.st_ino
        let again = install()
        #expect(again.exitCode == 0)
        #expect(again.stdout.contains("reused"))
        #expect(status(release)?.st_ino == inode, "not extracted again")

        var changed = TestBundle.lava(version: "8.2.0")
        changed.append(.file("NEWS", "rebuilt\n"))
        sleep(1)  // a new mtime for the object
        fixture.bundle(name("8.2.0") + ".tar.bz2", changed)
        let third = install()
        #expect(third.exitCode == 0, "\(third.stderr)")
        #expect(third.stdout.contains("installed"))
        #expect(try Files.readText(release + "/NEWS") == "rebuilt\n")
        #expect(try Files.list(releases)?.sorted() == [name("8.2.0")])
    }

    @Test func newReleaseSwitchesCurrentAndDropsStaleLinks() throws {
        fixture.bundle(name("8.1.0") + ".tar.bz2", TestBundle.lava(version: "8.1.0") + [.file("bin/lava-old", "#!/bin/sh\n", mode: 0o755)])
        pin(nil)
        #expect(install().exitCode == 0)
        #expect(Files.readLink(fixture.root + "/usr/local/bin/lava-old") != nil)
        fixture.bundle(name("8.2.0") + ".tar.bz2", TestBundle.lava(version: "8.2.0"))
        #expect(install().exitCode == 0)
        #expect(Files.readLink(fixture.root + "/opt/lava/current") == "releases/\(name("8.2.0"))")
        #expect(Files.readLink(fixture.root + "/usr/local/bin/lava-old") == nil, "a link that would dangle is removed")
        #expect(Files.isDirectory("\(releases)/\(name("8.1.0"))"), "older releases stay for parasitic workers")
    }

    /// Past PATH_MAX: 20 directories of 240 characters.
    static let deep = (1...20).map { String(repeating: Character(UnicodeScalar(UInt8(96 + $0))), count: 240) }.joined(separator: "/")
    static let deepUp = String(repeating: "../", count: 21)

    /// Each hostile bundle fails the install, writes nothing outside the release dir, leaves
    /// `current` alone and leaves no partial directory. One line per class of hole.
    @Test(arguments: [
        ("dot-dot", [BundleEntry.file("../evil", "x")]),
        ("dot-dot-deep", [BundleEntry.directory("lib"), .file("lib/../../evil", "x")]),
        ("absolute", [BundleEntry.file("/tmp/lava-boot-evil-absolute", "x")]),
        ("symlink-to-etc-then-through", [BundleEntry.symlink("esc", target: "/etc"), .file("esc/evil", "x")]),
        ("relative-symlink-escape", [BundleEntry.symlink("up", target: "../../.."), .file("up/evil", "x")]),
        ("symlink-chain-escape", [BundleEntry.symlink("s", target: "."), .symlink("a", target: "s/..")]),
        ("through-inside-symlink", [BundleEntry.directory("lib"), .symlink("l", target: "lib"), .file("l/evil", "x")]),
        ("hardlink-to-passwd", [BundleEntry.hardlink("passwd", target: "/etc/passwd")]),
        ("hardlink-up", [BundleEntry.hardlink("passwd", target: "../../../../../../etc/passwd")]),
        ("device-node", [BundleEntry.characterDevice("null")]),
        ("fifo", [BundleEntry.fifo("pipe")]),
        // A symbolic link inside where it sits, hard-linked to where the same target leaves.
        ("hardlink-to-symlink", [BundleEntry.directory("a/b"), .symlink("a/b/s", target: "../.."), .hardlink("out", target: "a/b/s")]),
        ("hardlink-to-symlink-as-boot", [BundleEntry.directory("a/b"), .symlink("a/b/s", target: "../.."), .hardlink(".boot", target: "a/b/s")]),
        ("hardlink-to-symlink-in-bin", [BundleEntry.directory("a/b/c/d/e/f/g/h"), .symlink("a/b/c/d/e/f/g/h/s", target: "../../../../../../../../bin/sh"),
                                        .hardlink("bin/lava-evil", target: "a/b/c/d/e/f/g/h/s")]),
        ("boot-directory-from-bundle", [BundleEntry.directory(".boot/bin"), .file(".boot/source.json", "{}")]),
        // The same holes past PATH_MAX, where a path-based readlink fails.
        ("chain-escape-past-path-max", [BundleEntry.directory(deep), .symlink(deep + "/s", target: "."), .symlink(deep + "/up", target: "s/" + deepUp)]),
        ("hardlink-to-symlink-past-path-max", [BundleEntry.directory(deep + "/x"), .symlink(deep + "/x/s", target: "../" + deepUp.dropLast(3)),
                                              .hardlink(deep + "/out", target: deep + "/x/s")]),
    ])
    func hostileBundlesFailCleanly(_ label: String, _ entries: [BundleEntry]) throws {
        fixture.bundle(name("8.1.0") + ".tar.bz2", TestBundle.lava(version: "8.1.0"))
        pin("8.1.0")
        #expect(install().exitCode == 0)
        fixture.bundle(name("8.2.0") + ".tar.bz2", TestBundle.lava(version: "8.2.0") + entries)
        pin("8.2.0")
        let result = install()
        #expect(result.exitCode == 1, "\(label): \(result.stdout) \(result.stderr)")
        #expect(result.stderr.hasPrefix("lava-boot: error: installing \(name("8.2.0")).tar.bz2: "), "\(label): \(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(Files.readLink(fixture.root + "/opt/lava/current") == "releases/\(name("8.1.0"))", "\(label): current untouched")
        #expect(try Files.list(releases)?.sorted() == [name("8.1.0")], "\(label): no partial dir left")
        #expect(!Files.exists("/tmp/lava-boot-evil-absolute"))
        #expect(try findFiles(named: "evil", under: fixture.directory.path).isEmpty, "\(label): nothing written outside")
        #expect(try Files.readText("/etc/passwd")?.contains("root:") == true)
    }

    @Test func corruptedBzip2StreamFailsCleanly() throws {
        fixture.bundle(name("8.1.0") + ".tar.bz2", TestBundle.lava(version: "8.1.0"))
        pin("8.1.0")
        #expect(install().exitCode == 0)
        // A large enough bundle that the damage lands in compressed data, not the header.
        var entries = TestBundle.lava(version: "8.2.0")
        for index in 0..<40 {
            entries.append(.file("lib/data\(index).txt", String(repeating: "line \(index) of lava data\n", count: 2000)))
        }
        let path = fixture.area + "/_dist_/pkg/amzn2023/\(name("8.2.0")).tar.bz2"
        TestBundle.write(path, entries)
        var bytes = try #require(try Files.read(path))
        for offset in stride(from: bytes.count / 2, to: bytes.count / 2 + 64, by: 1) { bytes[offset] ^= 0x5A }
        try Files.writeAtomically(path, bytes)
        pin("8.2.0")
        let result = install()
        #expect(result.exitCode == 1)
        #expect(result.stderr.contains("cannot read"), "\(result.stderr)")
        #expect(Files.readLink(fixture.root + "/opt/lava/current") == "releases/\(name("8.1.0"))")
        #expect(try Files.list(releases)?.sorted() == [name("8.1.0")])
    }

    @Test func truncatedBundleFailsCleanly() throws {
        let path = fixture.area + "/_dist_/pkg/amzn2023/\(name("8.2.0")).tar.bz2"
        TestBundle.write(path, TestBundle.lava(version: "8.2.0"))
        let bytes = try #require(try Files.read(path))
        try Files.writeAtomically(path, bytes.prefix(bytes.count / 2))
        pin(nil)
        let result = install()
        #expect(result.exitCode == 1)
        #expect(!Files.exists(fixture.root + "/opt/lava/current"))
        #expect(try Files.list(releases) ?? [] == [])
    }

    /// Versions before 8.0 (and `--installer bundle`) run the bundle's own install.sh.
    @Test func bundleInstallerRunsInstallScript() throws {
        let script = """
        #!/bin/sh
        # install.sh -c -d BASE BUNDLE
        [ "$1" = "-c" ] && [ "$2" = "-d" ] || exit 9
        mkdir -p "$3/bin"
        printf '%s\\n' "$@" > "$3/install-args"
        printf '#!/bin/sh\\necho old worker\\n' > "$3/bin/lava-worker"
        """
        fixture.bundle("lava-7.9.0.tar.bz2", [.file("lava-7.9.0/install.sh", script, mode: 0o644), .file("lava-7.9.0/README", "x")])
        pin("7.9.0")
        let old = install()
        #expect(old.exitCode == 0, "\(old.stderr)")
        let bundlePath = fixture.area + "/_dist_/pkg/amzn2023/lava-7.9.0.tar.bz2"
        #expect(try Files.readText(fixture.root + "/usr/local/install-args") == "-c\n-d\n\(fixture.root)/usr/local\n\(bundlePath)\n")
        #expect(!Files.exists(fixture.root + "/opt/lava/current"), "bundle installs do not touch current")

        fixture.bundle(name("8.2.0") + ".tar.bz2", TestBundle.lava(version: "8.2.0") + [.file("install.sh", script, mode: 0o755)])
        pin("8.2.0")
        let forced = install(["--installer", "bundle"])
        #expect(forced.exitCode == 0, "\(forced.stderr)")
        #expect(try Files.readText(fixture.root + "/opt/lava/install-args")?.contains("\(fixture.root)/opt/lava\n") == true)
    }

    /// What the recording install.sh of `TestBundle.recordingInstallScript` wrote under BASE.
    func installRuns(_ base: String) -> [String] {
        ((try? Files.readText(fixture.root + base + "/install-runs")) ?? nil)?.split(separator: "\n").map(String.init) ?? []
    }

    /// A reboot installs a bundle again only when something changed (SPEC §6): the same object,
    /// with its worker in place, is reused without running install.sh; a changed object, a
    /// missing worker, or another release's install.sh run in the same BASE meanwhile runs it again.
    @Test(arguments: [false, true])
    func bundleInstallIsReusedUntilSomethingChanges(forced: Bool) throws {
        let (version, older, base) = forced ? ("8.2.0", "8.1.0", "/opt/lava") : ("7.9.0", "7.8.0", "/usr/local")
        let stem = forced ? name(version) : "lava-\(version)", file = stem + ".tar.bz2"
        let options = forced ? ["--installer", "bundle"] : []
        fixture.bundle(file, TestBundle.recordingInstallScript(version))
        pin(version)
        let first = install(options)
        #expect(first.exitCode == 0, "\(first.stderr)")
        #expect(installRuns(base) == [version])

        let again = install(options)
        #expect(again.exitCode == 0, "\(again.stderr)")
        #expect(installRuns(base) == [version], "install.sh is not run again for the same object")
        #expect(again.stdout.contains("reused    \(file) -> \(fixture.root)\(base)"), "\(again.stdout)")
        #expect(again.stderr.contains("\(stem) is already installed from the same object; reusing it"), "\(again.stderr)")

        // Different content: a different size, so a different object.
        let path = fixture.area + "/_dist_/pkg/amzn2023/" + file
        let size = try #require(try Files.read(path)).count
        fixture.bundle(file, TestBundle.recordingInstallScript(version, extra: [.file("NEWS", String(repeating: "rebuilt\n", count: 100))]))
        try #require(try Files.read(path)?.count != size)
        let changed = install(options)
        #expect(changed.exitCode == 0, "\(changed.stderr)")
        #expect(changed.stdout.contains("installed \(file)"), "\(changed.stdout)")
        #expect(installRuns(base) == [version, version])

        unlink(fixture.root + base + "/bin/lava-worker")
        #expect(install(options).exitCode == 0)
        #expect(installRuns(base) == [version, version, version], "a missing worker is installed again")

        // Another release's install.sh overwrote BASE: the first one's is no longer there to reuse.
        let olderFile = forced ? name(older) + ".tar.bz2" : "lava-\(older).tar.bz2"
        fixture.bundle(olderFile, TestBundle.recordingInstallScript(older))
        pin(older)
        #expect(install(options).exitCode == 0)
        pin(version)
        #expect(install(options).exitCode == 0)
        #expect(installRuns(base) == [version, version, version, older, version])
    }

    /// A failed install.sh leaves no record of an install, and removes the one an earlier
    /// success left in its BASE: the next try runs install.sh again.
    @Test func failedInstallScriptIsRunAgainNextTime() throws {
        let markers = fixture.root + "/opt/lava/.boot/bundle-installs/usr/local"
        fixture.bundle("lava-7.9.0.tar.bz2", TestBundle.recordingInstallScript("7.9.0"))
        pin("7.9.0")
        fixture.directory.write("root/usr/local/fail", "")
        let failed = install()
        #expect(failed.exitCode == 1)
        #expect(failed.stderr.contains("install.sh of 7.9.0 failing"), "\(failed.stderr)")
        #expect(try Files.list(markers) ?? [] == [], "no marker after a failed install.sh")

        unlink(fixture.root + "/usr/local/fail")
        let retried = install()
        #expect(retried.exitCode == 0, "\(retried.stderr)")
        #expect(installRuns("/usr/local") == ["7.9.0", "7.9.0"])
        #expect(try Files.list(markers) == ["lava-7.9.0.json"])
        #expect(install().stdout.contains("reused    lava-7.9.0.tar.bz2"))
        #expect(installRuns("/usr/local") == ["7.9.0", "7.9.0"])

        // Another release's install.sh fails halfway through BASE: 7.9.0's record goes with it.
        fixture.bundle("lava-7.8.0.tar.bz2", TestBundle.recordingInstallScript("7.8.0"))
        pin("7.8.0")
        fixture.directory.write("root/usr/local/fail", "")
        #expect(install().exitCode == 1)
        #expect(try Files.list(markers) ?? [] == [])
        unlink(fixture.root + "/usr/local/fail")
        pin("7.9.0")
        let back = install()
        #expect(back.exitCode == 0, "\(back.stderr)")
        #expect(back.stdout.contains("installed lava-7.9.0.tar.bz2"), "\(back.stdout)")
        #expect(installRuns("/usr/local") == ["7.9.0", "7.9.0", "7.8.0", "7.9.0"])
    }

    @Test func failingInstallScriptFailsTheInstall() {
        fixture.bundle("lava-7.9.0.tar.bz2", [.file("install.sh", "#!/bin/sh\necho broken >&2\nexit 3\n", mode: 0o755)])
        pin("7.9.0")
        let result = install()
        #expect(result.exitCode == 1)
        #expect(result.stderr.contains("broken"), "the script's output is logged")
        #expect(result.stderr.contains("lava-boot: error: installing lava-7.9.0.tar.bz2: install.sh failed (exit status 3)"), "\(result.stderr)")
    }

    @Test func bundleWithoutInstallScriptIsAnError() {
        fixture.bundle("lava-7.9.0.tar.bz2", [.file("README", "x")])
        pin("7.9.0")
        let result = install()
        #expect(result.exitCode == 1)
        #expect(result.stderr.contains("holds no install.sh"))
    }

    /// No mode of the bundle makes anything world-writable, setuid or sticky.
    @Test func modesNeverLeaveAnythingWorldWritableOrSetuid() throws {
        fixture.bundle(name("8.2.0") + ".tar.bz2", TestBundle.lava(version: "8.2.0") + [
            .file("open-exec", "x", mode: 0o777), .file("open-data", "x", mode: 0o666),
            .directory("shared", mode: 0o1777), .directory("open-dir", mode: 0o777), .file("setuid", "x", mode: 0o4755),
            .file("setgid-open", "x", mode: 0o2777),
        ])
        pin(nil)
        let result = install()
        #expect(result.exitCode == 0, "\(result.stderr)")
        let release = "\(releases)/\(name("8.2.0"))"
        #expect(mode(release + "/open-exec") == 0o775)
        #expect(mode(release + "/open-data") == 0o664)
        #expect(mode(release + "/shared") == 0o775)
        #expect(mode(release + "/open-dir") == 0o775)
        #expect(mode(release + "/setuid") == 0o755)
        #expect(mode(release + "/setgid-open") == 0o775)
    }

    @Test func bundleWithoutWorkerIsRefusedBeforeCurrentMoves() throws {
        fixture.bundle(name("8.1.0") + ".tar.bz2", TestBundle.lava(version: "8.1.0"))
        pin("8.1.0")
        #expect(install().exitCode == 0)
        fixture.bundle(name("8.2.0") + ".tar.bz2", TestBundle.lava(version: "8.2.0").filter {
            if case .file("bin/lava-worker", _, _, _) = $0 { return false }
            return true
        })
        pin("8.2.0")
        let result = install()
        #expect(result.exitCode == 1)
        #expect(result.stderr.contains("has no executable bin/lava-worker"), "\(result.stderr)")
        #expect(Files.readLink(fixture.root + "/opt/lava/current") == "releases/\(name("8.1.0"))")
        #expect(try Files.list(releases)?.sorted() == [name("8.1.0")])
    }

    /// lava-boot owns only its own links in /usr/local/bin, and never shadows a system command.
    @Test func usrLocalBinEntriesOfOthersAreLeftAlone() throws {
        let bin = fixture.root + "/usr/local/bin"
        try Files.makeDirectories(bin)
        fixture.directory.write("root/usr/local/bin/lava-admin", "#!/bin/sh\necho operator's own\n", mode: 0o755)
        symlink("/usr/bin/true", bin + "/lava-worker")
        fixture.directory.write("root/usr/bin/ls", "#!/bin/sh\n", mode: 0o755)
        fixture.bundle(name("8.2.0") + ".tar.bz2", TestBundle.lava(version: "8.2.0") + [.file("bin/ls", "#!/bin/sh\necho evil\n", mode: 0o755)])
        pin(nil)
        let result = install()
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(try Files.readText(bin + "/lava-admin") == "#!/bin/sh\necho operator's own\n", "an operator's file is kept")
        #expect(Files.readLink(bin + "/lava-worker") == "/usr/bin/true", "a foreign link is kept")
        #expect(!Files.exists(bin + "/ls"), "no shadow of a system command")
        #expect(result.stderr.contains("leaving /usr/local/bin/lava-admin alone"), "\(result.stderr)")
        #expect(result.stderr.contains("leaving /usr/local/bin/lava-worker alone"))
        #expect(result.stderr.contains("not linking /usr/local/bin/ls: it would shadow /usr/bin/ls"))
        #expect(Files.readLink("\(releases)/\(name("8.2.0"))/.boot/bin/lava-worker") == "../../bin/lava-worker", "the release's own links are made")
    }

    /// Two installs on one root: the second waits for the lock (and says so), both succeed.
    @Test func concurrentInstallsTakeTurns() throws {
        var entries = TestBundle.lava(version: "8.2.0")
        for index in 0..<200 { entries.append(.file("lib/data\(index).txt", String(repeating: "data \(index)\n", count: 500))) }
        fixture.bundle(name("8.2.0") + ".tar.bz2", entries)
        pin(nil)
        try Files.makeDirectories(fixture.root + "/opt/lava")
        // Hold the lock here, so both installs must wait; then let them race for it.
        let lock = open(fixture.root + "/opt/lava/.install.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        #expect(flock(lock, LOCK_EX) == 0)
        let arguments = ["install", fixture.source, "prod", "core", "--realms-file", fixture.realmsFile, "--root", fixture.root]
        let first = try RunningAgent(arguments), second = try RunningAgent(arguments)
        #expect(waitUntil(timeout: 60) { first.log.contains("waiting for it to finish") && second.log.contains("waiting for it to finish") },
                "\(first.log) \(second.log)")
        close(lock)
        #expect(waitUntil(timeout: 120) { first.status != nil && second.status != nil })
        #expect(first.status == .exited(0), "\(first.log)")
        #expect(second.status == .exited(0), "\(second.log)")
        #expect(try Files.list(releases)?.sorted() == [name("8.2.0")], "no partial directory left")
        #expect(try Files.readText("\(releases)/\(name("8.2.0"))/lib/data199.txt")?.hasPrefix("data 199") == true)
    }

    /// install.sh is streamed to its file: a 300 MB one costs no more memory than a small one.
    @Test func largeInstallScriptIsStreamed() throws {
        let script = "#!/bin/sh\nmkdir -p \"$3/bin\" && echo ok > \"$3/installed\"\nexit 0\n"
        fixture.bundle("lava-7.9.0.tar.bz2", [.padded("install.sh", head: script, zeros: 300 << 20)])
        pin("7.9.0")
        let measured = PeakMemory.run(LavaBootBinary.path, ["install", fixture.source, "prod", "core", "--realms-file", fixture.realmsFile,
                                                            "--root", fixture.root, "--level", "error"])
        #expect(measured.exitCode == 0)
        #expect(try Files.readText(fixture.root + "/usr/local/installed") == "ok\n")
        #expect(measured.peakKiB < 64 * 1024, "peak RSS \(measured.peakKiB) KiB")
    }

    func findFiles(named name: String, under root: String) throws -> [String] {
        var found = [String]()
        for entry in try Files.list(root) ?? [] {
            let path = root + "/" + entry
            if entry == name { found.append(path) }
            if Files.isDirectory(path) && Files.readLink(path) == nil { found += try findFiles(named: name, under: path) }
        }
        return found
    }
}
