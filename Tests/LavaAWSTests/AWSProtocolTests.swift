import Foundation
@testable import LavaAWS
import LavaTestSupport
import Testing

/// Every error case of the Smithy protocol tests for awsJson1_0 (DynamoDB) and awsQuery
/// (Auto Scaling), read from the copied `.smithy` files.
@Suite struct AWSProtocolTests {
    struct ErrorCase: CustomStringConvertible {
        var id: String
        var expectedCode: String
        var status: Int
        var headers: [(String, String)]
        var body: String
        var description: String { id }
    }

    static let vectors = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Vectors/protocol-tests")

    /// `apply SHAPE @httpResponseTests([ { id: ..., code: N, headers: {...}, body: """...""" }, ... ])`
    static func cases(_ relativePath: String) throws -> (errors: [ErrorCase], skipped: [String]) {
        let text = try String(contentsOf: vectors.appendingPathComponent(relativePath), encoding: .utf8)
        // Shapes whose wire code is customised: @awsQueryError(code: "Customized", ...) structure NAME
        var customCodes = [String: String]()
        let custom = try NSRegularExpression(pattern: #"@awsQueryError\(\s*code:\s*"([^"]+)"[^)]*\)[\s\S]*?structure\s+(\w+)"#)
        for match in custom.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            customCodes[String(text[Range(match.range(at: 2), in: text)!])] = String(text[Range(match.range(at: 1), in: text)!])
        }
        let errorShapes = Set(try NSRegularExpression(pattern: #"@error\("\w+"\)\s*(?:@\w+(?:\([^)]*\))?\s*)*structure\s+(\w+)"#)
            .matches(in: text, range: NSRange(text.startIndex..., in: text))
            .map { String(text[Range($0.range(at: 1), in: text)!]) })
        var errors = [ErrorCase]()
        var skipped = [String]()
        let applies = text.components(separatedBy: "\napply ").dropFirst()
        for block in applies {
            let shape = String(block.prefix { $0.isLetter || $0.isNumber })
            let objects = block.components(separatedBy: "id: \"").dropFirst()
            for object in objects {
                let id = String(object.prefix { $0 != "\"" })
                guard errorShapes.contains(shape) else { skipped.append(id); continue }
                let status = Int(try #require(firstMatch(#"\n\s*code:\s*(\d+)"#, in: object))) ?? 0
                var headers = [(String, String)]()
                if let headerText = firstMatch(#"headers:\s*\{([^}]*)\}"#, in: object) {
                    let pair = try NSRegularExpression(pattern: #""([^"]+)"\s*:\s*"([^"]*)""#)
                    for match in pair.matches(in: headerText, range: NSRange(headerText.startIndex..., in: headerText)) {
                        headers.append((String(headerText[Range(match.range(at: 1), in: headerText)!]),
                                        String(headerText[Range(match.range(at: 2), in: headerText)!])))
                    }
                }
                let body = firstMatch(#"body:\s*"""([\s\S]*?)""""#, in: object) ?? ""
                errors.append(ErrorCase(id: id, expectedCode: customCodes[shape] ?? shape, status: status, headers: headers, body: body))
            }
        }
        return (errors, skipped)
    }

    static func firstMatch(_ pattern: String, in text: String) -> String? {
        guard let regex = try? NSRegularExpression(pattern: pattern),
              let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
              let range = Range(match.range(at: 1), in: text) else { return nil }
        return String(text[range])
    }

    @Test func awsJson10ErrorsAllParse() throws {
        let (cases, skipped) = try AWSProtocolTests.cases("awsJson1_0/errors.smithy")
        #expect(cases.count == 14, "every error case of the file: \(cases.map(\.id))")
        #expect(skipped.isEmpty)
        for errorCase in cases {
            let parsed = AWSServiceError.parse(protocol: .json10, status: errorCase.status, headers: errorCase.headers,
                                               body: Array(errorCase.body.utf8))
            #expect(parsed.code == errorCase.expectedCode, "\(errorCase.id)")
            #expect(parsed.status == errorCase.status)
        }
        let greeting = try #require(cases.first { $0.id == "AwsJson10InvalidGreetingError" })
        #expect(AWSServiceError.parse(protocol: .json10, status: 400, headers: greeting.headers, body: Array(greeting.body.utf8)).message == "Hi")
    }

    @Test func awsQueryErrorsAllParse() throws {
        let (cases, skipped) = try AWSProtocolTests.cases("awsQuery/xml-errors.smithy")
        #expect(cases.map(\.id).sorted() == ["QueryComplexError", "QueryCustomizedError", "QueryInvalidGreetingError"])
        #expect(skipped == ["QueryGreetingWithErrors"], "the one success-response case is not an error")
        for errorCase in cases {
            let parsed = AWSServiceError.parse(protocol: .query, status: errorCase.status, headers: errorCase.headers,
                                               body: Array(errorCase.body.utf8))
            #expect(parsed.code == errorCase.expectedCode, "\(errorCase.id)")
        }
    }

    @Test func s3ErrorsAndEmptyBodies() {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>a&amp;b</Key></Error>"
        let parsed = AWSServiceError.parse(protocol: .restXML, status: 404, headers: [], body: Array(body.utf8))
        #expect(parsed.code == "NoSuchKey")
        #expect(parsed.summary == "NoSuchKey: The specified key does not exist. (HTTP 404)")
        #expect(AWSServiceError.parse(protocol: .restXML, status: 403, headers: [], body: []).code == "Forbidden")
        #expect(AWSServiceError.parse(protocol: .restXML, status: 503, headers: [], body: Array("<Error><Code>SlowDown</Code></Error>".utf8)).isThrottling)
    }

    @Test func retryableClassification() {
        func error(_ status: Int, _ code: String) -> AWSServiceError { AWSServiceError(status: status, code: code, message: nil) }
        #expect(error(400, "ThrottlingException").isRetryable)
        #expect(error(400, "ProvisionedThroughputExceededException").isRetryable)
        #expect(error(500, "InternalError").isRetryable)
        #expect(error(503, "SlowDown").isRetryable)
        #expect(error(429, "Whatever").isRetryable)
        #expect(!error(400, "ValidationException").isRetryable)
        #expect(!error(403, "AccessDenied").isRetryable)
        #expect(!error(404, "NoSuchKey").isRetryable)
    }
}
