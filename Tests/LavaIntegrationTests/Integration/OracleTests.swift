import LavaJSON
import LavaSystem
import LavaTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `ami oracle` (SPEC §10) under `--root`, with stand-in Instant Client zips holding real ELF
/// libraries (built with gcc, with sonames) so `ldconfig -r` has something to cache.
@Suite struct OracleTests {
    let fixture = LocalFixture()
    var arch: String { fixture.machineArch == "x86_64" ? "x64" : "arm64" }
    var zipDirectory: String { Paths.join(fixture.area, "_ami_/oracle") }

    init() throws {
        try Files.makeDirectories(zipDirectory)
        // A root that becomes an image's `/` has the usual include of ld.so.conf.d.
        _ = fixture.directory.write("root/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n")
    }

    /// One zip entry: a file (`text`, or the bytes of `from`), or a symbolic link.
    struct ZipEntry: Sendable {
        var name: String
        var text: String? = nil
        var from: String? = nil
        var link: String? = nil
        var mode: Int = 0o644
    }

    /// A shared library with `soname`, built by gcc.
    func library(_ soname: String) throws -> String {
        let source = fixture.directory.write("build/\(soname).c", "int \(soname.filter { $0.isLetter })(void) { return 19; }\n")
        let output = fixture.directory.sub("build/\(soname)")
        let result = Command.run("/usr/bin/gcc", ["-shared", "-fPIC", "-Wl,-soname,\(soname)", "-o", output, source])
        try #require(result.exitCode == 0, "gcc: \(result.stderr)")
        return output
    }

    func zip(_ name: String, _ entries: [ZipEntry]) throws {
        func field(_ text: String?) -> JSONValue { text.map { .string($0) } ?? .null }
        let spec = JSONValue.array(entries.map { entry in
            .array([.string(entry.name), field(entry.text), field(entry.from), field(entry.link), .number(entry.mode)])
        }).serialized()
        let code = """
            import json, stat, sys, zipfile
            with zipfile.ZipFile(sys.argv[1], "w") as archive:
                for name, text, source, link, mode in json.loads(sys.argv[2]):
                    info = zipfile.ZipInfo(name)
                    info.create_system = 3
                    info.external_attr = ((stat.S_IFLNK | 0o777) if link is not None else (stat.S_IFREG | mode)) << 16
                    data = link.encode() if link is not None else (open(source, "rb").read() if source else text.encode())
                    archive.writestr(info, data, compress_type=zipfile.ZIP_STORED if link is not None else zipfile.ZIP_DEFLATED)
            """
        let result = try Python.run(code, [Paths.join(zipDirectory, name), spec])
        try #require(result.status.isSuccess, "zip \(name): \(result.stderr)")
    }

    /// Oracle's own spelling (`linuxx64`) for the base zip, the SPEC's for sqlplus.
    func standInZips(version: String = "19_25", sqlplusVersion: String? = nil, basePackage: String = "basiclite") throws {
        let directory = "instantclient_\(version)"
        try zip("instantclient-\(basePackage)-linux\(arch == "x64" ? "x64" : "-arm64").zip", [
            ZipEntry(name: "\(directory)/libclntsh.so.19.1", from: try library("libclntsh.so.19.1"), mode: 0o755),
            ZipEntry(name: "\(directory)/libclntsh.so", link: "libclntsh.so.19.1"),
            ZipEntry(name: "\(directory)/BASIC_LITE_LICENSE", text: "license\n"),
        ])
        let sqlplusDirectory = "instantclient_\(sqlplusVersion ?? version)"
        try zip("instantclient-sqlplus-linux-\(arch).zip", [
            ZipEntry(name: "\(sqlplusDirectory)/libsqlplus.so", from: try library("libsqlplus.so"), mode: 0o755),
            ZipEntry(name: "\(sqlplusDirectory)/sqlplus", text: "#!/bin/sh\necho 'SQL*Plus: Release 19.25'\n", mode: 0o755),
        ])
    }

    func oracle(_ extra: [String] = []) -> CommandResult {
        LavaBootBinary.run(["ami", "oracle", fixture.source, "--root", fixture.root] + extra)
    }

    func ldconfigCache() -> String {
        Command.run("/usr/sbin/ldconfig", ["-r", fixture.root, "-p"]).stdout
    }

    @Test func installsFilesLinksTheLinkerEntryAndSqlplus() throws {
        try standInZips()
        let result = oracle()
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(result.stdout == "Oracle Instant Client 19.25 in /opt/oracle/instantclient_19_25\n", "\(result.stdout)")
        let client = fixture.root + "/opt/oracle/instantclient_19_25"
        #expect(Files.readLink(client + "/libclntsh.so") == "libclntsh.so.19.1")
        #expect(try Files.readText(client + "/BASIC_LITE_LICENSE") == "license\n")
        #expect(access(client + "/sqlplus", X_OK) == 0)
        #expect(try Files.readText(fixture.root + "/etc/ld.so.conf.d/oracle-instantclient.conf") == "/opt/oracle/instantclient_19_25\n")
        // Image paths, as the tree will be `/`.
        #expect(Files.readLink(fixture.root + "/usr/bin/sqlplus") == "/opt/oracle/instantclient_19_25/sqlplus")
        let cache = ldconfigCache()
        #expect(cache.contains("libclntsh.so.19.1 (libc6") && cache.contains("=> /opt/oracle/instantclient_19_25/libclntsh.so.19.1"), "\(cache)")
        #expect(cache.contains("=> /opt/oracle/instantclient_19_25/libsqlplus.so"), "\(cache)")
        #expect(try Files.list(fixture.root + "/opt/oracle")?.sorted() == ["instantclient_19_25"], "no staging directory left")
    }

