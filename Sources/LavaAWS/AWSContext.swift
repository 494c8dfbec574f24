import LavaHTTP
import LavaSigV4
import LavaSystem
import Logging

public enum AWSService: String, Sendable {
    case s3
    case dynamodb
    case autoscaling

    /// The `AWS_ENDPOINT_URL_<SUFFIX>` of this service.
    var environmentSuffix: String {
        switch self {
        case .s3: return "S3"
        case .dynamodb: return "DYNAMODB"
        case .autoscaling: return "AUTO_SCALING"
        }
    }

    var wireProtocol: AWSProtocol {
        switch self {
        case .s3: return .restXML
        case .dynamodb: return .json10
        case .autoscaling: return .query
        }
    }

    var signingRules: SigningRules { self == .s3 ? .s3 : .standard }
}

/// Region, credentials and endpoints, resolved the way the AWS SDKs do (SPEC §9).
public final class AWSContext: Sendable {
    public let region: String
    public let credentials: CredentialChain
    public let imds: IMDSClient?
    let environment: [String: String]
    let logger: Logger

    /// The region becomes part of every endpoint's host name: nothing but `[a-z0-9-]`.
    static func isValidRegion(_ region: String) -> Bool {
        let bytes = Array(region.utf8)
        let isAlphanumeric = { (b: UInt8) in (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7A) }
        return !bytes.isEmpty && bytes.count <= 64 && isAlphanumeric(bytes.first!) && isAlphanumeric(bytes.last!)
            && bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") }
    }

    /// Region: `--region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's, IMDS placement.
    public init(environment: [String: String], region regionOption: String?, profile: String?, logger: Logger) throws(LavaError) {
        let files = try AWSConfigFiles(environment: environment)
        let imds = try IMDSClient.fromEnvironment(environment, logger: logger)
        let profileName = profile ?? environment["AWS_PROFILE"].flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        var region = regionOption ?? environment["AWS_REGION"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["AWS_DEFAULT_REGION"].flatMap { $0.isEmpty ? nil : $0 }
            ?? files.profiles[profileName]?["region"]
        if region == nil, let imds {
            region = try? imds.region()
        }
        guard let region, !region.isEmpty else {
            throw LavaError(.invalidConfig, "no AWS region: pass --region, set AWS_REGION, or run on EC2")
        }
        guard AWSContext.isValidRegion(region) else {
            throw LavaError(.invalidConfig, "invalid AWS region \"\(region)\": a region is lower-case letters, digits and '-' (us-east-1)")
        }
        self.region = region
        self.imds = imds
        self.environment = environment
        self.logger = logger
        credentials = CredentialChain(environment: environment, profile: profile, files: files, imds: imds, logger: logger)
    }

    /// The custom endpoint for a service (`AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`), if any.
    func customEndpoint(_ service: AWSService) -> String? {
        let value = environment["AWS_ENDPOINT_URL_\(service.environmentSuffix)"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["AWS_ENDPOINT_URL"].flatMap { $0.isEmpty ? nil : $0 }
        return value.map { url in
            var trimmed = url
            while trimmed.hasSuffix("/") { trimmed.removeLast() }
            return trimmed
        }
    }

    var dnsSuffix: String { region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com" }

    func standardEndpoint(_ service: AWSService) -> String {
        "https://\(service.rawValue).\(region).\(dnsSuffix)"
    }

    /// - Parameter cancel: readable once requests and waits to retry should end (see `RetryPolicy.cancel`).
    public func client(_ service: AWSService, defaultAttempts: Int = RetryPolicy.defaultAttempts,
                       throttlingBudget: Double? = nil, cancel: Int32? = nil) throws(LavaError) -> AWSServiceClient {
        let serviceLogger = logger.with(component: service.rawValue)
        let http = try HTTPClient(configuration: HTTPClient.Configuration()) { line in serviceLogger.debug("\(line)") }
        var retry = try RetryPolicy.from(environment: environment, defaultAttempts: defaultAttempts)
        retry.throttlingBudget = throttlingBudget
        retry.cancel = cancel
        return AWSServiceClient(context: self, service: service, http: http, retry: retry, logger: serviceLogger)
    }
}
