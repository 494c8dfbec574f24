import CShim
import Dispatch
import Foundation
import LavaSystem
import LavaTestSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// Loopback protocol peers for the tests (SPEC §13): moto's server for S3 and DynamoDB, a
// fault-injecting reverse proxy, and a fake IMDSv2. Each is a Python script under
// `Tests/LavaIntegrationTests/Peers/`, started through the project's own Reaper (never Foundation's
// `Process`, whose `waitpid(pid)` would race the reaper's `wait4(-1)`).
//
// A peer that cannot start throws: a test that needs moto fails, it never skips.

extension PeerScripts {
    /// `Tests/LavaIntegrationTests/Peers/`, or `LAVA_PEERS_DIR`.
    static var directory: String {
        if let override = ProcessInfo.processInfo.environment["LAVA_PEERS_DIR"] { return override }
        // #filePath is …/Tests/LavaIntegrationTests/Support/Peers.swift.
        return Paths.join(Paths.parent(of: Paths.parent(of: #filePath)), "Peers")
    }

    static func path(_ script: String) -> String { Paths.join(directory, script) }
}

extension PeerProcess {
    /// `Peers/<script>` of this test target.
    convenience init(script: String, arguments: [String], environment: [String: String] = [:], timeout: Double = 20) throws(PeerError) {
        try self.init(scriptPath: PeerScripts.path(script), arguments: arguments, environment: environment, timeout: timeout)
    }
}

// MARK: - Plain HTTP on loopback

/// One HTTP response as it arrived: `body` is what was received (shorter than Content-Length
/// when the peer cut the connection).
struct HTTPReply: Sendable {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// The body parsed as a JSON object.
    func json() throws(PeerError) -> [String: Any] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw PeerError("not a JSON object (HTTP \(status)): \(text)")
        }
        return object
    }
}

/// A minimal HTTP/1.1 client for 127.0.0.1 (one request per connection, `Connection: close`),
/// for talking to the peers' control endpoints and to moto without the product's code.
enum LoopbackHTTP {
    static func request(port: Int, method: String, path: String, headers: [(String, String)] = [],
                        body: [UInt8] = [], timeout: Double = 60) throws(PeerError) -> HTTPReply {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw PeerError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if connected != 0 {
            throw PeerError("connect 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
        }
        var head = "\(method) \(path) HTTP/1.1\r\n"
        let names = Set(headers.map { $0.0.lowercased() })
        if !names.contains("host") { head += "Host: 127.0.0.1:\(port)\r\n" }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if !names.contains("content-length") && (!body.isEmpty || ["POST", "PUT"].contains(method)) {
            head += "Content-Length: \(body.count)\r\n"
        }
        head += "Connection: close\r\n\r\n"
        try sendAll(fd, Array(head.utf8) + body)

        var received = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    throw PeerError("\(method) \(path) on port \(port): no response within \(Int(timeout)) s")
                }
                if errno == ECONNRESET && !received.isEmpty { break }
                throw PeerError("recv from port \(port): \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            received.append(contentsOf: buffer[0..<count])
        }
        return try parse(received, method: method, port: port)
    }

    private static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws(PeerError) {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes {
                send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw PeerError("send: \(String(cString: strerror(errno)))")
            }
            offset += count
        }
    }

