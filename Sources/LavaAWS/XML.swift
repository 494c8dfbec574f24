/// The small XML subset AWS responses use: elements, text, entities, CDATA; attributes are read
/// past. Enough for S3 listings and errors and awsQuery errors; not a general parser.
public struct XMLElement: Sendable, Equatable {
    public var name: String
    public var children: [XMLElement] = []
    public var text: String = ""

    /// The first direct child named `name` (namespace prefixes ignored).
    public func child(_ name: String) -> XMLElement? { children.first { $0.localName == name } }
    public func all(_ name: String) -> [XMLElement] { children.filter { $0.localName == name } }
    public var localName: String { name.split(separator: ":").last.map(String.init) ?? name }
    /// Text of a direct child, or nil.
    public subscript(_ name: String) -> String? { child(name)?.text }
}

public struct XMLParseError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { "invalid XML: \(reason)" }
}

public enum XMLDocument {
    public static func parse(_ bytes: [UInt8]) throws(XMLParseError) -> XMLElement {
        var parser = Parser(bytes: bytes)
        return try parser.document()
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        mutating func document() throws(XMLParseError) -> XMLElement {
            while true {
                skipSpace()
                if starts("<?") { try skip(past: "?>") }
                else if starts("<!--") { try skip(past: "-->") }
                else if starts("<!") { try skip(past: ">") }
                else { break }
            }
            guard starts("<") else { throw XMLParseError(reason: "no root element") }
            return try element(depth: 0)
        }

        func starts(_ text: String) -> Bool {
            let pattern = Array(text.utf8)
            return bytes.count - index >= pattern.count && Array(bytes[index..<index + pattern.count]) == pattern
        }

        mutating func skip(past text: String) throws(XMLParseError) {
            while index < bytes.count {
                if starts(text) { index += text.utf8.count; return }
                index += 1
            }
            throw XMLParseError(reason: "unterminated \(text)")
        }

        mutating func skipSpace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        mutating func name() -> String {
            let start = index
            while index < bytes.count, ![0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ">"), UInt8(ascii: "/"), UInt8(ascii: "=")].contains(bytes[index]) {
                index += 1
            }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        mutating func element(depth: Int) throws(XMLParseError) -> XMLElement {
            guard depth < 64 else { throw XMLParseError(reason: "nested too deeply") }
            index += 1  // <
            var element = XMLElement(name: name())
            // Attributes: skipped, quotes respected.
            while index < bytes.count, bytes[index] != UInt8(ascii: ">") {
                if bytes[index] == UInt8(ascii: "/"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: ">") {
                    index += 2
                    return element
                }
                if bytes[index] == UInt8(ascii: "\"") || bytes[index] == UInt8(ascii: "'") {
                    let quote = bytes[index]
                    index += 1
                    while index < bytes.count, bytes[index] != quote { index += 1 }
                }
                index += 1
            }
            guard index < bytes.count else { throw XMLParseError(reason: "unterminated tag <\(element.name)>") }
            index += 1  // >
            var text = [UInt8]()
            while index < bytes.count {
                if starts("</") {
                    index += 2
                    let closing = name()
                    guard closing == element.name else { throw XMLParseError(reason: "</\(closing)> closes <\(element.name)>") }
                    skipSpace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ">") else { throw XMLParseError(reason: "bad closing tag") }
                    index += 1
                    element.text = try decodeEntities(text)
                    return element
                } else if starts("<![CDATA[") {
                    index += 9
                    let start = index
                    try skip(past: "]]>")
                    text.append(contentsOf: bytes[start..<index - 3])
                } else if starts("<!--") {
                    try skip(past: "-->")
                } else if bytes[index] == UInt8(ascii: "<") {
                    element.children.append(try self.element(depth: depth + 1))
                } else {
                    text.append(bytes[index])
                    index += 1
                }
            }
            throw XMLParseError(reason: "unterminated element <\(element.name)>")
        }

        func decodeEntities(_ raw: [UInt8]) throws(XMLParseError) -> String {
            let text = String(decoding: raw, as: UTF8.self)
            guard text.contains("&") else { return text }
            var out = ""
            var rest = Substring(text)
            while let amp = rest.firstIndex(of: "&") {
                out += rest[..<amp]
                guard let semi = rest[amp...].firstIndex(of: ";") else { throw XMLParseError(reason: "bad entity") }
                let entity = rest[rest.index(after: amp)..<semi]
                switch entity {
                case "amp": out += "&"
                case "lt": out += "<"
                case "gt": out += ">"
                case "quot": out += "\""
                case "apos": out += "'"
                default:
                    let value: UInt32?
                    if entity.hasPrefix("#x") { value = UInt32(entity.dropFirst(2), radix: 16) }
                    else if entity.hasPrefix("#") { value = UInt32(entity.dropFirst(1)) }
                    else { value = nil }
                    guard let value, let scalar = Unicode.Scalar(value) else { throw XMLParseError(reason: "bad entity &\(entity);") }
                    out.unicodeScalars.append(scalar)
                }
                rest = rest[rest.index(after: semi)...]
            }
            return out + rest
        }
    }
}
