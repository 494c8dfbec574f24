import LavaHTTP
import LavaSigV4
import LavaSystem

/// One S3 object as listed or HEADed.
public struct S3Object: Sendable, Equatable {
    public var key: String
    public var size: Int64
    public var modified: Double
    /// Without the quotes S3 puts around it.
    public var etag: String?
    /// `x-amz-checksum-sha256` of the whole object, when HEAD gave one (never for multipart
    /// objects, whose checksum is of their parts).
    public var checksumSHA256: String? = nil
}

/// The S3 calls lava-boot makes: ListObjectsV2 (every page), HeadObject, GetObject.
public struct S3Client: Sendable {
    public let client: AWSServiceClient

    public init(client: AWSServiceClient) { self.client = client }

    /// Path-style on a custom endpoint, virtual-hosted on AWS (path-style there for dotted
    /// bucket names, which TLS wildcards cannot cover).
    func address(bucket: String, key: String) -> (endpoint: String, path: String) {
        let encodedKey = SigV4Signer.percentEncode(key, keepingSlashes: true)
        let (endpoint, isCustom) = client.endpoint
        if isCustom || bucket.contains(".") { return (endpoint, "/\(bucket)/\(encodedKey)") }
        return ("https://\(bucket).s3.\(client.context.region).\(client.context.dnsSuffix)", "/\(encodedKey)")
    }

    /// Every object under `prefix` (with `delimiter`, only direct children, plus the common prefixes).
    public func list(bucket: String, prefix: String, delimiter: String?) throws(LavaError) -> (objects: [S3Object], prefixes: [String]) {
        var objects = [S3Object]()
        var prefixes = [String]()
        var token: String? = nil
        let (endpoint, path) = address(bucket: bucket, key: "")
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix)]
            if let delimiter { query.append(("delimiter", delimiter)) }
            if let token { query.append(("continuation-token", token)) }
            let response = try client.send(AWSRequest(operation: "ListObjectsV2", method: "GET", endpoint: endpoint, path: path, query: query))
            let root: XMLElement
            do {
                root = try XMLDocument.parse(response.body)
            } catch {
                throw LavaError(.aws, "s3 ListObjectsV2 s3://\(bucket)/\(prefix): \(error)")
            }
            for item in root.all("Contents") {
                guard let key = item["Key"], let size = item["Size"].flatMap({ Int64($0) }) else { continue }
                objects.append(S3Object(key: key, size: size,
                                        modified: item["LastModified"].flatMap(CivilTime.epochSeconds(iso8601:)) ?? 0,
                                        etag: item["ETag"].map(S3Client.unquote)))
            }
            for common in root.all("CommonPrefixes") {
                if let value = common["Prefix"] { prefixes.append(value) }
            }
            token = root["IsTruncated"] == "true" ? root["NextContinuationToken"] : nil
        } while token != nil
        return (objects, prefixes)
    }

    /// The object's metadata, or nil when it does not exist.
    public func head(bucket: String, key: String) throws(LavaError) -> S3Object? {
        let (endpoint, path) = address(bucket: bucket, key: key)
        let response = try client.send(AWSRequest(operation: "HeadObject", method: "HEAD", endpoint: endpoint, path: path,
                                                  headers: [("x-amz-checksum-mode", "ENABLED")]), accepting: [404])
        if response.status == 404 { return nil }
        return S3Object(key: key, size: response.headers["Content-Length"].flatMap { Int64($0) } ?? 0,
                        modified: response.headers["Last-Modified"].flatMap(HTTPDate.epochSeconds) ?? 0,
                        etag: response.headers["ETag"].map(S3Client.unquote),
                        checksumSHA256: S3Client.wholeObjectChecksum(response.headers["x-amz-checksum-sha256"]))
    }

    /// A multipart object's checksum is of its parts ("...-N"), not of the whole body.
    static func wholeObjectChecksum(_ header: String?) -> String? {
        header.flatMap { $0.contains("-") ? nil : $0 }
    }

    /// GetObject, streamed, of the bytes from `offset` up to `end` (exclusive; nil: to the end);
    /// `ifMatch` pins the object for resumes and parts. 412 and 404 come back as responses.
    public func get(bucket: String, key: String, from offset: Int64 = 0, to end: Int64? = nil, ifMatch: String? = nil) throws(LavaError) -> HTTPResponseStream {
        let (endpoint, path) = address(bucket: bucket, key: key)
        var headers = [("x-amz-checksum-mode", "ENABLED")]
        if let end {
            headers.append(("Range", "bytes=\(offset)-\(end - 1)"))
        } else if offset > 0 {
            headers.append(("Range", "bytes=\(offset)-"))
        }
        if let ifMatch { headers.append(("If-Match", "\"\(ifMatch)\"")) }
        return try client.stream(AWSRequest(operation: "GetObject", method: "GET", endpoint: endpoint, path: path, headers: headers),
                                 accepting: [404, 412])
    }

    static func unquote(_ etag: String) -> String {
        var value = Substring(etag)
        if value.hasPrefix("W/") { value = value.dropFirst(2) }
        if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = value.dropFirst().dropLast() }
        return String(value)
    }
}

/// `Mon, 23 Nov 2026 19:11:41 GMT` (RFC 7231 IMF-fixdate).
enum HTTPDate {
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func epochSeconds(_ text: String) -> Double? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[5] == "GMT", let day = Int(parts[1]), let monthIndex = months.firstIndex(of: String(parts[2])),
              let year = Int(parts[3]) else { return nil }
        let two = { (n: Int) in n < 10 ? "0\(n)" : "\(n)" }
        return CivilTime.epochSeconds(iso8601: "\(year)-\(two(monthIndex + 1))-\(two(day))T\(parts[4])Z")
    }
}
