import LavaCrypto

/// The choices SigV4 leaves to each service. `.standard` fits every service except S3, which has `.s3`.
public struct SigningRules: Sendable, Equatable {
    /// Percent-encode the path as sent (itself already encoded once) a second time, so each `%` becomes
    /// `%25`. Without it the path is decoded and encoded exactly once, which is what S3 compares against.
    public var doubleEncodesPath: Bool
    /// Remove `.` and `..` segments (RFC 3986 §5.2.4) and empty segments before encoding. S3 keys may
    /// legitimately contain `//` or `/./`, so S3 signs the path untouched.
    public var normalizesPath: Bool
    /// Send `x-amz-content-sha256` with the payload hash and sign it; S3 requires it on every request.
    public var sendsContentSHA256: Bool
    /// Sign `X-Amz-Security-Token`. A few services want it added only after signing; it is sent either way.
    public var signsSessionToken: Bool
    /// What separates the three fields of the Authorization value. AWS accepts `,` and `, ` alike; the
    /// presets follow the form each service's documentation prints, so published examples match byte for byte.
    public var authorizationFieldSeparator: String

    public init(doubleEncodesPath: Bool, normalizesPath: Bool, sendsContentSHA256: Bool,
                signsSessionToken: Bool = true, authorizationFieldSeparator: String = ", ") {
        self.doubleEncodesPath = doubleEncodesPath
        self.normalizesPath = normalizesPath
        self.sendsContentSHA256 = sendsContentSHA256
        self.signsSessionToken = signsSessionToken
        self.authorizationFieldSeparator = authorizationFieldSeparator
    }

    /// Every service but S3: double-encoded, normalised path; payload hash only inside the signature.
    public static let standard = SigningRules(doubleEncodesPath: true, normalizesPath: true, sendsContentSHA256: false)

    /// S3: path encoded once and not normalised; `x-amz-content-sha256` always sent.
    public static let s3 = SigningRules(doubleEncodesPath: false, normalizesPath: false, sendsContentSHA256: true,
                                        authorizationFieldSeparator: ",")
}

/// Everything one signing produced: the headers to put on the request and, for diagnosis and tests,
/// the intermediate texts.
public struct SigningResult: Sendable {
    /// Headers to set on the request, replacing any of the same name: X-Amz-Date, x-amz-content-sha256
    /// (when the rules send it), X-Amz-Security-Token (when there is a token, signed or not) and Authorization.
    public let headers: [(name: String, value: String)]
    public let canonicalRequest: String
    public let stringToSign: String
    /// Lower-case hex HMAC-SHA256 of the string to sign.
    public let signature: String
    /// The Authorization header value.
    public let authorization: String
}

/// AWS Signature Version 4 for requests authenticated by the Authorization header.
///
/// A value type with no clock and no I/O: the signing date is a parameter, so the same inputs always give
/// the same signature. Each stage of the algorithm is public so its output can be compared on its own.
public struct SigV4Signer: Sendable {
    public static let algorithm = "AWS4-HMAC-SHA256"

    public let credentials: AWSCredentials
    public let region: String
    public let service: String
    public let rules: SigningRules

    public init(credentials: AWSCredentials, region: String, service: String, rules: SigningRules = .standard) {
        self.credentials = credentials
        self.region = region
        self.service = service
        self.rules = rules
    }

    /// Signs a request.
    ///
    /// - Parameters:
    ///   - method: the HTTP method as sent, e.g. `GET`.
    ///   - path: the request path as it goes on the wire (percent-encoded; build it with `percentEncode`).
    ///   - query: the query string as it goes on the wire, without the `?`; empty for none.
    ///   - headers: the headers that will be sent, which must include Host. All of them are signed, in any
    ///     order and case; repeated names are signed as one comma-joined value in the order given. Copies of
    ///     the headers this signer sets (see `SigningResult.headers`) are ignored.
    ///   - payloadHash: lower-case hex SHA-256 of the body (`SHA256.hash(body).hexString`), or a literal
    ///     the service accepts instead, such as S3's `UNSIGNED-PAYLOAD`.
    ///   - date: the signing instant; AWS rejects requests more than about 15 minutes off its clock.
    public func sign(method: String, path: String, query: String = "", headers: [(name: String, value: String)],
                     payloadHash: String, date: SigningDate) -> SigningResult {
        let canonical = canonicalForm(method: method, path: path, query: query, headers: headers,
                                      payloadHash: payloadHash, date: date)
        let stringToSign = stringToSign(canonicalRequest: canonical.text, date: date)
        let signature = signature(stringToSign: stringToSign, date: date)

        // Authorization names the key, the scope and which headers the signature covers.
        let separator = rules.authorizationFieldSeparator
        let authorization = "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(credentialScope(date: date))"
            + "\(separator)SignedHeaders=\(canonical.signedHeaders)\(separator)Signature=\(signature)"

        // The token goes on the request whether or not it was signed; some services want it unsigned.
        var headersToSet = signerSetHeaders(payloadHash: payloadHash, date: date)
        if let token = credentials.sessionToken, !rules.signsSessionToken {
            headersToSet.append((name: "X-Amz-Security-Token", value: token))
        }
        headersToSet.append((name: "Authorization", value: authorization))

        return SigningResult(headers: headersToSet, canonicalRequest: canonical.text, stringToSign: stringToSign,
                             signature: signature, authorization: authorization)
    }

