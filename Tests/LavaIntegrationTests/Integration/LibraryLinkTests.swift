import CArchive
import CBzip2
import CCurl
import LavaCrypto
import LavaTestSupport
import Testing

/// The four C libraries of the design link and answer.
@Suite struct LibraryLinkTests {
    @Test func libcryptoHashesAKnownString() {
        #expect(SHA256.hash(Array("abc".utf8)).hexString == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hmacSHA256(key: Array("key".utf8), data: Array("The quick brown fox jumps over the lazy dog".utf8)).hexString
                == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
    }

    @Test func libcurlReportsItsVersionAndTLS() throws {
        let info = try #require(curl_version_info(CURLVERSION_TENTH))
        let version = String(cString: info.pointee.version)
        #expect(version.split(separator: ".").count == 3)
        #expect(info.pointee.ssl_version != nil)
    }

    @Test func libbz2AndLibarchiveAnswer() {
        #expect(String(cString: BZ2_bzlibVersion()).hasPrefix("1."))
        #expect(archive_version_number() >= 3_000_000)
    }
}
