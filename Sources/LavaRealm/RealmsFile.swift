import LavaJSON
import LavaSystem
#if canImport(Glibc)
import Glibc
#endif

/// `--realms-file`: one item or several, in DynamoDB's typed JSON (`{"Item": {...}}`,
/// `{"Items": [...]}`) or plain JSON (an object with a `realm` key, or an array of them).
public enum RealmsFile {
    public static func load(path: String, realm: String) throws(LavaError) -> RealmItem {
        let bytes = try readBounded(path)
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw LavaError(.invalidConfig, "realms file \(path) is not valid UTF-8")
        }
        let json: JSONValue
        do {
            json = try JSONValue(parsing: bytes)
        } catch {
            throw LavaError(.invalidConfig, "realms file \(path): \(error)")
        }
        let items: [RealmItem]
        do {
            items = try decodeItems(json)
        } catch {
            throw LavaError(.invalidConfig, "realms file \(path): \(error)")
        }
        guard let item = items.first(where: { $0["realm"] == .string(realm) }) else {
            throw LavaError(.noSuchRealm, "\(realm): no such realm")
        }
        return item
    }

    static let sizeLimit = 16 << 20

    /// A regular file of at most 16 MiB: a device, a FIFO or a huge file is refused, not read.
    static func readBounded(_ path: String) throws(LavaError) -> [UInt8] {
        // O_NONBLOCK: opening a FIFO must not wait for a writer before it can be refused.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { throw LavaError(.invalidConfig, "realms file \(path) does not exist") }
            throw LavaError.errno("open", path).prefixed("realms file")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw LavaError(.invalidConfig, "realms file \(path) is not a regular file")
        }
        guard info.st_size <= sizeLimit else {
            throw LavaError(.invalidConfig, "realms file \(path) is larger than 16 MiB")
        }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size) + 1)
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { raw in Files.retryingEINTR { read(fd, raw.baseAddress! + count, raw.count - count) } }
            if n < 0 { throw LavaError.errno("read", path).prefixed("realms file") }
            if n == 0 { break }
            count += n
        }
        // One byte more than fstat said means the file grew while read: judge what was read.
        guard count <= sizeLimit else { throw LavaError(.invalidConfig, "realms file \(path) is larger than 16 MiB") }
        return Array(bytes[0..<count])
    }

    static func decodeItems(_ json: JSONValue) throws(AttributeDecodingError) -> [RealmItem] {
        if let single = json["Item"] { return [try AttributeValue.item(typedJSON: single)] }
        if case .array(let elements)? = json["Items"] {
            var items = [RealmItem]()
            for element in elements { items.append(try AttributeValue.item(typedJSON: element)) }
            return items
        }
        if case .array(let elements) = json {
            var items = [RealmItem]()
            for element in elements { items.append(try decodeOne(element)) }
            return items
        }
        return [try decodeOne(json)]
    }

    /// One item, typed or plain: typed items spell their key as `"realm": {"S": ...}`.
    static func decodeOne(_ json: JSONValue) throws(AttributeDecodingError) -> RealmItem {
        guard json.objectMembers != nil else {
            throw AttributeDecodingError(path: "", reason: "an item must be a JSON object")
        }
        switch json["realm"] {
        case .object?:
            return try AttributeValue.item(typedJSON: json)
        case .string?:
            guard case .map(let map) = AttributeValue(plainJSON: json) else { return [:] }
            return map
        default:
            throw AttributeDecodingError(path: "", reason: "an item has no \"realm\" key")
        }
    }
}