    private static func parse(_ data: [UInt8], method: String, port: Int) throws(PeerError) -> HTTPReply {
        var offset = 0
        var status = 0
        var headers: [(name: String, value: String)] = []
        // Skip interim 1xx responses.
        repeat {
            guard let end = headEnd(data, from: offset) else {
                throw PeerError("port \(port) closed the connection without a complete response (\(data.count) bytes)")
            }
            let lines = String(decoding: data[offset..<end], as: UTF8.self).components(separatedBy: "\r\n")
            let statusWords = lines[0].split(separator: " ", maxSplits: 2)
            guard statusWords.count >= 2, let code = Int(statusWords[1]) else {
                throw PeerError("bad status line from port \(port): \(lines[0])")
            }
            status = code
            headers = lines.dropFirst().compactMap { line in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
            offset = end + 4
        } while (100..<200).contains(status)
        var body = Array(data[offset...])
        let reply = HTTPReply(status: status, headers: headers, body: [])
        if method == "HEAD" || status == 204 || status == 304 {
            body = []
        } else if reply.header("Transfer-Encoding")?.lowercased() == "chunked" {
            body = dechunk(body)
        } else if let length = reply.header("Content-Length").flatMap(Int.init), body.count > length {
            body = Array(body[..<length])
        }
        return HTTPReply(status: status, headers: headers, body: body)
    }

    private static func headEnd(_ data: [UInt8], from start: Int) -> Int? {
        guard data.count >= start + 4 else { return nil }
        for index in start...(data.count - 4)
        where data[index] == 13 && data[index + 1] == 10 && data[index + 2] == 13 && data[index + 3] == 10 {
            return index
        }
        return nil
    }

    private static func dechunk(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](), index = 0
        while index < data.count {
            guard let lineEnd = data[index...].firstIndex(of: 10) else { break }
            let sizeText = String(decoding: data[index..<lineEnd], as: UTF8.self)
                .split(separator: ";")[0].trimmingCharacters(in: .whitespacesAndNewlines)
            guard let size = Int(sizeText, radix: 16), size > 0 else { break }
            let start = lineEnd + 1
            let end = min(start + size, data.count)
            out.append(contentsOf: data[start..<end])
            index = end + 2
        }
        return out
    }
}

// MARK: - Python helpers

/// Runs `python3 -c CODE ARGS…` to completion; stdout and stderr kept apart.
enum Python {
    struct Result {
        var status: LavaSystem.ExitStatus
        var stdout: String
        var stderr: String
    }

    static func run(_ code: String, _ arguments: [String] = [], timeout: Double = 60) throws(PeerError) -> Result {
        let python = try PeerScripts.python3()
        let out = try ScratchFile("py-out"), err = try ScratchFile("py-err")
        let outFD = try out.openForWriting()
        let errFD: Int32
        do throws(PeerError) { errFD = try err.openForWriting() } catch { close(outFD); throw error }
        var request = SpawnRequest(executable: python, arguments: ["-c", code] + arguments,
                                   environment: PeerScripts.environment())
        request.standardOutput = outFD
        request.standardError = errFD
        let exit = ChildExit()
        let pid: pid_t
        do {
            pid = try Reaper.shared.spawn(request) { status in exit.record(status) }
        } catch {
            close(outFD)
            close(errFD)
            throw PeerError("cannot run python3: \(error)")
        }
        close(outFD)
        close(errFD)
        guard let status = exit.wait(seconds: timeout) else {
            kill(pid, SIGKILL)
            _ = exit.wait(seconds: 30)
            throw PeerError("python3 helper did not finish within \(Int(timeout)) s; stderr:\n\(err.text)")
        }
        return Result(status: status, stdout: out.text, stderr: err.text)
    }
}

