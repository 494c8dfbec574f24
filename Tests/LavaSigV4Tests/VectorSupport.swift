import Foundation
import LavaCrypto
import LavaSigV4
import Testing

/// The copied vector suites, found from this file's location so no SwiftPM resources are needed.
let vectorsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Vectors")

struct VectorError: Error, CustomStringConvertible {
    let description: String
}

func readText(_ url: URL) throws -> String {
    try String(contentsOf: url, encoding: .utf8)
}

func readBytes(_ url: URL) throws -> [UInt8] {
    Array(try Data(contentsOf: url))
}

/// Names of the immediate subdirectories, sorted; empty if the directory cannot be read, which the
/// case-count tests then report.
func subdirectoryNames(of directory: URL) -> [String] {
    let entries = (try? FileManager.default.contentsOfDirectory(
        at: directory, includingPropertiesForKeys: [.isDirectoryKey])) ?? []
    return entries
        .filter { (try? $0.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true }
        .map(\.lastPathComponent)
        .sorted()
}

/// Seconds since the epoch of an ISO 8601 UTC timestamp such as `2015-08-30T12:36:00Z`. Foundation does
/// the calendar work here, which keeps it independent of the signer's own date arithmetic.
func epochSeconds(iso8601 timestamp: String) throws -> Int64 {
    guard let date = ISO8601DateFormatter().date(from: timestamp) else {
        throw VectorError(description: "unparseable timestamp \(timestamp)")
    }
    return Int64(date.timeIntervalSince1970)
}

/// A raw HTTP/1.1 request as the suites write it: the target may hold a literal space or raw UTF-8,
/// header names may repeat, continuation lines may follow a header, and a body may follow a blank line.
struct RawRequest {
    /// What a continuation line (one starting with a blank, RFC 7230's obsolete line folding) means.
    enum LineFolding {
        /// RFC 7230 §3.2.4: the fold is replaced by one space, continuing the same value.
        case continuesValue
        /// The 2015 suite's reading: each continuation line is one more value of the same header.
        case startsNewValue
    }

    var method: String
    var path: String
    var query: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    init(_ bytes: [UInt8], folding: LineFolding) throws {
        let newline = UInt8(ascii: "\n")
        // The head ends at the first empty line; everything after it, byte for byte, is the body.
        var headEnd = bytes.endIndex
        var bodyStart = bytes.endIndex
        for index in bytes.indices.dropLast() where bytes[index] == newline {
            let next = bytes[index + 1] == UInt8(ascii: "\r") ? index + 2 : index + 1
            if next < bytes.endIndex, bytes[next] == newline {
                headEnd = index
                bodyStart = next + 1
                break
            }
        }
        body = Array(bytes[bodyStart...])

        var lines = bytes[..<headEnd].split(separator: newline, omittingEmptySubsequences: false)
            .map { String(decoding: $0.last == UInt8(ascii: "\r") ? $0.dropLast() : $0, as: UTF8.self) }
        while lines.last == "" { lines.removeLast() }
        guard let requestLine = lines.first,
              let firstSpace = requestLine.firstIndex(of: " "),
              let lastSpace = requestLine.lastIndex(of: " "), firstSpace < lastSpace else {
            throw VectorError(description: "malformed request line in \(lines.first ?? "<empty>")")
        }
        // The target sits between the first and the last space, so a literal space inside it survives.
        method = String(requestLine[..<firstSpace])
        let target = requestLine[requestLine.index(after: firstSpace)..<lastSpace]
        if let questionMark = target.firstIndex(of: "?") {
            path = String(target[..<questionMark])
            query = String(target[target.index(after: questionMark)...])
        } else {
            path = String(target)
            query = ""
        }

        headers = []
        for line in lines.dropFirst() {
            if line.first == " " || line.first == "\t" {
                guard let previous = headers.last else {
                    throw VectorError(description: "continuation line before any header: \(line)")
                }
                let continuation = line.drop { $0 == " " || $0 == "\t" }
                switch folding {
                case .continuesValue:
                    headers[headers.count - 1].value += " " + continuation
                case .startsNewValue:
                    headers.append((name: previous.name, value: String(continuation)))
                }
            } else {
                guard let colon = line.firstIndex(of: ":") else {
                    throw VectorError(description: "header line without a colon: \(line)")
                }
                // The value is kept exactly as written: trimming is the signer's job and is under test.
                headers.append((name: String(line[..<colon]), value: String(line[line.index(after: colon)...])))
            }
        }
    }

    func headerValues(named name: String) -> [String] {
        headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }
}

/// Compares one stage's output with the vector's, naming the case and the stage on failure.
func expectStage(_ stage: String, of caseName: String, actual: String, expected: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual == expected, "\(caseName): \(stage) differs", sourceLocation: sourceLocation)
}

/// A vector request may already carry headers the signer sets (X-Amz-Date, x-amz-content-sha256,
/// X-Amz-Security-Token). The signer replaces them; this checks the vector's values are the ones it sets,
/// so the date, payload hash and token the test passed really are the vector's.
func expectSignerHeadersAgree(with request: RawRequest, result: SigningResult, caseName: String,
                              sourceLocation: SourceLocation = #_sourceLocation) {
    for header in result.headers where header.name.lowercased() != "authorization" {
        for vectorValue in request.headerValues(named: header.name) {
            #expect(vectorValue.trimmingCharacters(in: .whitespaces) == header.value,
                    "\(caseName): the vector's \(header.name) disagrees with the signer's",
                    sourceLocation: sourceLocation)
        }
    }
}

/// The JSON context of the aws-c-auth and S3 suites.
struct SigningContext: Decodable {
    struct Credentials: Decodable {
        let accessKeyId: String
        let secretAccessKey: String
        let token: String?
    }

    let credentials: Credentials
    let region: String
    let service: String
    let timestamp: String
    let normalize: Bool
    let signBody: Bool?
    let omitSessionToken: Bool?
    let doubleUriEncode: Bool?
    let payloadHash: String?

    static func load(from url: URL) throws -> SigningContext {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(SigningContext.self, from: Data(contentsOf: url))
    }

    var awsCredentials: AWSCredentials {
        AWSCredentials(accessKeyID: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey,
                       sessionToken: credentials.token)
    }

    func signingDate() throws -> SigningDate {
        SigningDate(secondsSinceEpoch: try epochSeconds(iso8601: timestamp))
    }
}
