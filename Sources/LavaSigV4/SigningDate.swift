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
        let secondsPerDay: Int64 = 86_400
        // Floor division, so instants before 1970 land on the right day.
        let (quotient, remainder) = secondsSinceEpoch.quotientAndRemainder(dividingBy: secondsPerDay)
        let days = remainder < 0 ? quotient - 1 : quotient
        let secondOfDay = remainder < 0 ? remainder + secondsPerDay : remainder

        let (year, month, day) = Self.civilDate(daysSinceEpoch: days)
        let hour = secondOfDay / 3600
        let minute = secondOfDay % 3600 / 60
        let second = secondOfDay % 60

        scopeDate = Self.zeroPadded(year, width: 4) + Self.zeroPadded(month, width: 2) + Self.zeroPadded(day, width: 2)
        amzDate = scopeDate + "T" + Self.zeroPadded(hour, width: 2) + Self.zeroPadded(minute, width: 2)
            + Self.zeroPadded(second, width: 2) + "Z"
    }

    /// Proleptic Gregorian year, month and day of a day count since 1970-01-01.
    ///
    /// Howard Hinnant's `civil_from_days`: shift to a calendar whose years start on 1 March (so the leap
    /// day ends the year), split into 400-year eras of 146 097 days, then find the year of the era,
    /// the day of that year and finally the month with the 153-days-per-5-months rule.
    static func civilDate(daysSinceEpoch: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let daysSinceMarchFirstYear0 = daysSinceEpoch + 719_468
        let era = (daysSinceMarchFirstYear0 >= 0 ? daysSinceMarchFirstYear0 : daysSinceMarchFirstYear0 - 146_096) / 146_097
        let dayOfEra = daysSinceMarchFirstYear0 - era * 146_097                                   // 0...146096
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365  // 0...399
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)               // 0...365, from 1 March
        let shiftedMonth = (5 * dayOfYear + 2) / 153                                                 // 0 = March ... 11 = February
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        // January and February belong to the next civil year of a March-based year.
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    private static func zeroPadded(_ value: Int64, width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
