import Foundation
import LavaCrypto
import LavaSigV4
import Testing

/// The worked examples of the S3 API Reference (Vectors/s3-sigv4, see its README.txt), signed with the
/// `.s3` preset the product uses, down to the exact Authorization value AWS prints.
@Suite("S3 SigV4 examples")
struct S3ExampleTests {
    static let suiteDirectory = vectorsDirectory.appendingPathComponent("s3-sigv4")
    static let caseNames = subdirectoryNames(of: suiteDirectory)
    /// Cases with an Authorization-header variant; the rest are presigned only.
    static let headerCaseNames = caseNames.filter {
        FileManager.default.fileExists(
            atPath: suiteDirectory.appendingPathComponent($0).appendingPathComponent("header-canonical-request.txt").path)
    }

    @Test("all 5 examples are present: 4 header-signed and the presigned GET")
    func everyCaseIsPresent() {
        #expect(Self.caseNames.count == 5)
        #expect(Self.headerCaseNames.count == 4)
        #expect(Set(Self.caseNames).subtracting(Self.headerCaseNames) == ["presigned-get-object"])
    }

    @Test("header signing", arguments: S3ExampleTests.headerCaseNames)
    func headerSigning(caseName: String) throws {
        let directory = Self.suiteDirectory.appendingPathComponent(caseName)
        let context = try SigningContext.load(from: directory.appendingPathComponent("context.json"))
        let request = try RawRequest(try readBytes(directory.appendingPathComponent("request.txt")),
                                     folding: .continuesValue)

        // The examples must describe what `.s3` does, or this would test a configuration nobody uses.
        #expect(context.normalize == false && context.doubleUriEncode == false,
                "\(caseName): context asks for something other than the .s3 preset")
        let payloadHash = try #require(context.payloadHash, "\(caseName): context.json has no payload_hash")
        #expect(payloadHash == SHA256.hash(request.body).hexString,
                "\(caseName): payload_hash is not the SHA-256 of the request body")

        let signer = SigV4Signer(credentials: context.awsCredentials, region: context.region,
                                 service: context.service, rules: .s3)
        let result = signer.sign(method: request.method, path: request.path, query: request.query,
                                 headers: request.headers, payloadHash: payloadHash,
                                 date: try context.signingDate())

        func expected(_ file: String) throws -> String {
            try readText(directory.appendingPathComponent(file))
        }
        expectStage("canonical request", of: caseName, actual: result.canonicalRequest,
                    expected: try expected("header-canonical-request.txt"))
        expectStage("string to sign", of: caseName, actual: result.stringToSign,
                    expected: try expected("header-string-to-sign.txt"))
        expectStage("signature", of: caseName, actual: result.signature,
                    expected: try expected("header-signature.txt"))
        expectStage("Authorization header", of: caseName, actual: result.authorization,
                    expected: try expected("header-authorization.txt"))
        expectSignerHeadersAgree(with: request, result: result, caseName: caseName)
    }

    @Test("presigned-get-object", .disabled("query-*.txt: presigned URLs are not implemented; lava-boot signs with the Authorization header only"))
    func presignedGetObject() {}
}