/// A request signed by botocore (an independent SigV4 implementation) and sent with
/// http.client, exactly as given: for checking the peers, never the product's signer.
enum BotocoreRequest {
    static let code = #"""
import base64, hashlib, http.client, json, sys
from urllib.parse import urlsplit
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
spec = json.load(open(sys.argv[1]))
body = base64.b64decode(spec.get("body_base64", ""))
request = AWSRequest(method=spec["method"], url=spec["url"], data=body, headers=dict(spec.get("headers", {})))
signer = SigV4Auth
if spec["service"] == "s3":
    signer = S3SigV4Auth
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
signer(Credentials(spec["access_key"], spec["secret_key"], spec.get("token")), spec["service"], spec["region"]).add_auth(request)
url = urlsplit(spec["url"])
connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
connection.request(spec["method"], url.path + ("?" + url.query if url.query else ""), body=body or None, headers=dict(request.headers))
response = connection.getresponse()
data = response.read()
print("RESULT " + json.dumps({"status": response.status, "headers": response.getheaders(), "body_base64": base64.b64encode(data).decode()}))
"""#

    /// `url` is sent byte for byte as given (so percent-encode the query yourself).
    static func send(method: String, url: String, service: String, region: String = "us-east-1",
                     accessKey: String, secretKey: String, sessionToken: String? = nil,
                     headers: [String: String] = [:], body: [UInt8] = []) throws(PeerError) -> HTTPReply {
        var spec: [String: Any] = [
            "method": method, "url": url, "service": service, "region": region,
            "access_key": accessKey, "secret_key": secretKey, "headers": headers,
            "body_base64": Data(body).base64EncodedString(),
        ]
        if let sessionToken { spec["token"] = sessionToken }
        let file = try ScratchFile("botocore")
        guard let json = try? JSONSerialization.data(withJSONObject: spec),
              (try? Files.writeAtomically(file.path, Array(json), mode: 0o600)) != nil
        else { throw PeerError("cannot write the botocore request") }
        let result = try Python.run(code, [file.path])
        guard result.status.isSuccess,
              let line = result.stdout.split(separator: "\n").last(where: { $0.hasPrefix("RESULT ") }),
              let object = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(7).utf8)) as? [String: Any],
              let status = object["status"] as? Int,
              let body = (object["body_base64"] as? String).flatMap({ Data(base64Encoded: $0) })
        else {
            throw PeerError("botocore request failed (\(result.status)):\n\(result.stdout)\n\(result.stderr)")
        }
        let headerPairs = (object["headers"] as? [[String]] ?? []).compactMap { pair in
            pair.count == 2 ? (name: pair[0], value: pair[1]) : nil
        }
        return HTTPReply(status: status, headers: headerPairs, body: Array(body))
    }
}

private func jsonText(_ object: Any) throws(PeerError) -> String {
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
        throw PeerError("not JSON-serializable: \(object)")
    }
    return String(decoding: data, as: UTF8.self)
}

private func jsonObject(_ text: String) throws(PeerError) -> Any {
    guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else {
        throw PeerError("not JSON: \(text)")
    }
    return object
}

// MARK: - moto

/// moto's server on 127.0.0.1 serving S3 and DynamoDB (and the rest of moto), region
/// us-east-1, account 123456789012. With `auth`, every request must be SigV4-signed with
/// `accessKeyID`/`secretAccessKey` (an IAM user with an allow-all policy); without it, any
/// signature is accepted, but S3 GETs and every DynamoDB call still need an Authorization
/// header to be routed and allowed (see `anyAuthorization`).
final class MotoServer: Sendable {
    let process: PeerProcess
    let auth: Bool
    /// The keys moto accepts: the IAM user's in auth mode, anything ("testing") otherwise.
    let accessKeyID: String
    let secretAccessKey: String

    var port: Int { process.port }
    var endpoint: String { "http://127.0.0.1:\(port)" }

    private init(process: PeerProcess, auth: Bool) throws(PeerError) {
        self.process = process
        self.auth = auth
        if auth {
            guard let keys = process.announcements["KEYS"], keys.count == 2 else {
                throw PeerError("moto_launch.py --auth on announced no KEYS line; stderr:\n\(process.stderrText)")
            }
            accessKeyID = keys[0]
            secretAccessKey = keys[1]
        } else {
            accessKeyID = "testing"
            secretAccessKey = "testing"
        }
    }

    static func start(auth: Bool = false) throws(PeerError) -> MotoServer {
        let process = try PeerProcess(script: "moto_launch.py", arguments: ["--auth", auth ? "on" : "off"])
        return try MotoServer(process: process, auth: auth)
    }

    func stop() { process.stop() }

    /// An Authorization header moto (without auth) takes as signed for `service` ("s3" or
    /// "dynamodb"): it routes the request by the credential scope and checks nothing else.
    static func anyAuthorization(service: String, region: String = "us-east-1") -> (String, String) {
        ("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20250101/\(region)/\(service)/aws4_request, "
            + "SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000000000000000")
    }

    /// Runs boto3 calls in the moto process (signed with the right keys in either mode) and
    /// returns their results: `[{"service": "s3", "operation": "create_bucket", "params": {…}}]`;
    /// a call may carry `"body_base64"` for S3 bodies. Bytes in results come back base64.
    @discardableResult
    func seed(_ calls: [[String: Any]]) throws(PeerError) -> [Any] {
        let body = try jsonText(["calls": calls])
        let reply = try LoopbackHTTP.request(port: port, method: "POST", path: "/__seed__",
                                             headers: [("Content-Type", "application/json")], body: Array(body.utf8))
        let answer = try reply.json()
        guard reply.status == 200, let results = answer["results"] as? [Any] else {
            throw PeerError("moto seed failed (HTTP \(reply.status)): \(reply.text)")
        }
        return results
    }

    func createBucket(_ bucket: String) throws(PeerError) {
        try seed([["service": "s3", "operation": "create_bucket", "params": ["Bucket": bucket]]])
    }

    func putObject(bucket: String, key: String, bytes: [UInt8]) throws(PeerError) {
        try seed([["service": "s3", "operation": "put_object", "params": ["Bucket": bucket, "Key": key],
                   "body_base64": Data(bytes).base64EncodedString()]])
    }

    func putObject(bucket: String, key: String, text: String) throws(PeerError) {
        try putObject(bucket: bucket, key: key, bytes: Array(text.utf8))
    }

    /// The object's bytes, or nil if there is no such key.
    func getObject(bucket: String, key: String) throws(PeerError) -> [UInt8]? {
        let keys = try listKeys(bucket: bucket, prefix: key)
        guard keys.contains(key) else { return nil }
        let results = try seed([["service": "s3", "operation": "get_object", "params": ["Bucket": bucket, "Key": key]]])
        guard let object = results.first as? [String: Any], let body = object["Body"] as? String,
              let data = Data(base64Encoded: body) else { throw PeerError("get_object: unexpected \(results)") }
        return Array(data)
    }

    func listKeys(bucket: String, prefix: String = "") throws(PeerError) -> [String] {
        let results = try seed([["service": "s3", "operation": "list_objects_v2",
                                 "params": ["Bucket": bucket, "Prefix": prefix]]])
        let contents = (results.first as? [String: Any])?["Contents"] as? [[String: Any]] ?? []
        return contents.compactMap { $0["Key"] as? String }
    }

    /// The realms table (SPEC §2): hash key `realm` (S).
    func createRealmsTable(_ table: String = "lava.realms") throws(PeerError) {
        try seed([["service": "dynamodb", "operation": "create_table", "params": [
            "TableName": table,
            "KeySchema": [["AttributeName": "realm", "KeyType": "HASH"]],
            "AttributeDefinitions": [["AttributeName": "realm", "AttributeType": "S"]],
            "BillingMode": "PAY_PER_REQUEST",
        ] as [String: Any]]])
    }

    /// Puts one item given in DynamoDB JSON, e.g. `{"realm": {"S": "prod"}, "x-workers": {"M": {…}}}`.
    func putItem(table: String = "lava.realms", itemJSON: String) throws(PeerError) {
        let item = try jsonObject(itemJSON)
        try seed([["service": "dynamodb", "operation": "put_item", "params": ["TableName": table, "Item": item]]])
    }

    /// The realm's item in DynamoDB JSON, or nil if there is none.
    func getItem(table: String = "lava.realms", realm: String) throws(PeerError) -> [String: Any]? {
        let results = try seed([["service": "dynamodb", "operation": "get_item", "params": [
            "TableName": table, "Key": ["realm": ["S": realm]], "ConsistentRead": true,
        ] as [String: Any]]])
        return (results.first as? [String: Any])?["Item"] as? [String: Any]
    }
}

// MARK: - fault proxy

/// A reverse proxy in front of `upstream` that forwards requests byte for byte (signatures stay
/// valid) and injects faults on demand; see `Peers/fault_proxy.py` for the rules.
final class FaultProxy: Sendable {
    let process: PeerProcess
    let upstream: String

    var port: Int { process.port }
    var endpoint: String { "http://127.0.0.1:\(port)" }

    private init(process: PeerProcess, upstream: String) {
        self.process = process
        self.upstream = upstream
    }

    static func start(upstream: String) throws(PeerError) -> FaultProxy {
        FaultProxy(process: try PeerProcess(script: "fault_proxy.py", arguments: ["--upstream", upstream]),
                   upstream: upstream)
    }

    func stop() { process.stop() }

    /// Arms fault rules, e.g. `{"cut_get_after_bytes": 1000, "cut_count": 1}`; returns the counters.
    @discardableResult
    func setFaults(json: String) throws(PeerError) -> [String: Any] {
        let reply = try LoopbackHTTP.request(port: port, method: "POST", path: "/__fault__",
                                             headers: [("Content-Type", "application/json")], body: Array(json.utf8))
        guard reply.status == 200 else { throw PeerError("fault proxy refused \(json): \(reply.status) \(reply.text)") }
        return try reply.json()
    }

    /// `requests` (by method), `requests_total`, `ranged_gets`, `last_range`, `last_if_match`,
    /// `faults` (`cut`, `throttle`, `status`, `drop`), `rules`, `log`.
    func counters() throws(PeerError) -> [String: Any] {
        let reply = try LoopbackHTTP.request(port: port, method: "GET", path: "/__fault__")
        guard reply.status == 200 else { throw PeerError("fault proxy counters: \(reply.status) \(reply.text)") }
        return try reply.json()
    }
}

// MARK: - fake IMDS

/// A fake IMDSv2 (token PUT, then GETs with the token); see `Peers/imds_fake.py`.
final class FakeIMDS: Sendable {
    let process: PeerProcess

    var port: Int { process.port }
    /// For `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    var endpoint: String { "http://127.0.0.1:\(port)" }

    private init(process: PeerProcess) { self.process = process }

    static func start(region: String = "us-east-1", instanceID: String = "i-0123456789abcdef0",
                      role: String = "lava-worker", credentialLifetime: Int = 3600) throws(PeerError) -> FakeIMDS {
        FakeIMDS(process: try PeerProcess(script: "imds_fake.py", arguments: [
            "--region", region, "--instance-id", instanceID, "--role", role,
            "--credential-lifetime", String(credentialLifetime),
        ]))
    }

    func stop() { process.stop() }

    /// E.g. `{"fail_next": 2, "status": 500}`, `{"credentials": {…}}`, `{"paths": {"/latest/…": "InService"}}`;
    /// returns the counters.
    @discardableResult
    func control(json: String) throws(PeerError) -> [String: Any] {
        let reply = try LoopbackHTTP.request(port: port, method: "POST", path: "/__control__",
                                             headers: [("Content-Type", "application/json")], body: Array(json.utf8))
        guard reply.status == 200 else { throw PeerError("fake IMDS refused \(json): \(reply.status) \(reply.text)") }
        return try reply.json()
    }

    /// `token_puts`, `token_ttls`, `bad_token_puts`, `gets_with_token`, `gets_without_token`,
    /// `unauthorized`, `failures_served`, `credential_fetches`, `access_keys_served`, `requests`.
    func counters() throws(PeerError) -> [String: Any] {
        let reply = try LoopbackHTTP.request(port: port, method: "GET", path: "/__control__")
        guard reply.status == 200 else { throw PeerError("fake IMDS counters: \(reply.status) \(reply.text)") }
        return try reply.json()
    }
}
