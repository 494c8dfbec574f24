import Foundation
import LavaAWS
import LavaJSON
import LavaSystem
import Logging
import LavaTestSupport
import Testing

/// plan / versions / install against moto's S3 and DynamoDB on loopback, through a fault proxy.
@Suite struct AWSInstallTests {
    let moto: MotoServer
    let proxy: FaultProxy
    let fixture = LocalFixture()
    let bucket = "lava-code"
    var arch: String { fixture.machineArch }

    init() throws {
        moto = try MotoServer.start()
        proxy = try FaultProxy.start(upstream: moto.endpoint)
        try moto.createBucket(bucket)
        try moto.createRealmsTable()
        try moto.putItem(itemJSON: #"{"realm": {"S": "prod"}, "x-workers": {"M": {"core": {"M": {"daemons": {"N": "2"}, "env": {"M": {"TOKEN": {"S": "s3cr3t"}}}}}}}}"#)
    }

    var environment: [String: String] {
        ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
         "AWS_ENDPOINT_URL": proxy.endpoint, "AWS_EC2_METADATA_DISABLED": "true", "HOME": fixture.directory.path,
         "LAVA_BOOT_RETRY_BASE_SECONDS": "0.01"]
    }

    func name(_ version: String) -> String { "lava-\(version)-amzn2023-py3.11-\(arch)" }

    @discardableResult
    /// A real bundle in S3 under `prod/_dist_/pkg/amzn2023/`; `padding` makes it large.
    func upload(_ version: String, padding: Int = 0, checksum: Bool = false) throws -> [UInt8] {
        var entries = TestBundle.lava(version: version)
        if padding > 0 {
            var generator = SystemRandomNumberGenerator()
            let noise = (0..<padding).map { _ in Character(UnicodeScalar(UInt8.random(in: 97...122, using: &generator))) }
            entries.append(.file("lib/lava/noise.txt", String(noise)))
        }
        let path = fixture.directory.sub("upload/\(name(version)).tar.bz2")
        TestBundle.write(path, entries)
        let bytes = try #require(try Files.read(path))
        let key = "prod/_dist_/pkg/amzn2023/\(name(version)).tar.bz2"
        if checksum {
            try moto.seed([["service": "s3", "operation": "put_object", "params": ["Bucket": bucket, "Key": key, "ChecksumAlgorithm": "SHA256"],
                            "body_base64": Data(bytes).base64EncodedString()]])
        } else {
            try moto.putObject(bucket: bucket, key: key, bytes: bytes)
        }
        return bytes
    }

    func run(_ arguments: [String], _ extra: [String: String] = [:]) -> CommandResult {
        LavaBootBinary.run(arguments, environment: environment.merging(extra) { $1 })
    }

    func install(_ extra: [String] = [], env: [String: String] = [:]) -> CommandResult {
        run(["install", "s3://\(bucket)/prod", "prod", "core", "--root", fixture.root, "--level", "debug"] + extra, env)
    }

