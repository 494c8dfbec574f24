import LavaJSON
import LavaSystem

/// `--realms-file`: one item or several, in DynamoDB's typed JSON (`{"Item": {...}}`,
/// `{"Items": [...]}`) or plain JSON (an object with a `realm` key, or an array of them).
public enum RealmsFile {
    public static func load(path: String, realm: String) throws(LavaError) -> RealmItem {
        guard let bytes = try Files.read(path) else {
            throw LavaError(.invalidConfig, "realms file \(path) does not exist")
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
