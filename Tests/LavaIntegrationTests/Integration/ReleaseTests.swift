import Foundation
import LavaSystem
import LavaTestSupport
import Testing

/// The release packaging (SPEC §12): the real release build (packaging/build-release.sh, run
/// once for the suite) checked as Amazon Linux 2023 needs it, its tarball and RPM; the AMI
/// template and provisioning script (ami/); the IAM policies (boot/iam/). Serialized: the
/// build blocks one thread for minutes, and should not block more.
@Suite(.serialized) struct ReleaseTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    /// Runs a program found on the test's PATH (swift, rpmbuild, packer...) through env, so a
    /// missing one fails with env's exit 127 naming it.
    static func run(_ program: String, _ arguments: [String]) -> CommandResult {
        let environment = ProcessInfo.processInfo.environment
        return Command.run("/usr/bin/env", ["PATH=\(environment["PATH"] ?? "/usr/bin:/bin")", program] + arguments,
                           environment: ["HOME": environment["HOME"] ?? "/root", "CHECKPOINT_DISABLE": "1"])
    }

    /// One release build for the whole suite, in its own scratch path under .build.
    final class ReleaseBuild: Sendable {
        let out = ReleaseTests.root + "/.build/release-static/test-out"
        let exitCode: Int32
        let log: String
        let version: String
        let arch: String

        init() {
            let result = ReleaseTests.run("bash", [ReleaseTests.root + "/packaging/build-release.sh", "--out", out])
            exitCode = result.exitCode
            log = result.stdout + result.stderr
            let source = (try? Files.readText(ReleaseTests.root + "/Sources/lava-boot/LavaBoot.swift")).flatMap { $0 } ?? ""
            version = source.firstMatch(of: #/static let version = "([^"]+)"/#).map { String($0.1) } ?? "?"
            arch = ReleaseTests.run("uname", ["-m"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        var binary: String { "\(out)/lava-boot-\(version)/lava-boot" }
        var tarball: String { "lava-boot-\(version)-linux-\(arch).tar.gz" }
        var rpm: String { "\(out)/lava-boot-\(version)-1.\(arch).rpm" }
    }

    static let build = ReleaseBuild()

    /// The build, failing the test (with the end of its log) when it failed.
    func release() throws -> ReleaseBuild {
        let build = ReleaseTests.build
        try #require(build.exitCode == 0, "packaging/build-release.sh exited \(build.exitCode):\n\(build.log.suffix(4000))")
        return build
    }

    static let allowedLibraries: Set<String> = [
        "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
        "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
        "libgcc_s.so.1", "libstdc++.so.6", "libcrypto.so.3", "libcurl.so.4", "libarchive.so.13",
    ]

    static func needed(_ binary: String) -> [String] {
        let headers = ReleaseTests.run("objdump", ["-p", binary]).stdout
        var libraries: [String] = []
        for line in headers.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, fields[0] == "NEEDED" { libraries.append(String(fields[1])) }
        }
        return libraries
    }

    @Test func releaseBinaryPassesTheAmazonLinux2023Check() throws {
        let build = try release()
        let check = ReleaseTests.run("bash", [ReleaseTests.root + "/packaging/check-binary.sh", build.binary])
        #expect(check.exitCode == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("highest GLIBC: GLIBC_2."), "\(check.stdout)")
    }

    @Test func releaseBinaryNeedsOnlyTheLibrariesOfTheDesign() throws {
        let needed = ReleaseTests.needed(try release().binary)
        #expect(Set(needed).isSuperset(of: ["libc.so.6", "libcurl.so.4", "libcrypto.so.3", "libarchive.so.13"]), "\(needed)")
        #expect(Set(needed).isSubset(of: ReleaseTests.allowedLibraries), "\(needed)")
        #expect(!needed.contains { $0.hasPrefix("libbz2") }, "lava-boot decodes bzip2 itself: \(needed)")
    }

    @Test func releaseBinaryAsksForNoCurlSymbolVersion() throws {
        let versions = ReleaseTests.run("readelf", ["-V", "--wide", try release().binary])
        try #require(versions.exitCode == 0, "\(versions.stderr)")
        #expect(versions.stdout.contains("GLIBC_2."), "readelf printed no version needs")
        #expect(!versions.stdout.contains("CURL_"), "AL2023's libcurl defines no CURL_* version")
    }

    /// The debug build asks for CURL_OPENSSL_4 and needs the Swift runtime's shared libraries: the
    /// check refuses it, naming both.
    @Test func checkRejectsTheDebugBuild() throws {
        let debug = PackageExecutable.path("lava-boot")
        try #require(ReleaseTests.needed(debug).contains("libswiftCore.so"), "\(debug) is not a dynamically linked debug build")
        let check = ReleaseTests.run("bash", [ReleaseTests.root + "/packaging/check-binary.sh", debug])
        #expect(check.exitCode == 1)
        #expect(check.stderr.contains("libswiftCore.so"), "\(check.stderr)")
        #expect(check.stderr.contains("CURL_OPENSSL_4"), "\(check.stderr)")
    }

    /// Debian's libbz2.so.1.0 is libbz2.so.1 on AL2023: a binary that needs it is refused.
    @Test func checkRejectsABinaryNeedingLibbz2() throws {
        let scratch = TemporaryDirectory("release-check")
        let source = scratch.write("bz.c", "#include <bzlib.h>\nint main(void) { return BZ2_bzlibVersion() == 0; }\n")
        let binary = scratch.sub("bz")
        let build = ReleaseTests.run("gcc", ["-o", binary, source, "-lbz2"])
        try #require(build.exitCode == 0, "\(build.stderr)")
        let check = ReleaseTests.run("bash", [ReleaseTests.root + "/packaging/check-binary.sh", binary])
        #expect(check.exitCode == 1)
        #expect(check.stderr.contains("libbz2.so.1.0"), "\(check.stderr)")
    }

    @Test func tarballMatchesItsSHA256AndHoldsTheBinary() throws {
        let build = try release()
        let verify = ReleaseTests.run("sh", ["-c", "cd \"$1\" && sha256sum -c \"$2.sha256\"", "sh", build.out, build.tarball])
        #expect(verify.exitCode == 0, "\(verify.stdout)\(verify.stderr)")
        let listing = ReleaseTests.run("tar", ["-tzf", "\(build.out)/\(build.tarball)"])
        #expect(listing.stdout.split(separator: "\n").contains("lava-boot-\(build.version)/lava-boot"), "\(listing.stdout)")
    }

    @Test func rpmHoldsTheBinaryAndTheUnitForThisArchitecture() throws {
        let build = try release()
        let files = ReleaseTests.run("rpm", ["-qpl", build.rpm])
        try #require(files.exitCode == 0, "\(files.stderr)")
        let listed = files.stdout.split(separator: "\n").map(String.init)
        #expect(listed.contains("/usr/bin/lava-boot"), "\(listed)")
        #expect(listed.contains("/usr/lib/systemd/system/lava-boot.service"), "\(listed)")
        let arch = ReleaseTests.run("rpm", ["-qp", "--qf", "%{ARCH}", build.rpm])
        #expect(arch.stdout == build.arch)
    }

    /// Written by hand (AutoReqProv off): AL2023's package names, no soname read off Debian.
    @Test func rpmRequiresTheAmazonLinuxPackages() throws {
        let requires = ReleaseTests.run("rpm", ["-qpR", try release().rpm])
        try #require(requires.exitCode == 0, "\(requires.stderr)")
        let names = requires.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
        for package in ["libcurl", "openssl-libs", "libarchive", "glibc"] {
            #expect(names.contains(package), "\(package) missing from \(names)")
        }
        #expect(!names.contains { $0.contains(".so") || $0.contains("bz2") }, "\(names)")
    }

    @Test func packagedBinaryRuns() throws {
        let build = try release()
        let unpacked = TemporaryDirectory("rpm")
        let extract = ReleaseTests.run("sh", ["-c", "rpm2archive - < \"$1\" | tar -xzf - -C \"$2\"", "sh", build.rpm, unpacked.path])
        try #require(extract.exitCode == 0, "\(extract.stderr)")
        let version = Command.run(unpacked.sub("usr/bin/lava-boot"), ["--version"])
        #expect(version.exitCode == 0, "\(version.stderr)")
        #expect(version.stdout == build.version + "\n")
        #expect(version.stderr.isEmpty, "the loader or the binary complained: \(version.stderr)")
        let unit = try #require(try Files.readText(unpacked.sub("usr/lib/systemd/system/lava-boot.service")))
        #expect(unit.contains("\nExecStart=/usr/bin/lava-boot boot "), "the unit must start the packaged binary")
    }

    @Test func amiTemplatePassesPackersSyntaxCheck() {
        let result = ReleaseTests.run("packer", ["validate", "-syntax-only", ReleaseTests.root + "/ami/lava-boot.pkr.hcl"])
        #expect(result.exitCode == 0, "\(result.stdout)\(result.stderr)")
    }

    /// A full validate with Debian's Packer 1.6.6 (its amazon-ebs builder is built in) checks every
    /// argument name and reference; it knows all but the two IMDSv2 settings, which are newer.
    @Test func amiTemplateUsesOnlyArgumentsPackerKnows() {
        let rpms = TemporaryDirectory("rpms")
        for arch in ["x86_64", "aarch64"] { rpms.write("lava-boot-0.0.0-1.\(arch).rpm", "") }
        let result = withExtendedLifetime(rpms) {
            ReleaseTests.run("packer", [
                "validate", "-var", "region=eu-west-1", "-var", "code_area=s3://my-lava-code/prod", "-var", "lava_boot_version=0.0.0",
                "-var", "iam_instance_profile=lava-ami-build", "-var", "rpm_dir=\(rpms.path)", ReleaseTests.root + "/ami/lava-boot.pkr.hcl",
            ])
        }
        let output = result.stdout + result.stderr
        let errors = output.split(separator: "\n").filter { $0.hasPrefix("Error: ") }
        let newer = output.split(separator: "\n").filter {
            $0.contains("\"imds_support\" is not expected here") || $0.contains("\"metadata_options\" are not expected here")
        }
        #expect(newer.count == 4, "\(output)")  // both settings in both sources
        #expect(errors.count == newer.count, "\(output)")
    }

    /// SPEC §12: systemd's stop reaches the agent alone (it drains the workers itself) and waits
    /// longer than the largest drain budget (stop_minutes <= 720).
    @Test func theUnitLetsADrainFinish() throws {
        let unit = try #require(try Files.readText(ReleaseTests.root + "/boot/lava-boot.service"))
        let settings = Dictionary(unit.split(separator: "\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: "=", maxSplits: 1)
            return parts.count == 2 && !line.hasPrefix("#") ? (String(parts[0]), String(parts[1])) : nil
        }, uniquingKeysWith: { $1 })
        #expect(settings["KillMode"] == "mixed")
        #expect(settings["KillSignal"] ?? "SIGTERM" == "SIGTERM")
        let timeout = try #require(settings["TimeoutStopSec"])
        let minutes = timeout.hasSuffix("min") ? Int(timeout.dropLast(3)) : Int(timeout).map { $0 / 60 }
        #expect((minutes ?? 0) > 720, "TimeoutStopSec=\(timeout)")
    }

    @Test(arguments: ["ami/provision.sh", "boot/user-data.sh", "packaging/build-release.sh", "packaging/check-binary.sh"])
    func scriptParsesAndPassesShellcheck(_ script: String) {
        let parse = ReleaseTests.run("bash", ["-n", ReleaseTests.root + "/" + script])
        #expect(parse.exitCode == 0, "\(parse.stderr)")
        let lint = ReleaseTests.run("shellcheck", [ReleaseTests.root + "/" + script])
        #expect(lint.exitCode == 0, "\(lint.stdout)\(lint.stderr)")
    }

    /// Each policy is valid IAM JSON and grants exactly the calls lava-boot makes; `*` only for
    /// the Auto Scaling Describe calls, which take no resource.
    @Test(arguments: [
        ("instance-role.json", ["s3:GetObject", "s3:ListBucket", "dynamodb:GetItem",
                                "autoscaling:DescribeAutoScalingInstances", "autoscaling:DescribeLifecycleHooks",
                                "autoscaling:RecordLifecycleActionHeartbeat", "autoscaling:CompleteLifecycleAction"]),
        ("operator-pin.json", ["dynamodb:GetItem", "dynamodb:UpdateItem", "s3:ListBucket", "s3:GetObject"]),
    ])
    func iamPolicyGrantsWhatLavaBootCalls(_ file: String, _ actions: [String]) throws {
        let code = """
            import json, sys
            path, wanted = sys.argv[1], set(sys.argv[2:])
            unscoped = {"autoscaling:DescribeAutoScalingInstances", "autoscaling:DescribeLifecycleHooks"}
            def listed(value):
                return [value] if isinstance(value, str) else value
            document = json.load(open(path))
            problems, granted = [], set()
            if document.get("Version") != "2012-10-17":
                problems.append("Version is not 2012-10-17")
            statements = document.get("Statement")
            if not isinstance(statements, list) or not statements:
                problems.append("no Statement list")
                statements = []
            for number, statement in enumerate(statements):
                missing = [key for key in ("Effect", "Action", "Resource") if key not in statement]
                if missing:
                    problems.append(f"statement {number} has no {', '.join(missing)}")
                    continue
                if statement["Effect"] != "Allow":
                    problems.append(f"statement {number}: Effect {statement['Effect']}")
                actions, resources = listed(statement["Action"]), listed(statement["Resource"])
                granted.update(actions)
                for resource in resources:
                    if resource == "*" and not set(actions) <= unscoped:
                        problems.append(f"statement {number}: Resource * for {sorted(set(actions) - unscoped)}")
                    elif resource != "*" and not resource.startswith("arn:aws:"):
                        problems.append(f"statement {number}: {resource} is not an ARN")
                if "s3:ListBucket" in actions and "s3:prefix" not in json.dumps(statement.get("Condition", {})):
                    problems.append(f"statement {number}: ListBucket without an s3:prefix condition")
            problems += [f"{action} is not granted" for action in sorted(wanted - granted)]
            problems += [f"{action} is granted but lava-boot does not call it" for action in sorted(granted - wanted)]
            print("\\n".join(problems))
            """
        let result = try Python.run(code, [ReleaseTests.root + "/boot/iam/" + file] + actions)
        #expect(result.status.isSuccess, "\(result.stderr)")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(file):\n\(result.stdout)")
    }
}
