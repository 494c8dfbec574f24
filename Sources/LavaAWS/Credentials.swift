import LavaJSON
import LavaSigV4
import LavaSystem
import Logging
import Synchronization

/// Credentials and when they stop working (nil: never).
public struct ExpiringCredentials: Sendable {
    public var credentials: AWSCredentials
    public var expiration: Double?
    /// Where they came from, for logs: `environment`, `profile prod`, `instance role web`.
    public var source: String
}

/// The SDKs' chain, first that yields: environment keys, the profile (static keys or
/// `credential_process`), IMDSv2 role credentials. Loaded once and refreshed before expiry,
/// one refresh at a time. Secrets never reach a log line.
public final class CredentialChain: Sendable {
    private let environment: [String: String]
    private let profileName: String?
    private let files: AWSConfigFiles
    private let imds: IMDSClient?
    private let logger: Logger
    private let cached = Mutex<ExpiringCredentials?>(nil)
    /// Refresh this long before expiry.
    static let refreshMargin = 300.0

    public init(environment: [String: String], profile: String?, files: AWSConfigFiles, imds: IMDSClient?, logger: Logger) {
        self.environment = environment
        self.profileName = profile ?? environment["AWS_PROFILE"].flatMap { $0.isEmpty ? nil : $0 }
        self.files = files
        self.imds = imds
        self.logger = logger
    }

    public func current() throws(LavaError) -> AWSCredentials {
        let result: Result<AWSCredentials, LavaError> = cached.withLock { cached in
            if let current = cached, current.expiration.map({ $0 - Clock.wallSeconds() > CredentialChain.refreshMargin }) ?? true {
                return .success(current.credentials)
            }
            do throws(LavaError) {
                let loaded = try load()
                logger.debug("using AWS credentials from \(loaded.source)")
                cached = loaded
                return .success(loaded.credentials)
            } catch {
                // Credentials still valid for a while beat an error from a failed early refresh.
                if let current = cached, let expiration = current.expiration, expiration > Clock.wallSeconds() + 30 {
                    logger.warning("refreshing AWS credentials failed, using the current ones until they expire: \(error.message)")
                    return .success(current.credentials)
                }
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Forget the cached credentials (after the service rejected them).
    public func invalidate() { cached.withLock { $0 = nil } }

    func load() throws(LavaError) -> ExpiringCredentials {
        if let key = environment["AWS_ACCESS_KEY_ID"], !key.isEmpty,
           let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty {
            let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            return ExpiringCredentials(credentials: AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: token),
                                       expiration: nil, source: "environment")
        }
        let name = profileName ?? "default"
        if let profile = files.profiles[name] {
            if let key = profile["aws_access_key_id"], let secret = profile["aws_secret_access_key"] {
                return ExpiringCredentials(credentials: AWSCredentials(accessKeyID: key, secretAccessKey: secret,
                                                                       sessionToken: profile["aws_session_token"]),
                                           expiration: nil, source: "profile \(name)")
            }
            if let command = profile["credential_process"] {
                return try CredentialProcess(commandLine: command, profile: name, environment: environment, logger: logger).run()
            }
        } else if profileName != nil {
            throw LavaError(.credentials, "AWS profile \(name) not found in \(files.credentialsPath) or \(files.configPath)")
        }
        if let imds {
            return try imds.roleCredentials()
        }
        throw LavaError(.credentials, "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, name a profile with --profile, or run on an instance with a role (IMDS is disabled)")
    }
}

/// A profile's `credential_process`: run without a shell, stdout read to its end before the
/// child is reaped, JSON `Version: 1` expected.
struct CredentialProcess {
    var commandLine: String
    var profile: String
    var environment: [String: String]
    var logger: Logger

    func run() throws(LavaError) -> ExpiringCredentials {
        let context = "profile \(profile): credential_process"
        let arguments = try CredentialProcess.split(commandLine)
        guard let first = arguments.first,
              let executable = ProcessEnvironment.findExecutable(first, path: environment["PATH"]) else {
            throw LavaError(.credentials, "\(context): cannot find \(arguments.first ?? "a command") on PATH")
        }
        let request = SpawnRequest(executable: executable, arguments: Array(arguments.dropFirst()),
                                   environment: environment.map { "\($0.key)=\($0.value)" })
        let (result, output) = try Subprocess.capture(request, timeout: .init(seconds: 60, killAfter: 5)) { line in
            logger.debug("credential_process: \(line)")
        }
        guard result.status.isSuccess else {
            throw LavaError(.credentials, "\(context) failed (\(result.timedOut ? "timed out, " : "")\(result.status))")
        }
        guard let json = try? JSONValue(parsing: output) else {
            throw LavaError(.credentials, "\(context) did not print JSON")
        }
        guard json["Version"] == .number("1") else {
            throw LavaError(.credentials, "\(context): unsupported Version (expected 1)")
        }
        guard let key = json["AccessKeyId"]?.stringValue, let secret = json["SecretAccessKey"]?.stringValue else {
            throw LavaError(.credentials, "\(context): AccessKeyId or SecretAccessKey missing")
        }
        var expiration: Double? = nil
        if let text = json["Expiration"]?.stringValue {
            guard let seconds = CivilTime.epochSeconds(iso8601: text) else {
                throw LavaError(.credentials, "\(context): Expiration \(text) is not an ISO 8601 time")
            }
            guard seconds > Clock.wallSeconds() else {
                throw LavaError(.credentials, "\(context): returned credentials that expired at \(text)")
            }
            expiration = seconds
        }
        return ExpiringCredentials(credentials: AWSCredentials(accessKeyID: key, secretAccessKey: secret,
                                                               sessionToken: json["SessionToken"]?.stringValue),
                                   expiration: expiration, source: "profile \(profile) credential_process")
    }

    /// Splits a command line as a shell would split words, with quotes and backslashes, but
    /// without expanding anything.
    static func split(_ line: String) throws(LavaError) -> [String] {
        var words = [String]()
        var current = ""
        var inWord = false
        var quote: Character? = nil
        var escaped = false
        for character in line {
            if escaped {
                current.append(character)
                escaped = false
                continue
            }
            if let open = quote {
                if character == open { quote = nil }
                else if character == "\\" && open == "\"" { escaped = true }
                else { current.append(character) }
                continue
            }
            switch character {
            case "\\": escaped = true; inWord = true
            case "\"", "'": quote = character; inWord = true
            case " ", "\t":
                if inWord { words.append(current); current = ""; inWord = false }
            default: current.append(character); inWord = true
            }
        }
        if quote != nil || escaped { throw LavaError(.credentials, "credential_process: unbalanced quote in the command line") }
        if inWord { words.append(current) }
        if words.isEmpty { throw LavaError(.credentials, "credential_process: empty command line") }
        return words
    }
}