    @Test func planAndInstallFromS3AndTheRealmsTable() throws {
        try upload("8.1.0")
        try upload("8.2.0")
        try moto.putObject(bucket: bucket, key: "prod/_boot_/10-first.sh", text: "#!/bin/sh\n")
        try moto.putObject(bucket: bucket, key: "prod/_boot_/50-lava.sh", text: "#!/bin/sh\n")
        try moto.putObject(bucket: bucket, key: "prod/_boot_/sub/deeper.sh", text: "#!/bin/sh\n")
        try moto.putObject(bucket: bucket, key: "prod/_boot_/README.md", text: "docs\n")

        let plan = run(["plan", "s3://\(bucket)/prod", "prod", "core", "--root", fixture.root, "--json"])
        #expect(plan.exitCode == 0, "\(plan.stderr)")
        let json = try JSONValue(parsing: plan.stdout)
        #expect(json["current"] == .string(name("8.2.0") + ".tar.bz2"))
        #expect(json["workers"] == json["workers"])
        guard case .array(let workers)? = json["workers"] else { Issue.record("no workers"); return }
        #expect(workers.first?["daemons"] == .number("2"))
        #expect(json["scriptlets"].map { "\($0)" }?.contains("deeper") == false, "direct children only")
        #expect(json["scriptlets"].map { "\($0)" }?.contains("README") == false)

        let first = install()
        #expect(first.exitCode == 0, "\(first.stderr)")
        let release = fixture.root + "/opt/lava/releases/\(name("8.2.0"))"
        #expect(try Files.readText(release + "/lib/lava/version.py") == "VERSION = '8.2.0'\n")
        #expect(Files.readLink(fixture.root + "/opt/lava/current") == "releases/\(name("8.2.0"))")
        #expect(!(first.stdout + first.stderr).contains("s3cr3t"), "no env value in any log line")
        #expect(!(first.stderr).contains("testing/2"), "no credential in any log line")

        // Fast reboot: the same object (ETag and size) is reused with no GET of the bundle.
        let second = install()
        #expect(second.exitCode == 0)
        #expect(second.stdout.contains("reused"))
        #expect(!second.stderr.contains("GET 127.0.0.1:\(proxy.port)/\(bucket)/prod/_dist_/pkg/amzn2023/\(name("8.2.0")).tar.bz2"),
                "\(second.stderr)")