    /// Stage 1, the canonical request: method, canonical path, canonical query, canonical headers, the
    /// signed header names and the payload hash, one per line. The signer's own headers are included.
    public func canonicalRequest(method: String, path: String, query: String = "",
                                 headers: [(name: String, value: String)],
                                 payloadHash: String, date: SigningDate) -> String {
        canonicalForm(method: method, path: path, query: query, headers: headers, payloadHash: payloadHash,
                      date: date).text
    }

    /// Stage 2, the string to sign: algorithm, instant, credential scope and the hex SHA-256 of the
    /// canonical request, so the secret-keyed step works on a short fixed-shape text.
    public func stringToSign(canonicalRequest: String, date: SigningDate) -> String {
        [
            Self.algorithm,
            date.amzDate,
            credentialScope(date: date),
            SHA256.hash(canonicalRequest.utf8).hexString,
        ].joined(separator: "\n")
    }

    /// Stage 3, the signature: HMAC-SHA256 of the string to sign under a key derived for this day, region
    /// and service, so a leaked derived key is useless elsewhere.
    public func signature(stringToSign: String, date: SigningDate) -> String {
        let dateKey = hmacSHA256(key: Array("AWS4\(credentials.secretAccessKey)".utf8), data: date.scopeDate.utf8)
        let regionKey = hmacSHA256(key: dateKey, data: region.utf8)
        let serviceKey = hmacSHA256(key: regionKey, data: service.utf8)
        let signingKey = hmacSHA256(key: serviceKey, data: "aws4_request".utf8)
        return hmacSHA256(key: signingKey, data: stringToSign.utf8).hexString
    }

    /// `yyyyMMdd/region/service/aws4_request`: what the derived key is valid for.
    public func credentialScope(date: SigningDate) -> String {
        "\(date.scopeDate)/\(region)/\(service)/aws4_request"
    }

    /// Percent-encodes text the way SigV4 canonicalises it: bytes outside `A-Z a-z 0-9 - . _ ~` become
    /// upper-case `%XX` of their UTF-8. Use it to build wire paths (keeping slashes) and query keys and values.
    public static func percentEncode(_ text: String, keepingSlashes: Bool = false) -> String {
        PercentEncoding.encode(text.utf8, keepingSlashes: keepingSlashes)
    }

    // MARK: - Canonical request

    private struct CanonicalForm {
        let text: String
        let signedHeaders: String
    }

    private func canonicalForm(method: String, path: String, query: String, headers: [(name: String, value: String)],
                               payloadHash: String, date: SigningDate) -> CanonicalForm {
        // Headers: the caller's minus any the signer sets itself, plus the signer's signed ones.
        let callerHeaders = headers.filter { !namesSetBySigner.contains($0.name.lowercased()) }
        let headerLines = canonicalHeaders(callerHeaders + signerSetHeaders(payloadHash: payloadHash, date: date))
        let signedHeaders = headerLines.map(\.name).joined(separator: ";")

        let lines = [
            method,
            canonicalPath(path),
            canonicalQuery(query),
            // Each header line ends in a newline of its own, so this block is followed by an empty line.
            headerLines.map { "\($0.name):\($0.value)\n" }.joined(),
            signedHeaders,
            payloadHash,
        ]
        return CanonicalForm(text: lines.joined(separator: "\n"), signedHeaders: signedHeaders)
    }

