#if canImport(Glibc)
import Glibc
#endif

/// Which proxy a request goes through, read from the environment the way libcurl reads it when
/// CURLOPT_PROXY is unset (curl 7.88 `url.c`, `detect_proxy`/`check_noproxy`):
/// - `https://` URLs: `https_proxy`, else `HTTPS_PROXY`;
/// - `http://` URLs: `http_proxy` only — never `HTTP_PROXY`, which a CGI-style environment can
///   set from a request's `Proxy:` header ("httpoxy");
/// - either, when that is unset: `all_proxy`, else `ALL_PROXY`;
/// - exceptions: `no_proxy`, else `NO_PROXY` (comma-separated host names, domain suffixes,
///   IP addresses or CIDR ranges; `*` for all), matched by libcurl.
/// Empty values count as unset. The client sets CURLOPT_PROXY and CURLOPT_NOPROXY from this
/// value on every request (an empty string for "none"), so what the client was built with is
/// what it uses: the environment is read once, and tests can pass their own.
public struct HTTPProxy: Sendable, Equatable {
    /// Proxy URL for `http://` requests, e.g. `http://proxy.internal:3128`.
    public var http: String?
    /// Proxy URL for `https://` requests (tunnelled with CONNECT).
    public var https: String?
    /// libcurl's no-proxy list.
    public var noProxy: String?

    public init(http: String? = nil, https: String? = nil, noProxy: String? = nil) {
        self.http = http
        self.https = https
        self.noProxy = noProxy
    }

    /// No proxy at all, whatever the environment says.
    public static let none = HTTPProxy()

    public static func fromEnvironment(_ environment: [String: String]) -> HTTPProxy {
        func first(_ names: String...) -> String? {
            for name in names {
                if let value = environment[name], !value.isEmpty { return value }
            }
            return nil
        }
        let all = first("all_proxy", "ALL_PROXY")
        return HTTPProxy(http: first("http_proxy") ?? all,
                         https: first("https_proxy", "HTTPS_PROXY") ?? all,
                         noProxy: first("no_proxy", "NO_PROXY"))
    }

    /// `fromEnvironment` over this process's environment.
    public static func fromProcessEnvironment() -> HTTPProxy {
        let names = ["http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"]
        var environment: [String: String] = [:]
        for name in names {
            if let value = getenv(name) { environment[name] = String(cString: value) }
        }
        return fromEnvironment(environment)
    }

    /// The proxy for a URL scheme (`http`, `https`), nil for none.
    public func proxy(forScheme scheme: String) -> String? {
        switch scheme {
        case "https": return https
        case "http": return http
        default: return nil
        }
    }
}
