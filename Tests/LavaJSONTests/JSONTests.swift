import LavaJSON
import LavaTestSupport
import Testing

/// The JSON parser and serializer behind realms files, `plan --json` and JSON logs.
@Suite struct JSONTests {
    // MARK: Parsing

    @Test func parsesEveryKindOfValue() throws {
        let value = try JSONValue(parsing: #" { "a" : [1, -2.5e+3, true, false, null, "x"], "b": {} , "c": [] } "#)
        #expect(value == .object([
            JSONMember("a", .array([.number("1"), .number("-2.5e+3"), .bool(true), .bool(false), .null, .string("x")])),
            JSONMember("b", .object([])),
            JSONMember("c", .array([])),
        ]))
        #expect(value["a"] != nil)
        #expect(value["missing"] == nil)
        #expect(value["b"]?.objectMembers?.isEmpty == true)
        #expect(value["a"]?.stringValue == nil)
    }

    @Test(arguments: ["12345678901234567890", "1.50", "-0", "0.000", "1E400", "-123456789012345678901234567890.000001",
                      "9007199254740993", "1e-7"])
    func numbersKeepTheirSourceText(_ text: String) throws {
        let value = try JSONValue(parsing: "[\(text)]")
        #expect(value == .array([.number(text)]))
        #expect(value.serialized() == "[\(text)]")
    }

    @Test func scalarDocumentsAreAccepted() throws {
        #expect(try JSONValue(parsing: "42") == .number("42"))
        #expect(try JSONValue(parsing: "\"s\"") == .string("s"))
        #expect(try JSONValue(parsing: " null ") == .null)
        #expect(try JSONValue(parsing: "true") == .bool(true))
    }

    @Test func objectsKeepKeyOrder() throws {
        let value = try JSONValue(parsing: #"{"z": 1, "a": 2, "m": 3}"#)
        #expect(value.objectMembers?.map(\.key) == ["z", "a", "m"])
        #expect(value.serialized() == #"{"z":1,"a":2,"m":3}"#)
    }

    @Test func escapesAreDecoded() throws {
        let value = try JSONValue(parsing: #""q\" b\\ s\/ \b\f\n\r\t u\u0041\u00e9\u4e2d""#)
        #expect(value == .string("q\" b\\ s/ \u{08}\u{0C}\n\r\t uA\u{E9}\u{4E2D}"))
    }

    @Test func surrogatePairsBecomeOneScalar() throws {
        let value = try JSONValue(parsing: #""\ud83d\ude00 \uD834\uDD1E""#)
        #expect(value == .string("\u{1F600} \u{1D11E}"))
        #expect(value.stringValue?.unicodeScalars.count == 3)
    }

    @Test func rawUTF8PassesThrough() throws {
        let value = try JSONValue(parsing: "\"Grüße 😀 中文\"")
        #expect(value == .string("Grüße 😀 中文"))
    }

    @Test func byteOrderMarkIsSkipped() throws {
        let value = try JSONValue(parsing: [0xEF, 0xBB, 0xBF] + Array(#"{"a": "b"}"#.utf8))
        #expect(value["a"] == .string("b"))
    }

    // MARK: Errors

    @Test(arguments: [
        ("", 0, "end of input"),
        ("   ", 3, "end of input"),
        ("[1, 2", 5, "end of input"),
        ("{\"a\" 1}", 5, "':'"),
        ("{\"a\": 1,}", 8, "string key"),
        ("{a: 1}", 1, "string key"),
        ("[1 2]", 3, "','"),
        ("[1] x", 4, "after the document"),
        ("tru", 0, "unexpected character"),
        ("nul", 0, "unexpected character"),
        ("01", 2, "leading zero"),
        ("[1.]", 3, "digits after '.'"),
        ("1e", 2, "exponent"),
        ("-", 1, "unexpected character"),
        ("+1", 0, "unexpected character"),
        (".5", 0, "unexpected character"),
        ("\"abc", 4, "unterminated"),
        ("\"a\nb\"", 3, "control character"),
        ("\"\\x\"", 3, "invalid escape"),
        ("\"\\u12\"", 3, "\\u escape"),
        ("\"\\u12G4\"", 6, "\\u escape"),
        ("\"\\ud800\"", 7, "unpaired surrogate"),
        ("\"\\ud800\\u0041\"", 13, "unpaired surrogate"),
        ("\"\\udc00\"", 7, "\\u escape"),
    ] as [(String, Int, String)])
    func errorsNameTheByteOffset(_ text: String, _ offset: Int, _ reason: String) {
        do {
            let value = try JSONValue(parsing: text)
            Issue.record("\(text.debugDescription) parsed as \(value)")
        } catch {
            #expect(error.offset == offset, "\(text.debugDescription): \(error)")
            #expect(error.reason.contains(reason), "\(text.debugDescription): \(error)")
            #expect(error.description == "invalid JSON at byte \(error.offset): \(error.reason)")
        }
    }

    @Test func nestingUpTo512LevelsIsAccepted() throws {
        let text = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        var value = try JSONValue(parsing: text)
        var depth = 0
        while case .array(let elements) = value, let first = elements.first {
            value = first
            depth += 1
        }
        #expect(depth == 511)
        #expect(value == .array([]))
    }

    @Test func nestingBeyond512LevelsIsAnErrorNotACrash() {
        let arrays = String(repeating: "[", count: 513) + String(repeating: "]", count: 513)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: arrays) }
        do {
            _ = try JSONValue(parsing: arrays)
        } catch {
            #expect(error.reason.contains("nested too deeply"))
            #expect(error.offset == 512)
        }
        let objects = String(repeating: "{\"a\":", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: objects) }
        let mixed = String(repeating: "[{\"k\":", count: 300) + "1" + String(repeating: "}]", count: 300)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: mixed) }
    }

    // MARK: Serializing

    @Test func compactSerialization() {
        let value = JSONValue.object([
            JSONMember("s", .string("x")),
            JSONMember("n", .number(5)),
            JSONMember("big", .number("12345678901234567890")),
            JSONMember("d", .number("1.50")),
            JSONMember("a", .array([.null, .bool(true), .bool(false)])),
            JSONMember("o", .object([])),
            JSONMember("e", .array([])),
        ])
        #expect(value.serialized() == #"{"s":"x","n":5,"big":12345678901234567890,"d":1.50,"a":[null,true,false],"o":{},"e":[]}"#)
    }

    @Test func prettySerializationIndentsTwoSpaces() {
        let value = JSONValue.object([
            JSONMember("a", .array([.number(1), .object([JSONMember("b", .string("c"))])])),
            JSONMember("empty", .object([])),
        ])
        let expected = """
        {
          "a": [
            1,
            {
              "b": "c"
            }
          ],
          "empty": {}
        }
        """
        #expect(value.serialized(pretty: true) == expected)
    }

    @Test func stringsAreEscapedOnOutput() {
        let value = JSONValue.string("q\" b\\ n\n r\r t\t nul\u{0} bell\u{07} us\u{1F} del\u{7F} é 😀 /")
        #expect(value.serialized() == #""q\" b\\ n\n r\r t\t nul\u0000 bell\u0007 us\u001f del"# + "\u{7F} é 😀 /\"")
        var out = "prefix:"
        appendJSONString("a\"b", to: &out)
        #expect(out == #"prefix:"a\"b""#)
    }

    @Test func keysAreEscapedOnOutput() {
        let value = JSONValue.object([JSONMember("k\"\n", .null)])
        #expect(value.serialized() == #"{"k\"\n":null}"#)
    }

    @Test(arguments: [
        #"{"realm":{"S":"prod"},"x-workers":{"M":{"_":{"M":{"threads":{"N":"4"}}}}}}"#,
        #"[1,-0.5,1E+10,"\"",null,true,false,{},[],[[]],{"":""}]"#,
        #"{"big":12345678901234567890,"money":1.50,"tiny":1e-300}"#,
        #"["\u0000\u001f","😀","tab\tnl\n"]"#,
    ])
    func roundTripsThroughParseAndSerialize(_ text: String) throws {
        let value = try JSONValue(parsing: text)
        let compact = value.serialized()
        #expect(try JSONValue(parsing: compact) == value)
        #expect(try JSONValue(parsing: value.serialized(pretty: true)) == value)
        // A second round is byte-identical: serialization is canonical for a given value.
        #expect(try JSONValue(parsing: compact).serialized() == compact)
    }

    @Test func everyControlCharacterRoundTrips() throws {
        let text = String(String.UnicodeScalarView((0..<0x20).compactMap(Unicode.Scalar.init)))
        let value = JSONValue.string(text + "\u{10FFFF}\u{FEFF}")
        let out = value.serialized()
        #expect(!out.utf8.contains { $0 < 0x20 }, "no raw control bytes in \(out.debugDescription)")
        #expect(try JSONValue(parsing: out) == value)
    }
}
