/// One HTTP request. `headers` go out in order, exactly as given (names are not case-folded);
/// libcurl adds `Host`, `User-Agent` (the client's), `Accept: */*` and `Content-Length`, and
/// nothing else: no `Expect: 100-continue`, no default `Content-Type` on a body.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(method: String = "GET", url: String, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

/// Response header fields in arrival order. Lookup ignores ASCII case; a repeated field keeps
/// every occurrence (`values(for:)`), and the subscript gives the first.
public struct HTTPHeaders: Sendable, Sequence {
    public typealias Field = (name: String, value: String)

    public private(set) var fields: [Field] = []

    public init(_ fields: [(String, String)] = []) {
        self.fields = fields.map { (name: $0.0, value: $0.1) }
    }

    public subscript(_ name: String) -> String? {
        fields.first { HTTPHeaders.sameName($0.name, name) }?.value
    }

    public func values(for name: String) -> [String] {
        fields.filter { HTTPHeaders.sameName($0.name, name) }.map(\.value)
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    public var count: Int { fields.count }

    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }

    mutating func append(name: String, value: String) {
        fields.append((name: name, value: value))
    }

    /// An obsolete folded line (leading whitespace) continues the previous field's value.
    mutating func continueLast(with text: String) {
        guard !fields.isEmpty else { return }
        fields[fields.count - 1].value += " " + text
    }

    /// Header names are ASCII tokens, so ASCII case folding is the whole comparison.
    static func sameName(_ a: String, _ b: String) -> Bool {
        let x = a.utf8, y = b.utf8
        guard x.count == y.count else { return false }
        return zip(x, y).allSatisfy { lowercase($0) == lowercase($1) }
    }

    private static func lowercase(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }
}

/// A response read whole: for API calls whose bodies are small. A non-2xx status is a response
/// like any other, not an error; only transport failures throw.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int, headers: HTTPHeaders, body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The body as UTF-8 text (invalid sequences replaced).
    public var text: String { String(decoding: body, as: UTF8.self) }
}
