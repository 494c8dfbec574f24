import LavaHTTP
import LavaJSON
import LavaSystem

extension LavaError.Code {
    /// An AWS service answered with an error response.
    public static let aws = LavaError.Code("aws")
    /// An AWS service or IMDS answered with throttling or a server error (5xx), which the SDKs'
    /// standard mode retries: a later try may succeed.
    public static let awsTransient = LavaError.Code("aws-transient")
    public static let credentials = LavaError.Code("credentials")
}

extension LavaError {
    /// A failure worth trying again later, once the client's own retries are spent: throttling,
    /// a 5xx, no connection.
    public var isTransientAWSFailure: Bool { code == .awsTransient || isTransientHTTPFailure }
}

/// The wire protocol of a service, which decides how its errors are shaped.
public enum AWSProtocol: Sendable {
    /// DynamoDB: `__type` / `code` / `X-Amzn-Errortype`, message in `message` or `Message`.
    case json10
    /// S3: `<Error><Code/><Message/></Error>`.
    case restXML
    /// Auto Scaling: `<ErrorResponse><Error><Type/><Code/><Message/></Error></ErrorResponse>`.
    case query
}

/// An error response, parsed.
public struct AWSServiceError: Sendable, Equatable {
    public var status: Int
    /// The error code (`ThrottlingException`, `NoSuchKey`), namespace and URL suffix removed.
    public var code: String
    public var message: String?

    /// Parses a response body per protocol; a body that holds nothing useful yields the status.
    public static func parse(protocol proto: AWSProtocol, status: Int, headers: [(String, String)], body: [UInt8]) -> AWSServiceError {
        switch proto {
        case .json10:
            let json = try? JSONValue(parsing: body)
            let message = json?["message"]?.stringValue ?? json?["Message"]?.stringValue
            let headerType = headers.first { $0.0.lowercased() == "x-amzn-errortype" }?.1
            let raw = headerType ?? json?["code"]?.stringValue ?? json?["__type"]?.stringValue
            return AWSServiceError(status: status, code: raw.map(sanitize) ?? fallbackCode(status), message: message)
        case .restXML:
            let root = try? XMLDocument.parse(body)
            let error = root?.localName == "Error" ? root : root?.child("Error")
            return AWSServiceError(status: status, code: error?["Code"] ?? fallbackCode(status), message: error?["Message"])
        case .query:
            let root = try? XMLDocument.parse(body)
            let error = root?.child("Error") ?? (root?.localName == "Error" ? root : nil)
            return AWSServiceError(status: status, code: error?["Code"] ?? fallbackCode(status), message: error?["Message"])
        }
    }

    /// `aws.protocoltests.json10#FooError:http://internal...` → `FooError`.
    static func sanitize(_ raw: String) -> String {
        var code = Substring(raw)
        if let colon = code.firstIndex(of: ":") { code = code[..<colon] }
        if let hash = code.lastIndex(of: "#") { code = code[code.index(after: hash)...] }
        return String(code)
    }

    /// HEAD responses carry no body: name the status.
    static func fallbackCode(_ status: Int) -> String {
        switch status {
        case 400: return "BadRequest"
        case 403: return "Forbidden"
        case 404: return "NotFound"
        case 412: return "PreconditionFailed"
        case 429: return "TooManyRequests"
        case 500: return "InternalError"
        case 503: return "ServiceUnavailable"
        default: return "HTTP\(status)"
        }
    }

    static let throttlingCodes: Set<String> = [
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
        "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
        "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
        "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
    ]
    static let transientCodes: Set<String> = ["RequestTimeout", "RequestTimeoutException", "IDPCommunicationError"]

    /// The SDKs' standard retry mode: throttling, transient codes and 5xx are retried.
    public var isRetryable: Bool {
        status >= 500 || status == 429 || AWSServiceError.throttlingCodes.contains(code) || AWSServiceError.transientCodes.contains(code)
    }

    public var isThrottling: Bool { status == 429 || AWSServiceError.throttlingCodes.contains(code) }

    /// `ThrottlingException: Rate exceeded (HTTP 400)`
    public var summary: String {
        "\(code)\(message.map { ": \($0)" } ?? "") (HTTP \(status))"
    }
}
