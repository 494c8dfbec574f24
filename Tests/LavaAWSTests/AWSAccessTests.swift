import Foundation
@testable import LavaAWS
import LavaSigV4
import LavaSystem
import Logging
import Synchronization
import LavaTestSupport
import Testing

/// Credentials chain, config files, region, endpoints, retries: the AWS SDK conventions.
@Suite struct AWSAccessTests {
    let directory = TemporaryDirectory("aws")
    let logger = Logger(label: "test")

    func chain(_ environment: [String: String], profile: String? = nil) throws -> CredentialChain {
        var environment = environment
        environment["HOME"] = directory.path
        return CredentialChain(environment: environment, profile: profile,
                               files: try AWSConfigFiles(environment: environment), imds: nil, logger: logger)
    }

    func writeFiles(credentials: String = "", config: String = "") {
        directory.write(".aws/credentials", credentials)
        directory.write(".aws/config", config)
    }

    /// A source that answers at once the first time, then blocks until the test lets it go.
    final class SlowSource: CredentialProvider, @unchecked Sendable {  // counters touched under `lock` only
        let loading = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var loads = 0

        func load() throws(LavaError) -> ExpiringCredentials? {
            lock.lock(); loads += 1; let count = loads; lock.unlock()
            if count > 1 {
                loading.signal()
                release.wait()
            }
            // Inside the refresh margin but valid: the next caller refreshes.
            return ExpiringCredentials(credentials: AWSCredentials(accessKeyID: "KEY\(count)", secretAccessKey: "s", sessionToken: nil),
                                       expiration: Clock.wallSeconds() + 100, source: "slow")
        }
    }

    @Test func oneRefreshInFlightWhileOthersAreServedTheCurrentCredentials() throws {
        let source = SlowSource()
        let chain = CredentialChain(providers: [source], logger: logger)
        #expect(try chain.current().accessKeyID == "KEY1")
        let refreshed = Mutex<String?>(nil)
        Thread { refreshed.withLock { $0 = try? chain.current().accessKeyID } }.start()
        #expect(source.loading.wait(timeout: .now() + 30) == .success, "the refresh started")
        // The refresh is blocked in the source: another caller must not wait for it.
        let served = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread { served.withLock { $0 = try? chain.current().accessKeyID }; done.signal() }.start()
        #expect(done.wait(timeout: .now() + 30) == .success, "served while the refresh is in flight")
        #expect(served.withLock { $0 } == "KEY1")
        source.release.signal()
        for _ in 0..<3000 where refreshed.withLock({ $0 }) == nil { usleep(10_000) }
        #expect(refreshed.withLock { $0 } == "KEY2")
    }

    @Test func environmentKeysComeFirst() throws {
        writeFiles(credentials: "[default]\naws_access_key_id = PROFILEKEY\naws_secret_access_key = profilesecret\n")
        let credentials = try chain(["AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret", "AWS_SESSION_TOKEN": "envtoken"]).current()
        #expect(credentials == AWSCredentials(accessKeyID: "ENVKEY", secretAccessKey: "envsecret", sessionToken: "envtoken"))
        #expect(!"\(credentials)".contains("envsecret"), "descriptions never show the secret")
        #expect(!"\(credentials)".contains("envtoken"))
    }

    @Test func profilesFromBothFiles() throws {
        writeFiles(credentials: """
            [default]
            aws_access_key_id = DEFAULTKEY
            aws_secret_access_key = defaultsecret

            [ops]
            aws_access_key_id=OPSKEY
            aws_secret_access_key=opssecret
            aws_session_token=opstoken
            """,
                   config: """
            [profile ops]
            region = eu-west-1
            s3 =
              max_concurrent_requests = 4
            [profile ci]
            aws_access_key_id = CIKEY
            aws_secret_access_key = cisecret
            """)
        #expect(try chain([:]).current().accessKeyID == "DEFAULTKEY")
        #expect(try chain(["AWS_PROFILE": "ops"]).current() == AWSCredentials(accessKeyID: "OPSKEY", secretAccessKey: "opssecret", sessionToken: "opstoken"))
        #expect(try chain(["AWS_PROFILE": "ops"], profile: "ci").current().accessKeyID == "CIKEY", "--profile beats AWS_PROFILE")
        let files = try AWSConfigFiles(environment: ["HOME": directory.path])
        #expect(files.profiles["ops"]?["region"] == "eu-west-1")
        #expect(files.profiles["ops"]?["max_concurrent_requests"] == nil, "nested settings are not profile keys")
    }

