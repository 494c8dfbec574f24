#if canImport(Glibc)
import Glibc
#endif

/// An error a person can act on: `message` is the whole line the CLI prints after
/// `lava-boot: error: `, so it says what failed and, where it helps, what to do.
public struct LavaError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Broad kinds, so callers and tests can tell errors apart without matching text.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let invalidSource = Code("invalid-source")
        public static let unsupported = Code("unsupported")
        public static let noSuchRealm = Code("no-such-realm")
        public static let invalidConfig = Code("invalid-config")
        public static let platform = Code("platform")
        public static let selection = Code("selection")
        public static let unsafeArchive = Code("unsafe-archive")
        public static let install = Code("install")
        public static let system = Code("system")
        public static let process = Code("process")
        /// Work given up because a stop was requested.
        public static let stopped = Code("stopped")
    }

    public var code: Code
    public var message: String
    /// The remote service's own error code (`ThrottlingException`, `ValidationError`), kept as a
    /// value so callers never match it back out of the message.
    public var serviceCode: String?

    public init(_ code: Code, _ message: String, serviceCode: String? = nil) {
        self.code = code
        self.message = message
        self.serviceCode = serviceCode
    }

    public var description: String { message }

    /// A failed system call: `open /opt/lava: Permission denied`.
    public static func errno(_ call: String, _ path: String? = nil, _ number: Int32 = Glibc.errno) -> LavaError {
        let reason = String(cString: strerror(number))
        let subject = path.map { "\(call) \($0)" } ?? call
        return LavaError(.system, "\(subject): \(reason)")
    }

    /// The same error with context in front: `installing lava-8.2.0: open ...`.
    public func prefixed(_ context: String) -> LavaError {
        LavaError(code, "\(context): \(message)", serviceCode: serviceCode)
    }
}
