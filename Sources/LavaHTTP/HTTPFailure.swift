import CCurl
import LavaSystem

extension LavaError.Code {
    /// No connection: name resolution, refused, unreachable, TLS handshake, proxy. Transient.
    public static let httpConnect = LavaError.Code("http-connect")
    /// The connect timeout, the low-speed limit or a request's total timeout ran out. Transient.
    public static let httpTimeout = LavaError.Code("http-timeout")
    /// The connection broke after it was made: reset, nothing received, body cut short. Transient.
    public static let httpInterrupted = LavaError.Code("http-interrupted")
    /// The peer's certificate did not verify, or the CA bundle is unusable. Not transient.
    public static let httpTLS = LavaError.Code("http-tls")
    /// Anything else: a malformed URL or request, a body over the buffering limit. Not transient.
    public static let http = LavaError.Code("http")
}

/// What kind of transport failure an HTTP error was, so a retry layer can decide without
/// matching message text. HTTP statuses are not failures: they arrive as responses.
public enum HTTPFailure: String, Sendable, Equatable, CaseIterable {
    case connect, timeout, interrupted, tls, other

    /// The failure an error from this module stands for; nil for errors from elsewhere.
    public init?(_ error: LavaError) {
        guard let failure = HTTPFailure.allCases.first(where: { $0.code == error.code }) else { return nil }
        self = failure
    }

    public var code: LavaError.Code {
        switch self {
        case .connect: return .httpConnect
        case .timeout: return .httpTimeout
        case .interrupted: return .httpInterrupted
        case .tls: return .httpTLS
        case .other: return .http
        }
    }

    /// Worth retrying on a new attempt: the network or the peer may behave next time.
    public var isTransient: Bool {
        switch self {
        case .connect, .timeout, .interrupted: return true
        case .tls, .other: return false
        }
    }

    init(curlCode: CURLcode) {
        switch curlCode {
        case CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT,
             CURLE_SSL_CONNECT_ERROR, CURLE_PROXY:
            self = .connect
        case CURLE_OPERATION_TIMEDOUT:
            self = .timeout
        case CURLE_PARTIAL_FILE, CURLE_GOT_NOTHING, CURLE_SEND_ERROR, CURLE_RECV_ERROR,
             CURLE_HTTP2, CURLE_HTTP2_STREAM:
            self = .interrupted
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM,
             CURLE_SSL_CIPHER, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH,
             CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CRL_BADFILE:
            self = .tls
        default:
            self = .other
        }
    }

    /// The first words of the message, before libcurl's own explanation.
    var summary: String {
        switch self {
        case .connect: return "cannot connect"
        case .timeout: return "timed out"
        case .interrupted: return "connection lost"
        case .tls: return "TLS verification failed"
        case .other: return "request failed"
        }
    }
}

extension LavaError {
    /// True for an HTTP transport failure worth retrying (connection, timeout, cut short).
    public var isTransientHTTPFailure: Bool { HTTPFailure(self)?.isTransient ?? false }
}

/// The parts of a request that messages and logs may show, and the parts they must not.
/// Messages name `METHOD host[:port]/path`; the query string (a presigned URL's signature),
/// user info and header values are only kept to be scrubbed from libcurl's error text.
struct RequestTarget: Sendable, CustomStringConvertible {
    let method: String
    let scheme: String
    let host: String
    let path: String
    private let secrets: [String]

    init(method: String, url: String, headers: [(String, String)]) {
        self.method = method
        var rest = Substring(url)
        if let range = rest.firstRange(of: "://") {
            scheme = rest[..<range.lowerBound].lowercased()
            rest = rest[range.upperBound...]
        } else {
            scheme = ""
        }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        var secrets: [String] = []
        if let at = authority.lastIndex(of: "@") {
            secrets.append(String(authority[..<at]))
            authority = authority[authority.index(after: at)...]
        }
        host = String(authority)
        rest = rest[authorityEnd...]
        let pathEnd = rest.firstIndex { $0 == "?" || $0 == "#" } ?? rest.endIndex
        path = rest[..<pathEnd].isEmpty ? "/" : String(rest[..<pathEnd])
        let afterPath = rest[pathEnd...]
        if afterPath.hasPrefix("?") {
            let query = afterPath.dropFirst().prefix { $0 != "#" }
            secrets.append(String(query))
            for parameter in query.split(separator: "&") {
                if let equals = parameter.firstIndex(of: "=") {
                    secrets.append(String(parameter[parameter.index(after: equals)...]))
                }
            }
        }
        secrets.append(contentsOf: headers.map(\.1))
        // Longest first, so a value containing another is removed whole; very short values
        // ("1", "gzip") are no secret and would only blank out unrelated text.
        self.secrets = secrets.filter { $0.utf8.count >= 6 }.sorted { $0.utf8.count > $1.utf8.count }
    }

    var description: String { "\(method) \(host)\(path)" }

    /// `text` with every query value, user info and header value of the request cut out.
    func redact(_ text: String) -> String {
        var result = text
        for secret in secrets where result.contains(secret) {
            result = result.replacing(secret, with: "[redacted]")
        }
        return result
    }
}
