import Foundation
import LavaSystem
import LavaTestSupport
import Testing

/// The loopback peers themselves work: moto (with and without SigV4 auth), the fault proxy and
/// the fake IMDS. Checked with plain HTTP and with botocore's signer, never the product's code.
@Suite struct PeerSelfTests {
    // MARK: moto

    /// The fake Auto Scaling API: botocore's own signatures verify, tampered ones do not, every
    /// action parses in botocore, faults, completions and key rotation behave (83 checks).
    @Test func fakeAutoScalingPassesItsSelfTest() throws {
        let result = Command.run(try PeerScripts.python3(), [PeerScripts.path("selftest_autoscaling.py")],
                                 environment: ["HOME": "/nonexistent"])
        #expect(result.exitCode == 0, "\(result.stdout.suffix(2000)) \(result.stderr.suffix(2000))")
        #expect(result.stdout.contains("checks passed"))
    }

    @Test func motoWithoutAuthServesABucketListingAndSeeds() throws {
        let moto = try MotoServer.start()
        #expect(moto.endpoint == "http://127.0.0.1:\(moto.port)")
        try moto.createBucket("lava-code")
        try moto.putObject(bucket: "lava-code", key: "_dist_/pkg/amzn2023/lava-1.0.0.tar.bz2", bytes: [0, 1, 2, 255])
        try moto.putObject(bucket: "lava-code", key: "_boot_/50-lava.sh", text: "#!/bin/sh\n")

        let buckets = try LoopbackHTTP.request(port: moto.port, method: "GET", path: "/")
        #expect(buckets.status == 200)
        #expect(buckets.text.contains("<Name>lava-code</Name>"))

        let listing = try LoopbackHTTP.request(port: moto.port, method: "GET",
                                               path: "/lava-code?list-type=2&prefix=_dist_%2Fpkg%2F",
                                               headers: [MotoServer.anyAuthorization(service: "s3")])
        #expect(listing.status == 200)
        #expect(listing.text.contains("<Key>_dist_/pkg/amzn2023/lava-1.0.0.tar.bz2</Key>"))
        #expect(!listing.text.contains("50-lava.sh"))

        #expect(try moto.getObject(bucket: "lava-code", key: "_dist_/pkg/amzn2023/lava-1.0.0.tar.bz2") == [0, 1, 2, 255])
        #expect(try moto.getObject(bucket: "lava-code", key: "missing") == nil)
        #expect(try moto.listKeys(bucket: "lava-code", prefix: "_boot_/") == ["_boot_/50-lava.sh"])

        try moto.createRealmsTable()
        try moto.putItem(itemJSON: #"{"realm": {"S": "prod"}, "x-workers": {"M": {"_": {"M": {"daemons": {"N": "2"}}}}}}"#)
        let item = try #require(try moto.getItem(realm: "prod"))
        let workers = (item["x-workers"] as? [String: Any])?["M"] as? [String: Any]
        let defaults = (workers?["_"] as? [String: Any])?["M"] as? [String: Any]
        #expect((defaults?["daemons"] as? [String: Any])?["N"] as? String == "2")
        #expect(try moto.getItem(realm: "nope") == nil)

        // DynamoDB over the wire, routed by the credential scope of the Authorization header.
        let getItem = try LoopbackHTTP.request(
            port: moto.port, method: "POST", path: "/",
            headers: [MotoServer.anyAuthorization(service: "dynamodb"),
                      ("X-Amz-Target", "DynamoDB_20120810.GetItem"), ("Content-Type", "application/x-amz-json-1.0")],
            body: Array(#"{"TableName": "lava.realms", "Key": {"realm": {"S": "prod"}}}"#.utf8))
        #expect(getItem.status == 200)
        #expect(getItem.text.contains(#""daemons": {"N": "2"}"#))
    }

    @Test func motoWithAuthChecksSigV4IncludingSlashesInTheQuery() throws {
        let moto = try MotoServer.start(auth: true)
        #expect(moto.accessKeyID.hasPrefix("AKIA"))
        #expect(moto.secretAccessKey.count == 40)
        try moto.createBucket("lava-code")
        try moto.putObject(bucket: "lava-code", key: "_dist_/pkg/amzn2023/lava-1.0.0.tar.bz2", text: "bundle")
        try moto.putObject(bucket: "lava-code", key: "_boot_/50-lava.sh", text: "#!/bin/sh\n")

        // A correct signature over `prefix=_dist_%2Fpkg%2F` (moto re-quotes that unless the
        // launcher keeps the raw URL).
        let url = "\(moto.endpoint)/lava-code?list-type=2&prefix=_dist_%2Fpkg%2F"
        let good = try BotocoreRequest.send(method: "GET", url: url, service: "s3",
                                            accessKey: moto.accessKeyID, secretKey: moto.secretAccessKey)
        #expect(good.status == 200, "\(good.text)")
        #expect(good.text.contains("<Key>_dist_/pkg/amzn2023/lava-1.0.0.tar.bz2</Key>"))
        #expect(!good.text.contains("50-lava.sh"))

        let wrongSecret = try BotocoreRequest.send(method: "GET", url: url, service: "s3",
                                                   accessKey: moto.accessKeyID, secretKey: "not-the-secret")
        #expect(wrongSecret.status == 403)
        #expect(wrongSecret.text.contains("SignatureDoesNotMatch"))

        let unsigned = try LoopbackHTTP.request(port: moto.port, method: "GET", path: "/lava-code?list-type=2")
        #expect(unsigned.status == 403)
        #expect(unsigned.text.contains("<Code>AccessDenied</Code>"))
        let fakeSigned = try LoopbackHTTP.request(port: moto.port, method: "GET", path: "/lava-code?list-type=2",
                                                  headers: [MotoServer.anyAuthorization(service: "s3")])
        #expect(fakeSigned.status == 403)

        // An object GET with a key that needs encoding, and a ranged GET.
        try moto.putObject(bucket: "lava-code", key: "odd key+=.txt", text: "0123456789")
        let odd = try BotocoreRequest.send(method: "GET", url: "\(moto.endpoint)/lava-code/odd%20key%2B%3D.txt",
                                           service: "s3", accessKey: moto.accessKeyID, secretKey: moto.secretAccessKey,
                                           headers: ["Range": "bytes=2-4"])
        #expect(odd.status == 206, "\(odd.text)")
        #expect(odd.text == "234")

        // DynamoDB: signed right is served, signed wrong is refused.
        try moto.createRealmsTable()
        try moto.putItem(itemJSON: #"{"realm": {"S": "prod"}}"#)
        let body = Array(#"{"TableName": "lava.realms", "Key": {"realm": {"S": "prod"}}}"#.utf8)
        let headers = ["X-Amz-Target": "DynamoDB_20120810.GetItem", "Content-Type": "application/x-amz-json-1.0"]
        let item = try BotocoreRequest.send(method: "POST", url: moto.endpoint + "/", service: "dynamodb",
                                            accessKey: moto.accessKeyID, secretKey: moto.secretAccessKey,
                                            headers: headers, body: body)
        #expect(item.status == 200, "\(item.text)")
        #expect(item.text.contains(#""realm": {"S": "prod"}"#))
        let refused = try BotocoreRequest.send(method: "POST", url: moto.endpoint + "/", service: "dynamodb",
                                               accessKey: moto.accessKeyID, secretKey: "wrong",
                                               headers: headers, body: body)
        #expect(refused.status == 403)
    }

    // MARK: fault proxy

    @Test func faultProxyForwardsCutsThrottlesAndFails() throws {
        let moto = try MotoServer.start()
        let proxy = try FaultProxy.start(upstream: moto.endpoint)
        let payload = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try moto.createBucket("bkt")
        try moto.putObject(bucket: "bkt", key: "_dist_/big.bin", bytes: payload)
        let s3 = MotoServer.anyAuthorization(service: "s3")

        let whole = try LoopbackHTTP.request(port: proxy.port, method: "GET", path: "/bkt/_dist_/big.bin", headers: [s3])
        #expect(whole.status == 200)
        #expect(whole.body == payload)
        let etag = try #require(whole.header("ETag"))

        // Cut: headers with the real length, 1000 bytes, then the connection closes.
        try proxy.setFaults(json: #"{"cut_get_after_bytes": 1000, "cut_count": 1}"#)
        let cut = try LoopbackHTTP.request(port: proxy.port, method: "GET", path: "/bkt/_dist_/big.bin", headers: [s3])
        #expect(cut.status == 200)
        #expect(cut.header("Content-Length") == "100000")
        #expect(cut.body == Array(payload[..<1000]))
        let after = try LoopbackHTTP.request(port: proxy.port, method: "GET", path: "/bkt/_dist_/big.bin", headers: [s3])
        #expect(after.body == payload)

        // Range and If-Match reach moto.
        let ranged = try LoopbackHTTP.request(port: proxy.port, method: "GET", path: "/bkt/_dist_/big.bin",
                                              headers: [s3, ("Range", "bytes=1000-1009"), ("If-Match", etag)])
        #expect(ranged.status == 206)
        #expect(ranged.body == Array(payload[1000..<1010]))

        // DynamoDB throttling by X-Amz-Target.
        try moto.createRealmsTable()
        try proxy.setFaults(json: #"{"throttle_target": "DynamoDB_20120810.GetItem", "throttle_count": 2}"#)
        func getItem() throws -> HTTPReply {
            try LoopbackHTTP.request(
                port: proxy.port, method: "POST", path: "/",
                headers: [MotoServer.anyAuthorization(service: "dynamodb"),
                          ("X-Amz-Target", "DynamoDB_20120810.GetItem"), ("Content-Type", "application/x-amz-json-1.0")],
                body: Array(#"{"TableName": "lava.realms", "Key": {"realm": {"S": "prod"}}}"#.utf8))
        }
        for _ in 0..<2 {
            let throttled = try getItem()
            #expect(throttled.status == 400)
            #expect(throttled.header("Content-Type") == "application/x-amz-json-1.0")
            #expect(throttled.text == #"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}"#)
        }
        #expect(try getItem().status == 200)

        // Status faults on a path prefix, any method.
        try proxy.setFaults(json: #"{"status_count": 2, "status": 503, "path_prefix": "/bkt/"}"#)
        let slow = try LoopbackHTTP.request(port: proxy.port, method: "HEAD", path: "/bkt/_dist_/big.bin", headers: [s3])
        #expect(slow.status == 503)
        let slowGet = try LoopbackHTTP.request(port: proxy.port, method: "GET", path: "/bkt/_dist_/big.bin", headers: [s3])
        #expect(slowGet.status == 503)
        #expect(slowGet.text.contains("<Code>SlowDown</Code>"))
        #expect(try LoopbackHTTP.request(port: proxy.port, method: "HEAD", path: "/bkt/_dist_/big.bin", headers: [s3]).status == 200)

        let counters = try proxy.counters()
        let faults = try #require(counters["faults"] as? [String: Any])
        #expect(faults["cut"] as? Int == 1)
        #expect(faults["throttle"] as? Int == 2)
        #expect(faults["status"] as? Int == 2)
        let requests = try #require(counters["requests"] as? [String: Any])
        #expect(requests["GET"] as? Int == 5)
        #expect(requests["POST"] as? Int == 3)
        #expect(requests["HEAD"] as? Int == 2)
        #expect(counters["ranged_gets"] as? Int == 1)
        #expect(counters["last_range"] as? String == "bytes=1000-1009")
        #expect(counters["last_if_match"] as? String == etag)

        // A dropped request: read, then the connection closes with no response.
        try proxy.setFaults(json: #"{"drop_count": 1, "path_prefix": "/bkt/"}"#)
        #expect(throws: PeerError.self) {
            try LoopbackHTTP.request(port: proxy.port, method: "GET", path: "/bkt/_dist_/big.bin", headers: [s3])
        }
        #expect(try LoopbackHTTP.request(port: proxy.port, method: "GET", path: "/bkt/_dist_/big.bin", headers: [s3]).body == payload)
        #expect((try proxy.counters()["faults"] as? [String: Any])?["drop"] as? Int == 1)
    }

    @Test func faultProxyKeepsSignaturesValidAndConnectionsAlive() throws {
        let moto = try MotoServer.start(auth: true)
        let proxy = try FaultProxy.start(upstream: moto.endpoint)
        try moto.createBucket("lava-code")
        try moto.putObject(bucket: "lava-code", key: "_dist_/pkg/a.tar.bz2", text: "a")
        let listing = try BotocoreRequest.send(method: "GET", url: "\(proxy.endpoint)/lava-code?list-type=2&prefix=_dist_%2Fpkg%2F",
                                               service: "s3", accessKey: moto.accessKeyID, secretKey: moto.secretAccessKey)
        #expect(listing.status == 200, "\(listing.text)")
        #expect(listing.text.contains("<Key>_dist_/pkg/a.tar.bz2</Key>"))

        // Two requests on one connection (moto itself closes each one; the proxy does not).
        let scratch = try ScratchFile("curl")
        let result = try runCurl(["-s", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects}\n",
                                  "--aws-sigv4", "aws:amz:us-east-1:s3",
                                  "--user", "\(moto.accessKeyID):\(moto.secretAccessKey)",
                                  "\(proxy.endpoint)/lava-code/_dist_/pkg/a.tar.bz2",
                                  "\(proxy.endpoint)/lava-code/_dist_/pkg/a.tar.bz2"], output: scratch)
        #expect(result.isSuccess)
        #expect(scratch.text.split(separator: "\n") == ["1", "0"])
        let requests = try #require(try proxy.counters()["requests"] as? [String: Any])
        #expect(requests["GET"] as? Int == 3)
    }

    func runCurl(_ arguments: [String], output: ScratchFile) throws -> LavaSystem.ExitStatus {
        let fd = try output.openForWriting()
        var request = SpawnRequest(executable: "/usr/bin/curl", arguments: arguments, environment: PeerScripts.environment())
        request.standardOutput = fd
        let pid = try Reaper.shared.spawn(request)
        close(fd)
        return Reaper.shared.wait(pid)
    }

    // MARK: fake IMDS

    @Test func fakeIMDSServesIMDSv2Only() throws {
        let imds = try FakeIMDS.start(region: "eu-west-2", instanceID: "i-0abc", role: "lava-role", credentialLifetime: 1)
        func get(_ path: String, token: String?) throws -> HTTPReply {
            try LoopbackHTTP.request(port: imds.port, method: "GET", path: path,
                                     headers: token.map { [("X-aws-ec2-metadata-token", $0)] } ?? [])
        }
        func putToken(ttl: String?) throws -> HTTPReply {
            try LoopbackHTTP.request(port: imds.port, method: "PUT", path: "/latest/api/token",
                                     headers: ttl.map { [("X-aws-ec2-metadata-token-ttl-seconds", $0)] } ?? [])
        }

        #expect(try get("/latest/meta-data/placement/region", token: nil).status == 401)
        #expect(try putToken(ttl: nil).status == 400)
        #expect(try putToken(ttl: "0").status == 400)
        #expect(try putToken(ttl: "21601").status == 400)
        let tokenReply = try putToken(ttl: "21600")
        #expect(tokenReply.status == 200)
        #expect(tokenReply.header("X-aws-ec2-metadata-token-ttl-seconds") == "21600")
        let token = tokenReply.text
        #expect(try get("/latest/meta-data/placement/region", token: "bogus").status == 401)
        #expect(try get("/latest/meta-data/placement/region", token: token).text == "eu-west-2")
        #expect(try get("/latest/meta-data/instance-id", token: token).text == "i-0abc")
        #expect(try get("/latest/meta-data/iam/security-credentials/", token: token).text == "lava-role")
        #expect(try get("/latest/meta-data/iam/security-credentials/other", token: token).status == 404)

        let first = try get("/latest/meta-data/iam/security-credentials/lava-role", token: token).json()
        #expect(first["Code"] as? String == "Success")
        #expect(first["Type"] as? String == "AWS-HMAC")
        #expect((first["AccessKeyId"] as? String)?.hasPrefix("ASIA") == true)
        #expect((first["SecretAccessKey"] as? String)?.isEmpty == false)
        #expect((first["Token"] as? String)?.isEmpty == false)
        let expiration = try #require(first["Expiration"] as? String)
        #expect(expiration.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z/) != nil)
        let again = try get("/latest/meta-data/iam/security-credentials/lava-role", token: token).json()
        #expect(again["AccessKeyId"] as? String == first["AccessKeyId"] as? String)

        // A 1 s token and 1 s credentials: both lapse.
        let shortToken = try putToken(ttl: "1").text
        #expect(try get("/latest/meta-data/instance-id", token: shortToken).status == 200)
        usleep(1_200_000)
        #expect(try get("/latest/meta-data/instance-id", token: shortToken).status == 401)
        let rotated = try get("/latest/meta-data/iam/security-credentials/lava-role", token: token).json()
        #expect(rotated["AccessKeyId"] as? String != first["AccessKeyId"] as? String)
        #expect(rotated["SecretAccessKey"] as? String != first["SecretAccessKey"] as? String)

        // Failures on demand, for token PUTs and GETs alike.
        try imds.control(json: #"{"fail_next": 2, "status": 500}"#)
        #expect(try putToken(ttl: "21600").status == 500)
        #expect(try get("/latest/meta-data/instance-id", token: token).status == 500)
        #expect(try get("/latest/meta-data/instance-id", token: token).status == 200)

        // Credentials and paths set at run time.
        try imds.control(json: #"""
            {"credential_lifetime": 3600,
             "credentials": {"AccessKeyId": "AKIDFIXED", "SecretAccessKey": "fixed-secret", "Token": "fixed-token"},
             "paths": {"/latest/meta-data/autoscaling/target-lifecycle-state": "InService"}}
            """#)
        let fixed = try get("/latest/meta-data/iam/security-credentials/lava-role", token: token).json()
        #expect(fixed["AccessKeyId"] as? String == "AKIDFIXED")
        #expect(fixed["SecretAccessKey"] as? String == "fixed-secret")
        #expect(fixed["Token"] as? String == "fixed-token")
        #expect(try get("/latest/meta-data/autoscaling/target-lifecycle-state", token: token).text == "InService")
        try imds.control(json: #"{"paths": {"/latest/meta-data/autoscaling/target-lifecycle-state": null}}"#)
        #expect(try get("/latest/meta-data/autoscaling/target-lifecycle-state", token: token).status == 404)

        let counters = try imds.counters()
        #expect(counters["token_puts"] as? Int == 5)
        #expect(counters["token_ttls"] as? [Int] == [0, 21601, 21600, 1])
        #expect(counters["bad_token_puts"] as? Int == 3)
        #expect(counters["gets_without_token"] as? Int == 1)
        #expect(counters["unauthorized"] as? Int == 3)
        #expect(counters["failures_served"] as? Int == 2)
        #expect(counters["credential_fetches"] as? Int == 4)
    }

    // MARK: harness

    @Test func aPeerThatCannotStartFailsWithItsStderr() throws {
        do throws(PeerError) {
            _ = try PeerProcess(script: "fault_proxy.py", arguments: [])
            Issue.record("fault_proxy.py without --upstream started")
        } catch {
            #expect(error.description.contains("exited before announcing its port"))
            #expect(error.description.contains("--upstream"))
        }
        #expect(throws: PeerError.self) { try PeerProcess(script: "no_such_peer.py", arguments: []) }
    }

    @Test func stoppingAPeerEndsAndReapsIt() throws {
        let imds = try FakeIMDS.start()
        let pid = imds.process.pid
        #expect(imds.process.isRunning)
        #expect(try LoopbackHTTP.request(port: imds.port, method: "GET", path: "/__control__").status == 200)
        imds.stop()
        #expect(!imds.process.isRunning)
        #expect(kill(pid, 0) == -1 && errno == ESRCH)
        #expect(throws: PeerError.self) {
            try LoopbackHTTP.request(port: imds.port, method: "GET", path: "/__control__")
        }
        imds.stop()  // idempotent
    }
}
