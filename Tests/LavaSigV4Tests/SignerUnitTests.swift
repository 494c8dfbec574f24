import Foundation
import LavaCrypto
import LavaSigV4
import Testing

/// Rules the vector suites do not pin down, checked directly.
@Suite("SigV4 signer details")
struct SignerUnitTests {
    static let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE",
                                            secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                            sessionToken: "session-token-value")
    static let date = SigningDate(secondsSinceEpoch: 1_440_938_160)  // 2015-08-30T12:36:00Z
    static let emptyPayloadHash = SHA256.hash([UInt8]()).hexString

    /// The canonical request's lines for a GET with just a Host header.
    static func canonicalLines(rules: SigningRules, path: String = "/", query: String = "",
                               headers: [(name: String, value: String)] = []) -> [String] {
        let signer = SigV4Signer(credentials: credentials, region: "us-east-1", service: "service", rules: rules)
        let request = signer.canonicalRequest(method: "GET", path: path, query: query,
                                              headers: [(name: "Host", value: "example.com")] + headers,
                                              payloadHash: emptyPayloadHash, date: date)
        return request.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    @Test("amz and scope dates", arguments: [
        (Int64(0), "19700101T000000Z"),
        (-1, "19691231T235959Z"),
        (951_782_400, "20000229T000000Z"),          // leap day of a 400-year leap year
        (4_107_542_399, "21000228T235959Z"),        // 2100 is not a leap year...
        (4_107_542_400, "21000301T000000Z"),        // ...so 28 February is followed by 1 March
        (1_440_938_160, "20150830T123600Z"),
        (253_402_300_799, "99991231T235959Z"),
    ])
    func amzDate(secondsSinceEpoch: Int64, expected: String) {
        let date = SigningDate(secondsSinceEpoch: secondsSinceEpoch)
        #expect(date.amzDate == expected)
        #expect(date.scopeDate == String(expected.prefix(8)))
    }

    @Test("dates agree with Foundation's calendar from 1900 to 2400")
    func datesAgreeWithFoundation() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
        // A step that is not a multiple of a day or an hour, so every time of day and month gets visited.
        let start: Int64 = -2_208_988_800  // 1900-01-01
        let end: Int64 = 13_569_465_600    // 2400-01-01
        for seconds in stride(from: start, to: end, by: 1_000_003 * 7) {
            let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second],
                                                from: Date(timeIntervalSince1970: TimeInterval(seconds)))
            let expected = String(format: "%04ld%02ld%02ldT%02ld%02ld%02ldZ", parts.year ?? -1, parts.month ?? -1,
                                  parts.day ?? -1, parts.hour ?? -1, parts.minute ?? -1, parts.second ?? -1)
            let actual = SigningDate(secondsSinceEpoch: seconds).amzDate
            #expect(actual == expected, "at \(seconds) seconds since the epoch")
            if actual != expected { return }
        }
    }

    @Test("percent-encoding keeps only unreserved bytes, upper-case hex of UTF-8 otherwise")
    func percentEncoding() {
        #expect(SigV4Signer.percentEncode("AZaz09-._~") == "AZaz09-._~")
        #expect(SigV4Signer.percentEncode("a b+c/d=e&f%") == "a%20b%2Bc%2Fd%3De%26f%25")
        #expect(SigV4Signer.percentEncode("dir/file name", keepingSlashes: true) == "dir/file%20name")
        #expect(SigV4Signer.percentEncode("\u{1234}é") == "%E1%88%B4%C3%A9")
    }

    @Test("standard rules normalise and double-encode the path", arguments: [
        ("", "/"),
        ("/a/b/..", "/a/"),
        ("/a/./b//c", "/a/b/c"),
        ("/a/b/.", "/a/b/"),
        ("/../a", "/a"),
        ("/a%20b", "/a%2520b"),
    ])
    func standardPath(path: String, expected: String) {
        #expect(Self.canonicalLines(rules: .standard, path: path)[1] == expected)
    }

    @Test("S3 rules encode the path exactly once and keep dot and empty segments", arguments: [
        ("", "/"),
        ("/bucket/a b$c", "/bucket/a%20b%24c"),
        ("/bucket/a%20b%24c", "/bucket/a%20b%24c"),
        ("/bucket//./../key", "/bucket//./../key"),
        ("/bucket/100%", "/bucket/100%25"),
    ])
    func s3Path(path: String, expected: String) {
        #expect(Self.canonicalLines(rules: .s3, path: path)[1] == expected)
    }

    @Test("query parameters are re-encoded and sorted by key, then value; bare keys get '='")
    func canonicalQuery() {
        let lines = Self.canonicalLines(rules: .standard, query: "b=2&a=1&a=0&&c&d=%7e+x&%E1%88%B4=")
        #expect(lines[2] == "%E1%88%B4=&a=0&a=1&b=2&c=&d=~%2Bx")
    }

    @Test("header names lower-cased and sorted, values trimmed and collapsed, repeats joined in order")
    func canonicalHeaders() {
        let lines = Self.canonicalLines(rules: .standard, headers: [
            (name: "Zeta", value: "  two\t\twords  "),
            (name: "alpha", value: "second"),
            (name: "ALPHA", value: "third"),
        ])
        // Host is first in the input, yet "alpha" sorts before "host".
        #expect(lines[3] == "alpha:second,third")
        #expect(lines[4] == "host:example.com")
        #expect(lines.contains("zeta:two words"))
        #expect(lines[lines.count - 2] == "alpha;host;x-amz-date;x-amz-security-token;zeta")
    }

    @Test("copies of the headers the signer sets are replaced, not signed or sent twice")
    func signerHeadersReplaceCallerCopies() {
        let signer = SigV4Signer(credentials: Self.credentials, region: "us-east-1", service: "s3", rules: .s3)
        let result = signer.sign(method: "GET", path: "/", headers: [
            (name: "Host", value: "example.com"),
            (name: "X-Amz-Date", value: "19990101T000000Z"),
            (name: "x-amz-content-sha256", value: "stale"),
            (name: "Authorization", value: "stale"),
        ], payloadHash: Self.emptyPayloadHash, date: Self.date)
        #expect(!result.canonicalRequest.contains("stale"))
        #expect(!result.canonicalRequest.contains("19990101"))
        #expect(result.headers.map(\.name) ==
                ["X-Amz-Date", "x-amz-content-sha256", "X-Amz-Security-Token", "Authorization"])
        #expect(result.authorization.hasPrefix(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request,SignedHeaders=host;"))
    }

    @Test("an unsigned session token is still sent, but left out of the canonical request")
    func unsignedSessionToken() {
        var rules = SigningRules.standard
        rules.signsSessionToken = false
        let signer = SigV4Signer(credentials: Self.credentials, region: "us-east-1", service: "service", rules: rules)
        let result = signer.sign(method: "GET", path: "/", headers: [(name: "Host", value: "example.com")],
                                 payloadHash: Self.emptyPayloadHash, date: Self.date)
        #expect(!result.canonicalRequest.contains("session-token-value"))
        #expect(result.headers.contains { $0.name == "X-Amz-Security-Token" && $0.value == "session-token-value" })
        #expect(result.authorization.contains("SignedHeaders=host;x-amz-date,"))
    }

    @Test("credentials never print the secret or the token")
    func credentialsStayHidden() {
        let signer = SigV4Signer(credentials: Self.credentials, region: "us-east-1", service: "service")
        var dumped = ""
        dump(signer, to: &dumped)
        for text in [String(describing: Self.credentials), String(reflecting: Self.credentials),
                     String(describing: signer), dumped] {
            #expect(text.contains("AKIDEXAMPLE"))
            #expect(!text.contains("wJalrXUtnFEMI"), "secret visible in: \(text)")
            #expect(!text.contains("session-token-value"), "token visible in: \(text)")
        }
    }
}