        // A changed object is fetched again.
        try upload("8.2.0", padding: 100)
        let third = install()
        #expect(third.exitCode == 0)
        #expect(third.stdout.contains("installed lava-8.2.0"))
        #expect(Files.exists(release + "/lib/lava/noise.txt"))
    }

    /// An install.sh bundle from S3 is fetched with one GET (install.sh comes out of the copy
    /// install.sh is given), and a reboot with the same object fetches nothing and runs nothing.
    @Test func aBundleInstallFetchesTheObjectOnceAndAReinstallNotAtAll() throws {
        let path = fixture.directory.sub("upload/lava-7.9.0.tar.bz2")
        TestBundle.write(path, TestBundle.recordingInstallScript("7.9.0"))
        let key = "prod/_dist_/pkg/amzn2023/lava-7.9.0.tar.bz2"
        try moto.putObject(bucket: bucket, key: key, bytes: try #require(try Files.read(path)))
        func bundleGets() throws -> Int {
            let log = try proxy.counters()["log"] as? [[String: Any]] ?? []
            return log.filter { $0["method"] as? String == "GET" && ($0["path"] as? String)?.hasPrefix("/\(bucket)/\(key)") == true }.count
        }
        let runs = fixture.root + "/usr/local/install-runs"

        let first = install()
        #expect(first.exitCode == 0, "\(first.stderr)")
        #expect(try Files.readText(runs) == "7.9.0\n")
        #expect(try bundleGets() == 1, "one GET of the bundle")

        _ = try proxy.setFaults(json: #"{"reset": true}"#)
        let second = install()
        #expect(second.exitCode == 0, "\(second.stderr)")
        #expect(second.stdout.contains("reused    lava-7.9.0.tar.bz2"), "\(second.stdout)")
        #expect(try Files.readText(runs) == "7.9.0\n", "install.sh is not run again")
        #expect(try bundleGets() == 0)
    }

    @Test func aCutDownloadResumesWithRangeAndIfMatch() throws {
        try upload("8.2.0", padding: 1_200_000)
        _ = try proxy.setFaults(json: #"{"cut_get_after_bytes": 200000, "cut_count": 2}"#)
        let result = install()
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(result.stderr.contains("resuming"))
        let counters = try proxy.counters()
        #expect((counters["ranged_gets"] as? Int ?? 0) >= 2, "\(counters)")
        #expect((counters["last_if_match"] as? String)?.isEmpty == false, "resumes name the ETag: \(counters)")
        #expect((counters["last_range"] as? String)?.hasPrefix("bytes=") == true)
        let installed = try #require(try Files.read(fixture.root + "/opt/lava/releases/\(name("8.2.0"))/lib/lava/noise.txt"))
        #expect(installed.count == 1_200_000, "byte-identical after resuming")
    }

    /// The whole streamed path (HTTP body, bzip2, tar, disk) in bounded memory, measured in the
    /// install's own process, with as many decoding threads as an install uses on any machine.
    @Test func anS3InstallStaysInBoundedMemory() throws {
        try upload("8.2.0", padding: 20_000_000)
        var environment = self.environment
        // ParallelBzip2Decoder.maximumDefaultThreads (LavaBzip2Tests holds it to this number).
        environment["LAVA_BOOT_DECODE_THREADS"] = "4"
        let measured = PeakMemory.run(LavaBootBinary.path, ["install", "s3://\(bucket)/prod", "prod", "core", "--root", fixture.root,
                                                            "--level", "error"], environment: environment)
        #expect(measured.exitCode == 0)
        #expect(measured.peakKiB < 64 * 1024, "peak RSS \(measured.peakKiB) KiB")
        let installed = try #require(try Files.read(fixture.root + "/opt/lava/releases/\(name("8.2.0"))/lib/lava/noise.txt"))
        #expect(installed.count == 20_000_000)
    }

    /// A bundle of several 2 MiB parts comes as parallel ranged GETs, each pinned to the ETag; a
    /// part cut short resumes on its own; the whole object's checksum is still verified.
    @Test func aLargeBundleComesInParallelRangedPartsAndArrivesWhole() throws {
        try upload("8.2.0", padding: 24_000_000, checksum: true)
        try proxy.setFaults(json: #"{"cut_get_after_bytes": 1000000, "cut_count": 1}"#)
        let result = install()
        #expect(result.exitCode == 0, "\(result.stderr)")
        let counters = try proxy.counters()
        let log = counters["log"] as? [[String: Any]] ?? []
        let ranges = log.compactMap { $0["range"] as? String }
        #expect(ranges.count >= 4, "one ranged GET per part at least: \(ranges)")
        #expect(ranges.contains("bytes=0-2097151") && ranges.contains("bytes=2097152-4194303"), "\(ranges)")
        #expect(result.stderr.contains("resuming"), "the cut part resumed: \(result.stderr)")
        let installed = try #require(try Files.read(fixture.root + "/opt/lava/releases/\(name("8.2.0"))/lib/lava/noise.txt"))
        #expect(installed.count == 24_000_000)
    }

    @Test func checksumsAreVerifiedWhenS3HasThem() throws {
        try upload("8.2.0", padding: 1000, checksum: true)
        let result = install()
        #expect(result.exitCode == 0, "\(result.stderr)")
    }

    /// The realm read is bounded by time, not a count (SPEC §9): a table that lets one read in
    /// 20 through still serves the boot, whatever AWS_MAX_ATTEMPTS says; other errors keep the count.
    @Test func throttledRealmReadsAreRetriedForATimeNotACount() throws {
        try upload("8.2.0")
        _ = try proxy.setFaults(json: #"{"throttle_target": "DynamoDB_20120810.GetItem", "throttle_count": 19}"#)
        let patient = run(["plan", "s3://\(bucket)/prod", "prod", "core", "--root", fixture.root], ["AWS_MAX_ATTEMPTS": "2"])
        #expect(patient.exitCode == 0, "19 throttles, then the read: \(patient.stderr)")
        let counters = try proxy.counters()
        #expect((counters["faults"] as? [String: Any])?["throttle"] as? Int == 19)

        // Throttles do not use up the attempts other errors get: five, then a 500, still succeed.
        _ = try proxy.setFaults(json: #"{"reset": true, "throttle_target": "DynamoDB_20120810.GetItem", "throttle_count": 5, "status_count": 1, "status": 500, "path_prefix": "/", "method": "POST"}"#)
        let mixed = run(["plan", "s3://\(bucket)/prod", "prod", "core", "--root", fixture.root], ["AWS_MAX_ATTEMPTS": "2"])
        #expect(mixed.exitCode == 0, "5 throttles and a 500, then the read: \(mixed.stderr)")
        let faults = try proxy.counters()["faults"] as? [String: Any]
        #expect(faults?["throttle"] as? Int == 5 && faults?["status"] as? Int == 1, "\(String(describing: faults))")

        _ = try proxy.setFaults(json: #"{"reset": true, "status_count": 5, "status": 500, "path_prefix": "/", "method": "POST"}"#)
        let impatient = run(["plan", "s3://\(bucket)/prod", "prod", "core", "--root", fixture.root], ["AWS_MAX_ATTEMPTS": "2"])
        #expect(impatient.exitCode == 1)
        #expect(impatient.stderr.contains("gave up after 2 attempts"), "\(impatient.stderr)")
    }

    @Test func serverErrorsAreRetried() throws {
        try upload("8.2.0")
        // versions makes the default 3 attempts: two 503s are absorbed, three are not.
        _ = try proxy.setFaults(json: #"{"status_count": 2, "status": 503, "path_prefix": "/\#(bucket)"}"#)
        let result = run(["versions", "s3://\(bucket)/prod", "--root", fixture.root])
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(result.stdout.contains("8.2.0"))
        _ = try proxy.setFaults(json: #"{"status_count": 3, "status": 503, "path_prefix": "/\#(bucket)"}"#)
        let failed = run(["versions", "s3://\(bucket)/prod", "--root", fixture.root])
        #expect(failed.exitCode == 1)
        #expect(failed.stderr.contains("SlowDown"), "\(failed.stderr)")
        #expect(failed.stderr.contains("gave up after 3 attempts"))
    }

    @Test func listingsFollowEveryPage() throws {
        try upload("8.2.0")
        let calls: [[String: Any]] = (0..<1100).map { index in
            ["service": "s3", "operation": "put_object",
             "params": ["Bucket": bucket, "Key": "prod/_dist_/pkg/amzn2023/zz-other-\(index).txt", "Body": "x"]]
        }
        try moto.seed(calls)
        try upload("8.3.0")  // sorts after the filler keys
        let result = run(["versions", "s3://\(bucket)/prod", "--root", fixture.root, "--level", "debug"])
        #expect(result.exitCode == 0, "\(result.stderr)")
        #expect(result.stdout.contains("8.3.0"))
        #expect(result.stdout.contains("8.2.0"))
        let listings = result.stderr.split(separator: "\n").filter { $0.contains("GET 127.0.0.1:\(proxy.port)/\(bucket)/ ") }
        #expect(listings.count == 2, "1,100+ keys take two pages: \(listings)")
    }

    @Test func aBootSurvivesAThrottledRealmsTable() throws {
        let records = fixture.recordDirectory()
        try moto.putItem(itemJSON: #"{"realm": {"S": "fleet"}, "x-workers": {"M": {"_": {"M": {"env": {"M": {"FAKE_RECORD_DIR": {"S": "\#(records)"}}}}}}}}"#)
        fixture.workerBundle("8.2.0")
        let bundle = try #require(try Files.read(fixture.area + "/_dist_/pkg/amzn2023/\(name("8.2.0")).tar.bz2"))
        try moto.putObject(bucket: bucket, key: "prod/_dist_/pkg/amzn2023/\(name("8.2.0")).tar.bz2", bytes: bundle)
        try moto.putObject(bucket: bucket, key: "prod/_boot_/10-hello.sh", text: "#!/bin/sh\necho hello\n")
        _ = try proxy.setFaults(json: #"{"throttle_target": "DynamoDB_20120810.GetItem", "throttle_count": 5}"#)
        let agent = try RunningAgent(["boot", "s3://\(bucket)/prod", "fleet", "core", "--root", fixture.root, "--user-mode",
                                      "--stop-timeout", "20s"], environment: environment)
        #expect(waitUntil(timeout: 30) { !WorkerRecord.all(in: records).isEmpty }, "\(agent.log)")
        #expect(agent.log.contains("hello"))
        #expect(agent.stop() == .exited(0))
        let counters = try proxy.counters()
        #expect((counters["faults"] as? [String: Any])?["throttle"] as? Int == 5, "five reads were throttled: \(counters)")
    }

    /// SIGTERM while the realm read waits out a throttled table: the boot stops at once, runs no
    /// scriptlet and starts nothing (SPEC §5: a stop trigger is answered in every phase).
    @Test func aStopWhileTheRealmsTableThrottlesEndsTheBootAtOnce() throws {
        try moto.putObject(bucket: bucket, key: "prod/_boot_/10-hello.sh", text: "#!/bin/sh\necho hello\n")
        _ = try proxy.setFaults(json: #"{"throttle_target": "DynamoDB_20120810.GetItem", "throttle_count": 100000}"#)
        // Real waits (seconds between reads): the stop must cut them short, not outlast them.
        let agent = try RunningAgent(["boot", "s3://\(bucket)/prod", "prod", "core", "--root", fixture.root, "--user-mode"],
                                     environment: environment.merging(["LAVA_BOOT_RETRY_BASE_SECONDS": "1"]) { $1 })
        let throttled = waitUntil(timeout: 60) {
            ((try? proxy.counters()["faults"] as? [String: Any]) ?? nil)?["throttle"] as? Int ?? 0 >= 2
        }
        #expect(throttled, "the boot is waiting on the table: \(agent.log)")
        let before = (try proxy.counters()["faults"] as? [String: Any])?["throttle"] as? Int ?? 0
        // The table's waits are 8 s and more by now; a boot that ignored the stop would outlast 7 s.
        #expect(agent.stop(timeout: 7) == .exited(0), "\(agent.log)")
        #expect(agent.log.contains("while reading the realm; nothing was started"), "\(agent.log)")
        #expect(!agent.log.contains("hello"))
        let after = (try proxy.counters()["faults"] as? [String: Any])?["throttle"] as? Int ?? 0
        #expect(after <= before + 1, "no read after the stop: \(before) -> \(after)")
    }

    @Test func missingRealmAndMissingTable() throws {
        try upload("8.2.0")
        let realm = run(["plan", "s3://\(bucket)/prod", "staging", "core", "--root", fixture.root])
        #expect(realm.exitCode == 1)
        #expect(realm.stderr == "lava-boot: error: staging: no such realm\n")
        let table = run(["plan", "s3://\(bucket)/prod", "prod", "core", "--root", fixture.root, "--realms-table", "nope"])
        #expect(table.exitCode == 1)
        #expect(table.stderr.contains("realms table nope not found"), "\(table.stderr)")
    }
}

/// Credentials from the instance role, through a fake IMDSv2.
@Suite struct IMDSCredentialTests {
    @Test func roleCredentialsAndRegionComeFromIMDSv2() throws {
        let moto = try MotoServer.start()
        let imds = try FakeIMDS.start(region: "us-east-1")
        let fixture = LocalFixture()
        try moto.createBucket("lava-code")
        try moto.createRealmsTable()
        try moto.putItem(itemJSON: #"{"realm": {"S": "prod"}}"#)
        let bundle = fixture.directory.sub("b.tar.bz2")
        TestBundle.write(bundle, TestBundle.lava(version: "8.2.0"))
        try moto.putObject(bucket: "lava-code", key: "prod/_dist_/pkg/amzn2023/lava-8.2.0-amzn2023-py3.11-\(fixture.machineArch).tar.bz2",
                           bytes: try #require(try Files.read(bundle)))
        _ = try imds.control(json: #"{"fail_next": 2, "status": 500}"#)
        let result = LavaBootBinary.run(["install", "s3://lava-code/prod", "prod", "core", "--root", fixture.root],
                                        environment: ["AWS_ENDPOINT_URL": moto.endpoint, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint,
                                                      "HOME": fixture.directory.path, "LAVA_BOOT_RETRY_BASE_SECONDS": "0.01"])
        #expect(result.exitCode == 0, "\(result.stderr)")
        let counters = try imds.counters()
        let text = "\(counters)"
        #expect(text.contains("21600"), "token TTL requested: \(text)")
        let withoutToken = counters["gets_without_token"] as? Int ?? -1
        #expect(withoutToken == 0, "every GET carries the token: \(text)")
    }
}

/// moto with signature checking on: lava-boot's SigV4 is accepted, a wrong secret is not.
@Suite struct SignedRequestTests {
    @Test func correctSignaturesPassAndAWrongSecretIsRefused() throws {
        let moto = try MotoServer.start(auth: true)
        let fixture = LocalFixture()
        try moto.createBucket("lava-code")
        try moto.createRealmsTable()
        try moto.putItem(itemJSON: #"{"realm": {"S": "prod"}, "x-workers": {"M": {"_": {"M": {"version": {"S": "8.2.0"}}}}}}"#)
        let bundle = fixture.directory.sub("b.tar.bz2")
        TestBundle.write(bundle, TestBundle.lava(version: "8.2.0"))
        try moto.putObject(bucket: "lava-code", key: "prod/_dist_/pkg/amzn2023/lava-8.2.0-amzn2023-py3.11-\(fixture.machineArch).tar.bz2",
                           bytes: try #require(try Files.read(bundle)))
        func run(secret: String) -> CommandResult {
            LavaBootBinary.run(["install", "s3://lava-code/prod", "prod", "core", "--root", fixture.root],
                               environment: ["AWS_ACCESS_KEY_ID": moto.accessKeyID, "AWS_SECRET_ACCESS_KEY": secret,
                                             "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto.endpoint,
                                             "AWS_EC2_METADATA_DISABLED": "true", "HOME": fixture.directory.path])
        }
        // GetItem, HeadObject, and GetObject all signed; the listing of `_boot_/` has '/' in its prefix.
        let good = run(secret: moto.secretAccessKey)
        #expect(good.exitCode == 0, "\(good.stderr)")
        #expect(Files.readLink(fixture.root + "/opt/lava/current") != nil)
        let bad = run(secret: "wrong" + moto.secretAccessKey)
        #expect(bad.exitCode == 1)
        #expect(bad.stderr.contains("HTTP 403"), "\(bad.stderr)")
        #expect(!bad.stderr.contains(moto.secretAccessKey), "the secret is never printed")
    }
}

/// Instance-role credentials are refreshed before they expire; IMDS answers always carry the token.
@Suite struct IMDSRotationTests {
    @Test func credentialsAreRefreshedBeforeTheyExpire() throws {
        // 302 s of life: fresh for 2 s under the 300 s refresh margin, then due for renewal.
        let imds = try FakeIMDS.start(region: "eu-west-1", credentialLifetime: 302)
        let logger = Logger(label: "test")
        let environment = ["AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint, "HOME": "/nonexistent",
                           "LAVA_BOOT_RETRY_BASE_SECONDS": "0.01"]
        let context = try AWSContext(environment: environment, region: nil, profile: nil, logger: logger)
        #expect(context.region == "eu-west-1", "region from IMDS placement")
        let first = try context.credentials.current()
        #expect(try context.credentials.current() == first, "cached while fresh")
        let fetchesWhileFresh = try imds.counters()["credential_fetches"] as? Int ?? 0
        sleep(3)
        _ = try context.credentials.current()
        #expect(try imds.counters()["credential_fetches"] as? Int ?? 0 > fetchesWhileFresh, "fetched again inside the refresh margin")
        // IMDS rotates the role's keys: the next refresh picks the new ones up.
        _ = try imds.control(json: #"{"expire_now": true}"#)
        let rotated = try context.credentials.current()
        #expect(rotated.accessKeyID != first.accessKeyID, "rotated keys in use before the old ones expired")
        let counters = try imds.counters()
        #expect(counters["gets_without_token"] as? Int == 0)
        #expect((counters["token_puts"] as? Int ?? 0) >= 1)
        #expect((counters["token_ttls"] as? [Int])?.allSatisfy { $0 == 21600 } == true, "\(counters)")
    }

    @Test func imdsDisabledMeansNoInstanceCredentials() throws {
        let context = try AWSContext(environment: ["AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1", "HOME": "/nonexistent"],
                                     region: nil, profile: nil, logger: Logger(label: "test"))
        #expect(context.imds == nil)
        #expect(throws: LavaError.self) { try context.credentials.current() }
    }
}