    /// Lower-cased names of every header `sign` sets, signed or not; the caller's copies are dropped so
    /// they are neither signed twice nor sent twice.
    private var namesSetBySigner: Set<String> {
        var names: Set = ["authorization", "x-amz-date"]
        if rules.sendsContentSHA256 { names.insert("x-amz-content-sha256") }
        if credentials.sessionToken != nil { names.insert("x-amz-security-token") }
        return names
    }

    /// Headers the signer puts in the signed set: X-Amz-Date always, the payload hash and the session
    /// token when the rules say so.
    private func signerSetHeaders(payloadHash: String, date: SigningDate) -> [(name: String, value: String)] {
        var headers = [(name: "X-Amz-Date", value: date.amzDate)]
        if rules.sendsContentSHA256 {
            headers.append((name: "x-amz-content-sha256", value: payloadHash))
        }
        if let token = credentials.sessionToken, rules.signsSessionToken {
            headers.append((name: "X-Amz-Security-Token", value: token))
        }
        return headers
    }

    /// The path as AWS recomputes it on receipt: normalised if the service does that, then encoded so that
    /// only unreserved bytes and `/` remain literal.
    private func canonicalPath(_ path: String) -> String {
        let wirePath = path.isEmpty ? "/" : path
        let pathToEncode = rules.normalizesPath ? Self.removingDotAndEmptySegments(wirePath) : wirePath
        // Double encoding escapes the wire form's `%` again; single encoding first undoes the wire escapes,
        // so whichever escapes the caller chose, the result is the one encoding S3 expects.
        let bytes = rules.doubleEncodesPath ? Array(pathToEncode.utf8) : PercentEncoding.decode(pathToEncode.utf8)
        return PercentEncoding.encode(bytes, keepingSlashes: true)
    }

    /// RFC 3986 dot-segment removal, also dropping empty segments (`//`). A path that ended in a directory
    /// (`/`, `/.` or `/..`) keeps its trailing slash; the result always starts with `/`.
    static func removingDotAndEmptySegments(_ path: String) -> String {
        // Split on the byte, not the Character: a combining mark after `/` would hide it from Character splitting.
        let segments = path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        var kept: [String] = []
        for segment in segments {
            switch segment {
            case "", ".": continue
            case "..": _ = kept.popLast()
            default: kept.append(segment)
            }
        }
        let endsInDirectory = segments.last.map { ["", ".", ".."].contains($0) } ?? false
        return kept.isEmpty ? "/" : "/" + kept.joined(separator: "/") + (endsInDirectory ? "/" : "")
    }

    /// Each `key=value` decoded and re-encoded with AWS's rules (a key with no `=` gets an empty value,
    /// written `key=`), sorted by encoded key then value, joined with `&`.
    private func canonicalQuery(_ query: String) -> String {
        let parameters = query.utf8.split(separator: UInt8(ascii: "&")).map { parameter in
            let key = parameter.prefix { $0 != UInt8(ascii: "=") }
            let value = parameter.dropFirst(key.count + 1)
            return (key: PercentEncoding.encode(PercentEncoding.decode(key), keepingSlashes: false),
                    value: PercentEncoding.encode(PercentEncoding.decode(value), keepingSlashes: false))
        }
        return parameters
            .sorted { left, right in
                left.key == right.key
                    ? Self.precedesByBytes(left.value, right.value)
                    : Self.precedesByBytes(left.key, right.key)
            }
            .map { "\($0.key)=\($0.value)" }
            .joined(separator: "&")
    }

    /// Names lower-cased and sorted; values trimmed with inner runs of blanks collapsed to one space;
    /// values of a repeated name joined by `,` in the order given.
    private func canonicalHeaders(_ headers: [(name: String, value: String)]) -> [(name: String, value: String)] {
        var valuesByName: [String: [String]] = [:]
        for header in headers {
            valuesByName[header.name.lowercased(), default: []].append(Self.trimmingAndCollapsingBlanks(header.value))
        }
        return valuesByName
            .map { (name: $0.key, value: $0.value.joined(separator: ",")) }
            .sorted { Self.precedesByBytes($0.name, $1.name) }
    }

    private static func trimmingAndCollapsingBlanks(_ value: String) -> String {
        let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        let words = value.utf8.split(whereSeparator: isBlank)
        return words.map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ")
    }

    /// AWS sorts by byte value; Swift's `String <` compares by Unicode canonical equivalence instead.
    private static func precedesByBytes(_ left: String, _ right: String) -> Bool {
        left.utf8.lexicographicallyPrecedes(right.utf8)
    }
}