    @Test func filesNamedByEnvironment() throws {
        let credentials = directory.write("elsewhere/creds", "[x]\naws_access_key_id = XKEY\naws_secret_access_key = xsecret\n")
        let config = directory.write("elsewhere/conf", "[profile x]\nregion = ap-south-1\n")
        let environment = ["AWS_SHARED_CREDENTIALS_FILE": credentials, "AWS_CONFIG_FILE": config, "HOME": "/nonexistent"]
        let files = try AWSConfigFiles(environment: environment)
        #expect(files.profiles["x"]?["region"] == "ap-south-1")
        #expect(files.profiles["x"]?["aws_access_key_id"] == "XKEY")
    }

    @Test func missingNamedProfileIsAnError() throws {
        writeFiles()
        #expect(throws: LavaError.self) { try chain([:], profile: "nope").current() }
        do {
            _ = try chain([:], profile: "nope").current()
        } catch let error as LavaError {
            #expect(error.message.contains("profile nope not found"))
        }
    }

    @Test func noCredentialsAnywhereSaysWhatToDo() throws {
        writeFiles()
        do {
            _ = try chain([:]).current()
            Issue.record("expected an error")
        } catch let error as LavaError {
            #expect(error.code == .credentials)
            #expect(error.message.contains("AWS_ACCESS_KEY_ID"))
        }
    }

    @discardableResult
    func credentialProcess(_ script: String) -> String {
        let path = directory.write("bin/creds.sh", "#!/bin/sh\n" + script, mode: 0o755)
        writeFiles(config: "[profile proc]\ncredential_process = \"\(path)\" --role 'lava worker'\n")
        return path
    }

    @Test func credentialProcessRunsWithoutAShell() throws {
        let future = CivilTime(epochSeconds: Date().timeIntervalSince1970 + 3600).iso8601
        credentialProcess("""
            [ "$1" = "--role" ] && [ "$2" = "lava worker" ] || exit 7
            echo "diagnostics on stderr" >&2
            printf '{"Version": 1, "AccessKeyId": "PROCKEY", "SecretAccessKey": "procsecret", "SessionToken": "proctoken", "Expiration": "\(future)"}'
            """)
        let credentials = try chain(["PATH": "/usr/bin:/bin"], profile: "proc").current()
        #expect(credentials == AWSCredentials(accessKeyID: "PROCKEY", secretAccessKey: "procsecret", sessionToken: "proctoken"))
    }

    @Test func credentialProcessWithOutputLargerThanAPipe() throws {
        // 300 KB of JSON: the parent must read stdout to its end before reaping, or both hang.
        credentialProcess("""
            printf '{"Version": 1, "AccessKeyId": "BIGKEY", "SecretAccessKey": "s", "Padding": "'
            head -c 300000 /dev/zero | tr '\\0' 'x'
            printf '"}'
            """)
        #expect(try chain(["PATH": "/usr/bin:/bin"], profile: "proc").current().accessKeyID == "BIGKEY")
    }

