/// An access key pair, with the session token that temporary (STS, instance-role) credentials carry.
///
/// The secret and the token never appear in `description`, `debugDescription` or `dump`, so credentials
/// can sit inside values that get logged without leaking.
public struct AWSCredentials: Sendable, Equatable {
    public let accessKeyID: String
    public let secretAccessKey: String
    public let sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
}

extension AWSCredentials: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    private static let redacted = "<redacted>"

    public var description: String {
        let token = sessionToken == nil ? "nil" : Self.redacted
        return "AWSCredentials(accessKeyID: \(accessKeyID), secretAccessKey: \(Self.redacted), sessionToken: \(token))"
    }

    public var debugDescription: String { description }

    // `dump` and the default description of enclosing types walk the mirror, not `description`.
    public var customMirror: Mirror {
        Mirror(self, children: [
            "accessKeyID": accessKeyID,
            "secretAccessKey": Self.redacted,
            "sessionToken": sessionToken == nil ? "nil" : Self.redacted,
        ])
    }
}
