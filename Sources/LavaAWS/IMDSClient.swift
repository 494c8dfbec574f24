import LavaHTTP
import LavaJSON
import LavaSigV4
import LavaSystem
import Logging
import Synchronization

/// The instance metadata service, IMDSv2 only: a session token from `PUT /latest/api/token`
/// (TTL 21600 s, renewed before it lapses) on every GET; no fallback to IMDSv1. Connection
/// errors and 5xx answers are retried with backoff.
public final class IMDSClient: Sendable {
    public let endpoint: String
    private let http: HTTPClient
    private let retry: RetryPolicy
    private let logger: Logger
    private let token = Mutex<(value: String, expires: Double)?>(nil)
    static let tokenTTL = 21_600

    /// nil when `AWS_EC2_METADATA_DISABLED` is true.
    public static func fromEnvironment(_ environment: [String: String], logger: Logger) throws(LavaError) -> IMDSClient? {
        if environment["AWS_EC2_METADATA_DISABLED"]?.lowercased() == "true" { return nil }
        var endpoint = environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://169.254.169.254"
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        var configuration = HTTPClient.Configuration()
        configuration.connectTimeout = 1
        configuration.totalTimeout = 5
        configuration.proxy = .none
        let http = try HTTPClient(configuration: configuration) { line in logger.debug("imds \(line)") }
        let retry = try RetryPolicy.from(environment: environment, defaultAttempts: 4)
        return IMDSClient(endpoint: endpoint, http: http, retry: RetryPolicy(maxAttempts: max(retry.maxAttempts, 4), baseDelay: min(retry.baseDelay, 0.2)), logger: logger)
    }

    init(endpoint: String, http: HTTPClient, retry: RetryPolicy, logger: Logger) {
        self.endpoint = endpoint
        self.http = http
        self.retry = retry
        self.logger = logger
    }

    /// The text at `path` (`/latest/meta-data/placement/region`), or nil on 404. `cancel`,
    /// once readable, ends the request and its retries at once (error code `stopped`).
    public func get(_ path: String, cancel: Int32? = nil) throws(LavaError) -> String? {
        var renewed = false
        var attempt = 1
        while true {
            do throws(LavaError) {
                let response = try http.send(HTTPRequest(method: "GET", url: endpoint + path,
                                                         headers: [("X-aws-ec2-metadata-token", try sessionToken())]), cancel: cancel)
                switch response.status {
                case 200: return response.text
                case 404: return nil
                case 401 where !renewed:
                    // The token lapsed or IMDS restarted: one new token, then try again.
                    token.withLock { $0 = nil }
                    renewed = true
                    continue
                case 500...599:
                    throw LavaError(.awsTransient, "instance metadata \(path): HTTP \(response.status)")
                default:
                    throw LavaError(.aws, "instance metadata \(path): HTTP \(response.status)")
                }
            } catch {
                guard error.isTransientAWSFailure, attempt < retry.maxAttempts else {
                    throw error.code == .aws || error.code == .credentials ? error : error.prefixed("cannot reach the instance metadata service at \(endpoint)")
                }
                if Clock.sleep(seconds: retry.delay(afterAttempt: attempt), unless: cancel) {
                    throw LavaError(.stopped, "instance metadata \(path): stopped while waiting to retry (\(error.message))")
                }
                attempt += 1
            }
        }
    }

    private func sessionToken() throws(LavaError) -> String {
        let result: Result<String, LavaError> = token.withLock { token in
            if let current = token, current.expires - Clock.monotonicSeconds() > 60 { return .success(current.value) }
            do throws(LavaError) {
                let response = try http.send(HTTPRequest(method: "PUT", url: endpoint + "/latest/api/token",
                                                         headers: [("X-aws-ec2-metadata-token-ttl-seconds", String(IMDSClient.tokenTTL))]))
                if response.status >= 500 { return .failure(LavaError(.awsTransient, "instance metadata token: HTTP \(response.status)")) }
                guard response.status == 200, !response.body.isEmpty else {
                    return .failure(LavaError(.aws, "instance metadata token: HTTP \(response.status) (IMDSv2 is required; IMDSv1 is never used)"))
                }
                token = (response.text, Clock.monotonicSeconds() + Double(IMDSClient.tokenTTL))
                return .success(response.text)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    public func region() throws(LavaError) -> String? {
        try get("/latest/meta-data/placement/region").map { $0.trimmingSpaces }
    }

    public func instanceID(cancel: Int32? = nil) throws(LavaError) -> String? {
        try get("/latest/meta-data/instance-id", cancel: cancel).map { $0.trimmingSpaces }
    }

    /// The instance role's credentials.
    func roleCredentials() throws(LavaError) -> ExpiringCredentials {
        let base = "/latest/meta-data/iam/security-credentials/"
        guard let roles = try get(base), let role = roles.split(separator: "\n").first.map({ String($0).trimmingSpaces }), !role.isEmpty else {
            throw LavaError(.credentials, "no AWS credentials: not in the environment, no profile, and the instance has no role")
        }
        guard let text = try get(base + role), let json = try? JSONValue(parsing: text) else {
            throw LavaError(.credentials, "instance role \(role): credentials unreadable")
        }
        guard let key = json["AccessKeyId"]?.stringValue, let secret = json["SecretAccessKey"]?.stringValue else {
            throw LavaError(.credentials, "instance role \(role): \(json["Code"]?.stringValue ?? "no credentials")")
        }
        let expiration = json["Expiration"]?.stringValue.flatMap(CivilTime.epochSeconds(iso8601:))
        return ExpiringCredentials(credentials: AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: json["Token"]?.stringValue),
                                   expiration: expiration, source: "instance role \(role)")
    }
}