    @Test(arguments: [
        (#"printf '{"Version": 2, "AccessKeyId": "K", "SecretAccessKey": "S"}'"#, "unsupported Version"),
        (#"printf '{"Version": 1, "AccessKeyId": "K", "SecretAccessKey": "S", "Expiration": "2001-01-01T00:00:00Z"}'"#, "expired"),
        ("printf 'not json'", "did not print JSON"),
        ("exit 3", "failed (exit status 3)"),
    ])
    func credentialProcessFailures(_ script: String, _ expected: String) throws {
        credentialProcess(script)
        do {
            _ = try chain(["PATH": "/usr/bin:/bin"], profile: "proc").current()
            Issue.record("expected an error")
        } catch let error as LavaError {
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test func commandLineSplitting() throws {
        #expect(try CredentialProcess.split(#"/bin/tool --a "b c" 'd "e"' f\ g"#) == ["/bin/tool", "--a", "b c", #"d "e""#, "f g"])
        #expect(throws: LavaError.self) { try CredentialProcess.split("tool 'open") }
    }

    @Test func retryPolicyFromEnvironment() throws {
        #expect(try RetryPolicy.from(environment: [:], defaultAttempts: 10).maxAttempts == 10)
        #expect(try RetryPolicy.from(environment: ["AWS_MAX_ATTEMPTS": "2"], defaultAttempts: 10).maxAttempts == 2)
        #expect(throws: LavaError.self) { try RetryPolicy.from(environment: ["AWS_MAX_ATTEMPTS": "zero"], defaultAttempts: 3) }
        let policy = RetryPolicy(maxAttempts: 10)
        for attempt in 1...12 {
            let delay = policy.delay(afterAttempt: attempt)
            #expect(delay >= 0 && delay <= min(20, pow(2, Double(attempt - 1))), "full jitter under the cap")
        }
        let samples = (0..<200).map { _ in policy.delay(afterAttempt: 6) }
        #expect(Set(samples.map { Int($0) }).count > 5, "jittered, not fixed")
    }

    @Test func regionAndEndpoints() throws {
        let base = ["AWS_EC2_METADATA_DISABLED": "true", "HOME": directory.path]
        writeFiles(config: "[default]\nregion = sa-east-1\n")
        #expect(try AWSContext(environment: base, region: nil, profile: nil, logger: logger).region == "sa-east-1")
        #expect(try AWSContext(environment: base.merging(["AWS_DEFAULT_REGION": "us-west-1"]) { $1 }, region: nil, profile: nil, logger: logger).region == "us-west-1")
        #expect(try AWSContext(environment: base.merging(["AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "x"]) { $1 }, region: nil, profile: nil, logger: logger).region == "us-west-2")
        let context = try AWSContext(environment: base.merging(["AWS_REGION": "us-west-2"]) { $1 }, region: "eu-north-1", profile: nil, logger: logger)
        #expect(context.region == "eu-north-1", "--region wins")
        let s3 = S3Client(client: try context.client(.s3))
        #expect(s3.address(bucket: "lava-code", key: "a b/c").endpoint == "https://lava-code.s3.eu-north-1.amazonaws.com")
        #expect(s3.address(bucket: "lava-code", key: "a b/c").path == "/a%20b/c")
        #expect(s3.address(bucket: "lava.code", key: "k").path == "/lava.code/k", "dotted buckets go path-style")
        #expect(try context.client(.dynamodb).endpoint.url == "https://dynamodb.eu-north-1.amazonaws.com")

        let custom = try AWSContext(environment: base.merging(["AWS_ENDPOINT_URL": "http://127.0.0.1:9000/",
                                                               "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8000"]) { $1 },
                                    region: "us-east-1", profile: nil, logger: logger)
        let customS3 = S3Client(client: try custom.client(.s3))
        #expect(customS3.address(bucket: "lava-code", key: "k") == ("http://127.0.0.1:9000", "/lava-code/k"), "path-style on a custom endpoint")
        #expect(try custom.client(.dynamodb).endpoint.url == "http://127.0.0.1:8000")
        #expect(try custom.client(.autoscaling).endpoint.url == "http://127.0.0.1:9000")

        writeFiles()
        #expect(throws: LavaError.self) { try AWSContext(environment: base, region: nil, profile: nil, logger: logger) }
    }

    @Test func timesAndXML() throws {
        #expect(CivilTime.epochSeconds(iso8601: "1970-01-01T00:00:00Z") == 0)
        // Days that do not exist are no dates (credentials "expiring" then would never refresh right).
        #expect(CivilTime.epochSeconds(iso8601: "2026-02-31T00:00:00Z") == nil)
        #expect(CivilTime.epochSeconds(iso8601: "2026-04-31T00:00:00Z") == nil)
        #expect(CivilTime.epochSeconds(iso8601: "2026-02-29T00:00:00Z") == nil)
        #expect(CivilTime.epochSeconds(iso8601: "2028-02-29T00:00:00Z") != nil)
        #expect(CivilTime.epochSeconds(iso8601: "2026-11-23T19:04:05.500Z") == 1_795_460_645.5)
        #expect(CivilTime.epochSeconds(iso8601: "2000-02-29T12:00:00+00:00") == 951_825_600)
        #expect(CivilTime.epochSeconds(iso8601: "2026-13-01T00:00:00Z") == nil)
        #expect(HTTPDate.epochSeconds("Mon, 23 Nov 2026 19:04:05 GMT") == 1_795_460_645)
        let xml = try XMLDocument.parse(Array("""
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>true</IsTruncated>
            <Contents><Key>a&amp;b &lt;c&gt; &#233;</Key><Size>12</Size></Contents><Contents><Key><![CDATA[x<y]]></Key></Contents>
            <Empty/></ListBucketResult>
            """.utf8))
        #expect(xml["IsTruncated"] == "true")
        #expect(xml.all("Contents").map { $0["Key"] } == ["a&b <c> é", "x<y"])
        #expect(throws: XMLParseError.self) { try XMLDocument.parse(Array("<a><b></a>".utf8)) }
        #expect(Base64.encode(Array("lava".utf8)) == "bGF2YQ==")
        #expect(Base64.encode(Array("lava-".utf8)) == "bGF2YS0=")
        #expect(Base64.encode(Array("lava-b".utf8)) == "bGF2YS1i")
    }
}
