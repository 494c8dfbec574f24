import LavaSystem

/// The instant a request is signed, in the two UTC forms SigV4 writes it.
///
/// It is a parameter of signing rather than read from a clock, so signatures are reproducible in tests;
/// callers take the current time from wherever they keep it.
public struct SigningDate: Sendable, Equatable {
    /// `yyyyMMdd'T'HHmmss'Z'`: the X-Amz-Date header and the second line of the string to sign.
    public let amzDate: String
    /// `yyyyMMdd`: the first component of the credential scope.
    public let scopeDate: String

    /// - Parameter secondsSinceEpoch: seconds since 1970-01-01T00:00:00Z, ignoring leap seconds (Unix time).
    ///   Meant for years 1000...9999, which fill the fixed-width fields exactly; AWS accepts no others.
    public init(secondsSinceEpoch: Int64) {
        let time = CivilTime(epochSeconds: Double(secondsSinceEpoch))
        scopeDate = Self.zeroPadded(time.year, width: 4) + Self.zeroPadded(time.month, width: 2)
            + Self.zeroPadded(time.day, width: 2)
        amzDate = scopeDate + "T" + Self.zeroPadded(time.hour, width: 2) + Self.zeroPadded(time.minute, width: 2)
            + Self.zeroPadded(time.second, width: 2) + "Z"
    }

    private static func zeroPadded(_ value: Int, width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
