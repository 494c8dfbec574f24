import LavaCrypto
import LavaHTTP
import LavaSigV4
import LavaSystem
import Logging

/// One AWS request, before signing.
public struct AWSRequest: Sendable {
    public var operation: String
    public var method: String
    /// Scheme, host and port: `https://dynamodb.eu-west-1.amazonaws.com`.
    public var endpoint: String
    /// Already percent-encoded path.
    public var path: String
    /// Unencoded query parameters.
    public var query: [(String, String)]
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(operation: String, method: String, endpoint: String, path: String = "/", query: [(String, String)] = [],
                headers: [(String, String)] = [], body: [UInt8] = []) {
        self.operation = operation
        self.method = method
        self.endpoint = endpoint
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    var encodedQuery: String {
        query.map { "\(SigV4Signer.percentEncode($0.0))=\(SigV4Signer.percentEncode($0.1))" }.joined(separator: "&")
    }

    var host: String {
        let afterScheme = endpoint.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first.map(String.init) ?? ""
        return afterScheme
    }
}

/// Signs, sends and retries requests to one service (SDK standard retry mode).
public final class AWSServiceClient: Sendable {
    public let context: AWSContext
    public let service: AWSService
    let http: HTTPClient
    public let retry: RetryPolicy
    /// With a throttling budget: the adaptive mode's client-side rate, shared by every request.
    let rateLimiter: AdaptiveRateLimiter?
    let logger: Logger

    init(context: AWSContext, service: AWSService, http: HTTPClient, retry: RetryPolicy, logger: Logger) {
        self.context = context
        self.service = service
        self.http = http
        self.retry = retry
        self.rateLimiter = retry.throttlingBudget == nil ? nil : AdaptiveRateLimiter(shape: retry.throttledRate)
        self.logger = logger
    }

    /// The same client (credentials, connections), whose requests and waits to retry end once
    /// `cancel` is readable.
    public func cancelling(on cancel: Int32) -> AWSServiceClient {
        var retry = self.retry
        retry.cancel = cancel
        return AWSServiceClient(context: context, service: service, http: http, retry: retry, logger: logger)
    }

    /// The service's endpoint (custom when configured) and whether it is custom.
    public var endpoint: (url: String, isCustom: Bool) {
        if let custom = context.customEndpoint(service) { return (custom, true) }
        return (context.standardEndpoint(service), false)
    }

    /// Sends with retries; returns the response when its status is 2xx or in `accepting`;
    /// otherwise throws the service's error as one line.
    public func send(_ request: AWSRequest, accepting: Set<Int> = []) throws(LavaError) -> HTTPResponse {
        try withRetries(request) { signed throws(LavaError) in
            let response = try http.send(signed, cancel: retry.cancel)
            if (200..<300).contains(response.status) || accepting.contains(response.status) { return .done(response) }
            return .failed(AWSServiceError.parse(protocol: service.wireProtocol, status: response.status,
                                                 headers: response.headers.fields.map { ($0.name, $0.value) }, body: response.body))
        }
    }

    /// Like `send`, but the successful response's body is streamed; retries happen only before
    /// the body starts.
    public func stream(_ request: AWSRequest, accepting: Set<Int> = []) throws(LavaError) -> HTTPResponseStream {
        try withRetries(request) { signed throws(LavaError) in
            let stream = try http.stream(signed)
            if (200..<300).contains(stream.status) || accepting.contains(stream.status) { return .done(stream) }
            let body = (try? stream.readAll(limit: 64 * 1024)) ?? []
            stream.close()
            return .failed(AWSServiceError.parse(protocol: service.wireProtocol, status: stream.status,
                                                 headers: stream.headers.fields.map { ($0.name, $0.value) }, body: body))
        }
    }

    enum Outcome<T> {
        case done(T)
        case failed(AWSServiceError)
    }

    private func withRetries<T>(_ request: AWSRequest, _ attempt: (HTTPRequest) throws(LavaError) -> Outcome<T>) throws(LavaError) -> T {
        var attempts = 1
        // Attempts that count against `maxAttempts`: all of them, except throttled ones under a
        // throttling budget (those are bounded by time).
        var counted = 0
        let start = Clock.monotonicSeconds()
        while true {
            let failure: LavaError
            var retryable: Bool
            var throttled = false
            do throws(LavaError) {
                switch try attempt(try sign(request)) {
                case .done(let value):
                    rateLimiter?.succeeded()
                    return value
                case .failed(let error):
                    failure = LavaError(error.isRetryable ? .awsTransient : .aws, "\(service.rawValue) \(request.operation): \(error.summary)",
                                        serviceCode: error.code)
                    retryable = error.isRetryable
                    throttled = error.isThrottling
                    if ["ExpiredToken", "ExpiredTokenException", "RequestExpired"].contains(error.code) {
                        context.credentials.invalidate()
                        retryable = true
                    }
                }
            } catch {
                if error.code == .credentials { throw error }
                failure = error
                retryable = error.isTransientHTTPFailure
            }
            var delay: Double
            var withinBudget: Bool
            if throttled, let rateLimiter, let budget = retry.throttlingBudget {
                rateLimiter.throttled()
                delay = rateLimiter.turn()
                withinBudget = Clock.monotonicSeconds() - start + delay < budget
            } else {
                counted += 1
                // A throttled client keeps to its rate whatever else goes wrong.
                delay = max(retry.delay(afterAttempt: counted), rateLimiter?.turn() ?? 0)
                withinBudget = counted < retry.maxAttempts
            }
            guard retryable, withinBudget else {
                throw attempts > 1 ? LavaError(failure.code, "\(failure.message) (gave up after \(attempts) attempts)", serviceCode: failure.serviceCode) : failure
            }
            logger.debug("retrying \(service.rawValue) \(request.operation) in \(Int(delay * 1000)) ms (attempt \(attempts + 1)): \(failure.message)")
            if Clock.sleep(seconds: delay, unless: retry.cancel) {
                throw LavaError(.stopped, "\(service.rawValue) \(request.operation): stopped while waiting to retry (\(failure.message))")
            }
            attempts += 1
        }
    }

    /// SigV4 with the current credentials and time; S3 always sends its payload hash.
    func sign(_ request: AWSRequest) throws(LavaError) -> HTTPRequest {
        let credentials = try context.credentials.current()
        let signer = SigV4Signer(credentials: credentials, region: context.region, service: service.rawValue, rules: service.signingRules)
        let payloadHash = SHA256.hash(request.body).hexString
        var headers = request.headers
        headers.append(("Host", request.host))
        let query = request.encodedQuery
        let signed = signer.sign(method: request.method, path: request.path, query: query, headers: headers,
                                 payloadHash: payloadHash, date: SigningDate(secondsSinceEpoch: Int64(Clock.wallSeconds())))
        // libcurl writes Host itself from the URL; sending ours too would duplicate it.
        let sent = headers.filter { $0.0 != "Host" } + signed.headers.map { ($0.name, $0.value) }
        let url = request.endpoint + request.path + (query.isEmpty ? "" : "?" + query)
        return HTTPRequest(method: request.method, url: url, headers: sent, body: request.body)
    }
}