    /// From S3 a zip is first copied to an unnamed temporary file (its directory is at its end).
    @Test func installsFromS3() throws {
        try standInZips()
        let moto = try MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("lava-code")
        for name in try #require(try Files.list(zipDirectory)) {
            try moto.putObject(bucket: "lava-code", key: "prod/_ami_/oracle/\(name)", bytes: try #require(try Files.read(Paths.join(zipDirectory, name))))
        }
        let result = LavaBootBinary.run(["ami", "oracle", "s3://lava-code/prod", "--root", fixture.root], environment: [
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": moto.endpoint, "AWS_EC2_METADATA_DISABLED": "true", "HOME": fixture.directory.path])
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Oracle Instant Client 19.25"))
        #expect(ldconfigCache().contains("=> /opt/oracle/instantclient_19_25/libclntsh.so.19.1"))
    }

    @Test func theSameVersionAgainChangesNothing() throws {
        try standInZips()
        #expect(oracle().exitCode == 0)
        var before = stat()
        stat(fixture.root + "/etc/ld.so.cache", &before)
        let again = oracle()
        #expect(again.exitCode == 0, "\(again.stderr)")
        #expect(again.stdout.contains("19.25") && again.stdout.contains("already there; nothing changed"), "\(again.stdout)")
        var after = stat()
        stat(fixture.root + "/etc/ld.so.cache", &after)
        #expect(before.st_ino == after.st_ino, "ldconfig did not run again")
        #expect(try Files.list(fixture.root + "/opt/oracle")?.sorted() == ["instantclient_19_25"])
    }

    @Test func destAndTypeAreHonoured() throws {
        try standInZips(basePackage: "basic")
        let result = oracle(["--dest", "/opt/ic/", "--type", "basic"])
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(access(fixture.root + "/opt/ic/instantclient_19_25/sqlplus", X_OK) == 0)
        #expect(try Files.readText(fixture.root + "/etc/ld.so.conf.d/oracle-instantclient.conf") == "/opt/ic/instantclient_19_25\n")
        #expect(Files.readLink(fixture.root + "/usr/bin/sqlplus") == "/opt/ic/instantclient_19_25/sqlplus")
        #expect(ldconfigCache().contains("=> /opt/ic/instantclient_19_25/libclntsh.so.19.1"))
    }

    @Test func aMissingZipIsNamedAndNothingIsWritten() throws {
        try standInZips()
        unlink(Paths.join(zipDirectory, "instantclient-sqlplus-linux-\(arch).zip"))
        let result = oracle()
        #expect(result.exitCode == 1)
        #expect(result.stderr.contains("lava-boot: error: missing \(fixture.source)/_ami_/oracle/instantclient-sqlplus-linux-\(arch).zip"),
                "\(result.stderr)")
        #expect(!Files.exists(fixture.root + "/opt/oracle"))
        #expect(!Files.exists(fixture.root + "/etc/ld.so.conf.d"))
    }

    @Test func zipsOfTwoVersionsAreRefused() throws {
        try standInZips(version: "19_25", sqlplusVersion: "21_1")
        let result = oracle()
        #expect(result.exitCode == 1)
        #expect(result.stderr.contains("instantclient_19_25") && result.stderr.contains("instantclient_21_1"), "\(result.stderr)")
        #expect(try Files.list(fixture.root + "/opt/oracle")?.sorted() == [], "nothing installed")
        #expect(!Files.exists(fixture.root + "/usr/bin/sqlplus"))
    }

    /// The zip extractor is the bundles' extractor: each class of hole is refused, nothing lands
    /// outside the destination, and nothing is registered.
    @Test(arguments: [
        ("path-traversal", ZipEntry(name: "instantclient_19_25/../../../etc/evil.conf", text: "pwned\n")),
        ("absolute-path", ZipEntry(name: "/etc/evil.conf", text: "pwned\n")),
        ("symlink-out", ZipEntry(name: "instantclient_19_25/libevil.so", link: "../../../etc/passwd")),
        ("symlink-absolute", ZipEntry(name: "instantclient_19_25/libevil.so", link: "/etc/passwd")),
    ])
    func hostileZipsAreRefused(label: String, entry: ZipEntry) throws {
        try standInZips()
        let name = "instantclient-basiclite-linux\(arch == "x64" ? "x64" : "-arm64").zip"
        try zip(name, [ZipEntry(name: "instantclient_19_25/libclntsh.so.19.1", from: try library("libclntsh.so.19.1"), mode: 0o755), entry])
        let result = oracle()
        #expect(result.exitCode == 1, "\(label): \(result.stdout)")
        #expect(result.stderr.contains("lava-boot: error:"), "\(label): \(result.stderr)")
        #expect(!Files.exists(fixture.root + "/etc/evil.conf"), "\(label)")
        #expect(!Files.exists(fixture.root + "/etc/ld.so.conf.d/oracle-instantclient.conf"), "\(label)")
        #expect(!Files.exists(fixture.root + "/usr/bin/sqlplus"), "\(label)")
        #expect(try Files.list(fixture.root + "/opt/oracle")?.sorted() == [], "\(label): the staging directory is gone")
    }
}

extension OracleTests.ZipEntry: CustomTestStringConvertible {
    var testDescription: String { name }
}
