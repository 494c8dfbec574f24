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

/// One source of credentials. nil: it has none to offer, the chain asks the next; an error:
/// it should have had some (a named profile that does not exist, a failing credential_process).
public protocol CredentialProvider: Sendable {
    func load() throws(LavaError) -> ExpiringCredentials?
}

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
struct EnvironmentCredentials: CredentialProvider {
    let environment: [String: String]

    func load() throws(LavaError) -> ExpiringCredentials? {
        guard let key = environment["AWS_ACCESS_KEY_ID"], !key.isEmpty,
              let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty else { return nil }
        let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        return ExpiringCredentials(credentials: AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: token),
                                   expiration: nil, source: "environment")
    }
}

/// The profile's static keys or `credential_process`; a profile named (`--profile`,
/// `AWS_PROFILE`) that does not exist is an error, a missing `default` is not.
struct ProfileCredentials: CredentialProvider {
    let name: String
    let named: Bool
    let files: AWSConfigFiles
    let environment: [String: String]
    let logger: Logger

    func load() throws(LavaError) -> ExpiringCredentials? {
        guard let profile = files.profiles[name] else {
            if named { throw LavaError(.credentials, "AWS profile \(name) not found in \(files.credentialsPath) or \(files.configPath)") }
            return nil
        }
        if let key = profile["aws_access_key_id"], let secret = profile["aws_secret_access_key"] {
            return ExpiringCredentials(credentials: AWSCredentials(accessKeyID: key, secretAccessKey: secret,
                                                                   sessionToken: profile["aws_session_token"]),
                                       expiration: nil, source: "profile \(name)")
        }
        if let command = profile["credential_process"] {
            return try CredentialProcess(commandLine: command, profile: name, environment: environment, logger: logger).run()
        }
        return nil
    }
}

/// IMDSv2 role credentials.
struct InstanceRoleCredentials: CredentialProvider {
    let imds: IMDSClient

    func load() throws(LavaError) -> ExpiringCredentials? { try imds.roleCredentials() }
}

/// The SDKs' chain, first that yields: environment keys, the profile (static keys or
/// `credential_process`), IMDSv2 role credentials. Refreshed before expiry, one refresh in
/// flight at a time; while it runs, every other caller is served the current credentials as
/// long as they are valid, so a slow source never stalls them. Secrets never reach a log line.
public final class CredentialChain: Sendable {
    private let providers: [any CredentialProvider]
    private let logger: Logger
    private struct State {
        var cached: ExpiringCredentials?
        var refreshing = false
    }
    private let state = Mutex(State())
    /// Held only by the caller that loads; others wait on it only when they have nothing valid.
    private let refresh = Mutex(())
    /// Refresh this long before expiry.
    static let refreshMargin = 300.0
    /// Credentials this close to expiry are not handed out.
    static let validityFloor = 30.0

    public init(providers: [any CredentialProvider], logger: Logger) {
        self.providers = providers
        self.logger = logger
    }

    public convenience init(environment: [String: String], profile: String?, files: AWSConfigFiles, imds: IMDSClient?, logger: Logger) {
        let explicit = profile ?? environment["AWS_PROFILE"].flatMap { $0.isEmpty ? nil : $0 }
        var providers: [any CredentialProvider] = [
            EnvironmentCredentials(environment: environment),
            ProfileCredentials(name: explicit ?? "default", named: explicit != nil, files: files, environment: environment, logger: logger),
        ]
        if let imds { providers.append(InstanceRoleCredentials(imds: imds)) }
        self.init(providers: providers, logger: logger)
    }

    public func current() throws(LavaError) -> AWSCredentials {
        let now = Clock.wallSeconds()
        let (fresh, valid, inFlight): (AWSCredentials?, ExpiringCredentials?, Bool) = state.withLock { state in
            guard let cached = state.cached else { return (nil, nil, state.refreshing) }
            let expiration = cached.expiration ?? .infinity
            return (expiration - now > CredentialChain.refreshMargin ? cached.credentials : nil,
                    expiration - now > CredentialChain.validityFloor ? cached : nil, state.refreshing)
        }
        if let fresh { return fresh }
        if let valid, inFlight { return valid.credentials }
        return try refreshed(fallback: valid)
    }

    /// Loads new credentials (or takes the ones another caller just loaded).
    private func refreshed(fallback: ExpiringCredentials?) throws(LavaError) -> AWSCredentials {
        let result: Result<AWSCredentials, LavaError> = refresh.withLock { _ in
            let now = Clock.wallSeconds()
            if let cached = state.withLock({ $0.cached }), (cached.expiration ?? .infinity) - now > CredentialChain.refreshMargin {
                return .success(cached.credentials)
            }
            state.withLock { $0.refreshing = true }
            defer { state.withLock { $0.refreshing = false } }
            do throws(LavaError) {
                let loaded = try load()
                logger.debug("using AWS credentials from \(loaded.source)")
                state.withLock { $0.cached = loaded }
                return .success(loaded.credentials)
            } catch {
                // Credentials still valid for a while beat an error from a failed early refresh.
                if let fallback {
                    logger.warning("refreshing AWS credentials failed, using the current ones until they expire: \(error.message)")
                    return .success(fallback.credentials)
                }
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Forget the cached credentials (after the service rejected them).
    public func invalidate() { state.withLock { $0.cached = nil } }

    func load() throws(LavaError) -> ExpiringCredentials {
        for provider in providers {
            if let found = try provider.load() { return found }
        }
        throw LavaError(.credentials, "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, name a profile with --profile, or run on an instance with a role")
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
