import LavaJSON

/// A DynamoDB attribute value, the one model both the realms table and `--realms-file` decode into.
public indirect enum AttributeValue: Sendable, Equatable {
    case string(String)
    case number(String)
    case bool(Bool)
    case null
    case map([String: AttributeValue])
    case list([AttributeValue])
    case stringSet([String])
    case numberSet([String])
    case binary(String)
    case binarySet([String])

    /// DynamoDB's type descriptor, as error messages name it.
    public var typeName: String {
        switch self {
        case .string: return "S"
        case .number: return "N"
        case .bool: return "BOOL"
        case .null: return "NULL"
        case .map: return "M"
        case .list: return "L"
        case .stringSet: return "SS"
        case .numberSet: return "NS"
        case .binary: return "B"
        case .binarySet: return "BS"
        }
    }

    /// How a value is shown in an error: strings quoted, numbers bare.
    public var displayText: String {
        switch self {
        case .string(let text): return "\"\(text)\""
        case .number(let text): return text
        case .bool(let value): return value ? "true" : "false"
        case .null: return "null"
        default: return "(\(typeName))"
        }
    }
}

public typealias RealmItem = [String: AttributeValue]

public struct AttributeDecodingError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { path.isEmpty ? reason : "\(path): \(reason)" }
}

extension AttributeValue {
    /// DynamoDB's typed JSON: `{"S": "x"}`, `{"N": "5"}`, `{"M": {...}}`, ...
    public init(typedJSON json: JSONValue, path: String = "") throws(AttributeDecodingError) {
        guard let members = json.objectMembers, members.count == 1, let member = members.first else {
            throw AttributeDecodingError(path: path, reason: "expected a typed value such as {\"S\": ...}")
        }
        func strings(_ value: JSONValue) throws(AttributeDecodingError) -> [String] {
            guard case .array(let elements) = value else {
                throw AttributeDecodingError(path: path, reason: "\(member.key) must be a list")
            }
            var out = [String]()
            for element in elements {
                guard let text = element.stringValue else {
                    throw AttributeDecodingError(path: path, reason: "\(member.key) must hold strings")
                }
                out.append(text)
            }
            return out
        }
        switch (member.key, member.value) {
        case ("S", .string(let text)): self = .string(text)
        case ("N", .string(let text)): self = .number(text)
        case ("B", .string(let text)): self = .binary(text)
        case ("BOOL", .bool(let value)): self = .bool(value)
        case ("NULL", .bool(true)): self = .null
        case ("SS", let value): self = .stringSet(try strings(value))
        case ("NS", let value): self = .numberSet(try strings(value))
        case ("BS", let value): self = .binarySet(try strings(value))
        case ("M", .object(let entries)):
            var map = [String: AttributeValue]()
            for entry in entries {
                map[entry.key] = try AttributeValue(typedJSON: entry.value, path: AttributeValue.join(path, entry.key))
            }
            self = .map(map)
        case ("L", .array(let elements)):
            var list = [AttributeValue]()
            for (index, element) in elements.enumerated() {
                list.append(try AttributeValue(typedJSON: element, path: "\(path)[\(index)]"))
            }
            self = .list(list)
        default:
            throw AttributeDecodingError(path: path, reason: "invalid typed value {\"\(member.key)\": ...}")
        }
    }

    /// Plain JSON: strings are S, numbers N, objects M, arrays L.
    public init(plainJSON json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let value): self = .bool(value)
        case .number(let text): self = .number(text)
        case .string(let text): self = .string(text)
        case .array(let elements): self = .list(elements.map(AttributeValue.init(plainJSON:)))
        case .object(let members):
            var map = [String: AttributeValue]()
            for member in members { map[member.key] = AttributeValue(plainJSON: member.value) }
            self = .map(map)
        }
    }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// Decodes a whole item in DynamoDB's typed form (`{"realm": {"S": ...}, ...}`).
    public static func item(typedJSON json: JSONValue) throws(AttributeDecodingError) -> RealmItem {
        guard let members = json.objectMembers else {
            throw AttributeDecodingError(path: "", reason: "an item must be a JSON object")
        }
        var item = RealmItem()
        for member in members { item[member.key] = try AttributeValue(typedJSON: member.value, path: member.key) }
        return item
    }
}

extension AttributeValue {
    /// DynamoDB's typed JSON for this value, as requests carry it.
    public var typedJSON: JSONValue {
        func typed(_ type: String, _ value: JSONValue) -> JSONValue { .object([JSONMember(type, value)]) }
        switch self {
        case .string(let text): return typed("S", .string(text))
        case .number(let text): return typed("N", .string(text))
        case .binary(let text): return typed("B", .string(text))
        case .bool(let value): return typed("BOOL", .bool(value))
        case .null: return typed("NULL", .bool(true))
        case .stringSet(let texts): return typed("SS", .array(texts.map { .string($0) }))
        case .numberSet(let texts): return typed("NS", .array(texts.map { .string($0) }))
        case .binarySet(let texts): return typed("BS", .array(texts.map { .string($0) }))
        case .map(let map):
            return typed("M", .object(map.sorted { $0.key < $1.key }.map { JSONMember($0.key, $0.value.typedJSON) }))
        case .list(let list): return typed("L", .array(list.map(\.typedJSON)))
        }
    }
}
