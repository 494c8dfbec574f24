import LavaHTTP

import LavaSystem
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The libcurl transport against a real HTTP/1.1 peer (`Peers/http_peer.py`) on loopback.
@Suite struct HTTPClientTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    /// Loopback tests must not go through a proxy the test machine's environment names.
    static func configuration() -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.proxy = .none
        return configuration
    }

    // MARK: Requests and responses

    @Test func getSmallBody() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        let log = LogLines()
        let client = try HTTPClient(configuration: Self.configuration(), debug: log.hook)
        let response = try client.send(HTTPRequest(url: peer.url("/hello?X-Amz-Signature=abcdef0123456789")))
        #expect(response.status == 200)
        #expect(response.text == "hello world")
        #expect(response.headers["content-type"] == "text/plain")
        #expect(response.headers["CONTENT-LENGTH"] == "11")
        #expect(log.all.count == 1)
        let line = try #require(log.all.first)
        #expect(line.hasPrefix("GET 127.0.0.1:\(peer.port)/hello status=200 bytes=11 ms="), "\(line)")
        #expect(!line.contains("abcdef0123456789") && !line.contains("?"))
    }

    @Test func head() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        let client = try HTTPClient(configuration: Self.configuration())
        let response = try client.send(HTTPRequest(method: "HEAD", url: peer.url("/hello")))
        #expect(response.status == 200)
        #expect(response.headers["Content-Length"] == "11")
        #expect(response.body.isEmpty)
        // The connection is still good for a request with a body after a bodiless response.
        #expect(try client.send(HTTPRequest(url: peer.url("/hello"))).text == "hello world")
    }

    @Test func putAndPostSendTheirBodies() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        let client = try HTTPClient(configuration: Self.configuration())
        let binary: [UInt8] = [0, 1, 2, 0xFF, 0, 13, 10, 42]
        let put = try client.send(HTTPRequest(method: "PUT", url: peer.url("/echo"), body: binary))
        #expect(put.status == 200)
        #expect(put.headers["X-Method"] == "PUT")
        #expect(put.body == binary)

        let large = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let post = try client.send(HTTPRequest(method: "POST", url: peer.url("/echo"),
                                               headers: [("Content-Type", "application/octet-stream")], body: large))
        #expect(post.headers["X-Method"] == "POST")
        #expect(post.headers["X-Received-Length"] == "300000")
        #expect(post.body == large)

        let empty = try client.send(HTTPRequest(method: "PUT", url: peer.url("/echo")))
        #expect(empty.headers["X-Method"] == "PUT")
        #expect(empty.headers["X-Received-Length"] == "0")

        let delete = try client.send(HTTPRequest(method: "DELETE", url: peer.url("/echo")))
        #expect(delete.headers["X-Method"] == "DELETE")
    }

    @Test func customHeadersAreSentAsGiven() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        let client = try HTTPClient(configuration: Self.configuration())
        let response = try client.send(HTTPRequest(
            method: "POST", url: peer.url("/headers"),
            headers: [("X-Lava-One", "1"), ("x-amz-date", "20260101T000000Z"), ("X-Empty", "")],
            body: Array("{}".utf8)))
        let lines = response.text.split(separator: "\n").map(String.init)
        #expect(lines.contains("X-Lava-One: 1"))
        #expect(lines.contains("x-amz-date: 20260101T000000Z"))
        #expect(lines.contains("X-Empty: "))
        #expect(lines.contains("User-Agent: lava-boot"))
        #expect(lines.contains("Content-Length: 2"))
        // Nothing the caller did not ask for that could break a signature or stall a request.
        #expect(!lines.contains { $0.lowercased().hasPrefix("content-type:") })
        #expect(!lines.contains { $0.lowercased().hasPrefix("expect:") })

        let emptyPut = try client.send(HTTPRequest(method: "PUT", url: peer.url("/headers"))).text
        #expect(emptyPut.contains("Content-Length: 0\n"))
        #expect(!emptyPut.lowercased().contains("content-type:"))
    }

    @Test func headerValuesWithLineBreaksAreRefused() throws {
        let client = try HTTPClient(configuration: Self.configuration())
        let request = HTTPRequest(url: "http://127.0.0.1:9/x", headers: [("X-Bad", "a\r\nInjected: yes")])
        #expect(throws: LavaError.self) { try client.send(request) }
        do {
            _ = try client.send(request)
        } catch {
            #expect(HTTPFailure(error) == .other)
            #expect(!error.isTransientHTTPFailure)
            #expect(!error.message.contains("Injected"))
        }
    }

    @Test func repeatedResponseHeadersAreKept() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        let client = try HTTPClient(configuration: Self.configuration())
        let response = try client.send(HTTPRequest(url: peer.url("/repeated")))
        #expect(response.headers.values(for: "x-multi") == ["one", "two"])
        #expect(response.headers.values(for: "SET-COOKIE") == ["a=1", "b=2"])
        #expect(response.headers["X-MULTI"] == "one")
        #expect(response.headers.contains { $0.name == "x-multi" && $0.value == "two" })
    }

    @Test func notFoundIsAResponseWithItsBody() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        let client = try HTTPClient(configuration: Self.configuration())
        let response = try client.send(HTTPRequest(url: peer.url("/missing")))
        #expect(response.status == 404)
        #expect(response.text == "no such thing")

        let stream = try client.stream(HTTPRequest(url: peer.url("/missing")))
        #expect(stream.status == 404)
        #expect(String(decoding: try stream.readAll(), as: UTF8.self) == "no such thing")
    }

    @Test func bufferedBodiesHaveALimit() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        var configuration = Self.configuration()
        configuration.maximumBufferedBody = 100_000
        let client = try HTTPClient(configuration: configuration)
        let error = try #require(throws: LavaError.self) { try client.send(HTTPRequest(url: peer.url("/big?size=200000"))) }
        #expect(HTTPFailure(error) == .other)
        #expect(error.message.contains("larger than 100000 bytes"))
        #expect(try client.send(HTTPRequest(url: peer.url("/big?size=100000"))).body.count == 100_000)
    }

    // MARK: Streaming

    @Test func streamsFiftyMegabytesIntact() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        let size = 50 * 1024 * 1024
        let client = try HTTPClient(configuration: Self.configuration())
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 1)
        defer { chunk.deallocate() }

        let stream = try client.stream(HTTPRequest(url: peer.url("/big?size=\(size)")))
        #expect(stream.status == 200)
        #expect(stream.expectedLength == Int64(size))
        var total = 0
        var patternHolds = true
        while true {
            let n = try stream.read(into: chunk)
            if n == 0 { break }
            // byte i of the body is i % 251: check both ends of every piece.
            if chunk[0] != UInt8(total % 251) || chunk[n - 1] != UInt8((total + n - 1) % 251) { patternHolds = false }
            total += n
        }
        #expect(total == size)
        #expect(patternHolds)
        #expect(stream.bytesRead == Int64(size))
        #expect(try stream.read(into: chunk) == 0)
        // Memory is measured in a process of its own: AWSInstallTests.anS3InstallStaysInBoundedMemory.
    }

    @Test func aSmallBufferPausesAndResumesWithoutLosingBytes() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        var configuration = Self.configuration()
        configuration.streamBuffer = 16 * 1024  // libcurl delivers up to 16 KiB at once: full at every chunk
        let client = try HTTPClient(configuration: configuration)
        let size = 2 * 1024 * 1024 + 17
        let stream = try client.stream(HTTPRequest(url: peer.url("/big?size=\(size)")))
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 777, alignment: 1)
        defer { chunk.deallocate() }
        var total = 0
        var mismatches = 0
        while true {
            let n = try stream.read(into: chunk)
            if n == 0 { break }
            for index in 0..<n where chunk[index] != UInt8((total + index) % 251) { mismatches += 1 }
            total += n
        }
        #expect(total == size)
        #expect(mismatches == 0)
    }

    @Test func headersArriveBeforeTheBodyIsRead() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        let client = try HTTPClient(configuration: Self.configuration())
        let stream = try client.stream(HTTPRequest(url: peer.url("/repeated")))
        #expect(stream.status == 200)
        #expect(stream.headers.values(for: "Set-Cookie") == ["a=1", "b=2"])
        #expect(stream.bytesRead == 0)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
        defer { buffer.deallocate() }
        #expect(try stream.read(into: buffer) == 1)
        #expect(try stream.read(into: buffer) == 1)
        #expect(try stream.read(into: buffer) == 0)
    }

    @Test func streamsAreByteStreams() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        let client = try HTTPClient(configuration: Self.configuration())
        let stream: any ByteStream = try client.stream(HTTPRequest(url: peer.url("/big?size=1000")))
        var bytes = [UInt8](repeating: 0, count: 4096)
        let n = try bytes.withUnsafeMutableBytes { try stream.read(into: $0) }
        #expect(n == 1000)
        #expect(Array(bytes[0..<5]) == [0, 1, 2, 3, 4])
    }

    // MARK: Failures

    @Test func bodyCutShortIsATransientError() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        let log = LogLines()
        let client = try HTTPClient(configuration: Self.configuration(), debug: log.hook)
        let url = peer.url("/cut?size=100000&after=1000")

        let stream = try client.stream(HTTPRequest(url: url))
        #expect(stream.status == 200)
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 1)
        defer { chunk.deallocate() }
        var total = 0
        let error = try #require(throws: LavaError.self) {
            while true {
                let n = try stream.read(into: chunk)
                if n == 0 { break }
                total += n
            }
        }
        #expect(total == 1000)  // what did arrive is handed out before the error
        #expect(HTTPFailure(error) == .interrupted)
        #expect(error.code == .httpInterrupted)
        #expect(error.isTransientHTTPFailure)
        #expect(error.message.hasPrefix("GET 127.0.0.1:\(peer.port)/cut: body cut short after 1000 of 100000 bytes"), "\(error.message)")
        #expect(!error.message.contains("after=1000") && !error.message.contains("?"))
        // The error sticks.
        #expect(throws: LavaError.self) { try stream.read(into: chunk) }

        let buffered = try #require(throws: LavaError.self) { try client.send(HTTPRequest(url: url)) }
        #expect(buffered.isTransientHTTPFailure)
        #expect(log.all.count == 2)
        #expect(log.all.allSatisfy { $0.contains("error=interrupted") && !$0.contains("size=") })
    }

    @Test func connectionRefusedIsATransientErrorWithoutSecrets() throws {
        let port = unusedPort()
        let log = LogLines()
        let client = try HTTPClient(configuration: Self.configuration(), debug: log.hook)
        let request = HTTPRequest(
            url: "http://user:hunter2secret@127.0.0.1:\(port)/bucket/key.tar.bz2?X-Amz-Credential=AKIDSECRETKEY&X-Amz-Signature=deadbeefcafe",
            headers: [("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDSECRETKEY/x, Signature=feedfacefeed"),
                      ("x-amz-security-token", "sessiontokensecret")])
        for attempt in 0..<2 {
            let error = try #require(throws: LavaError.self) {
                if attempt == 0 { _ = try client.send(request) } else { _ = try client.stream(request) }
            }
            #expect(HTTPFailure(error) == .connect)
            #expect(error.isTransientHTTPFailure)
            #expect(error.message.hasPrefix("GET 127.0.0.1:\(port)/bucket/key.tar.bz2: cannot connect"), "\(error.message)")
            for secret in ["hunter2", "AKIDSECRETKEY", "deadbeefcafe", "feedfacefeed", "sessiontoken", "X-Amz", "user:"] {
                #expect(!error.message.contains(secret), "\(error.message)")
            }
        }
        #expect(log.all.count == 2)
        for line in log.all {
            #expect(line.hasPrefix("GET 127.0.0.1:\(port)/bucket/key.tar.bz2 status=- bytes=0 ms="), "\(line)")
            #expect(line.hasSuffix("error=connect"))
            #expect(!line.contains("SECRET") && !line.contains("secret") && !line.contains("deadbeef"))
        }
    }

    @Test func aStalledPeerHitsTheLowSpeedLimit() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        var configuration = Self.configuration()
        configuration.lowSpeedLimit = 100
        configuration.lowSpeedTime = 1
        let client = try HTTPClient(configuration: configuration)
        let started = Clock.monotonicSeconds()
        let stream = try client.stream(HTTPRequest(url: peer.url("/slow")))
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { chunk.deallocate() }
        #expect(try stream.read(into: chunk) == 10)
        let error = try #require(throws: LavaError.self) { try stream.read(into: chunk) }
        #expect(HTTPFailure(error) == .timeout)
        #expect(error.code == .httpTimeout)
        #expect(error.isTransientHTTPFailure)
        #expect(error.message.hasPrefix("GET 127.0.0.1:\(peer.port)/slow: timed out"), "\(error.message)")
        #expect(Clock.monotonicSeconds() - started < 20)
    }

    @Test func totalTimeoutEndsABufferedRequest() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        var configuration = Self.configuration()
        configuration.totalTimeout = 1
        let client = try HTTPClient(configuration: configuration)
        let started = Clock.monotonicSeconds()
        let error = try #require(throws: LavaError.self) { try client.send(HTTPRequest(url: peer.url("/slow"))) }
        #expect(HTTPFailure(error) == .timeout)
        #expect(Clock.monotonicSeconds() - started < 20)
    }

    // MARK: Connections

    @Test func sequentialRequestsReuseOneConnection() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        let client = try HTTPClient(configuration: Self.configuration())
        let first = try client.send(HTTPRequest(url: peer.url("/hello")))
        let second = try client.send(HTTPRequest(method: "PUT", url: peer.url("/echo"), body: [1, 2, 3]))
        let connection = try #require(first.headers["X-Connection"])
        #expect(second.headers["X-Connection"] == connection)

        // A stream read to its end hands the connection back too.
        let stream = try client.stream(HTTPRequest(url: peer.url("/big?size=300000")))
        #expect(stream.headers["X-Connection"] == connection)
        #expect(try stream.readAll().count == 300_000)
        #expect(try client.send(HTTPRequest(url: peer.url("/hello"))).headers["X-Connection"] == connection)

        // Another client has its own.
        let other = try HTTPClient(configuration: Self.configuration())
        #expect(try other.send(HTTPRequest(url: peer.url("/hello"))).headers["X-Connection"] != connection)
    }

    @Test func oneClientRecoversFromEveryKindOfFailure() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        var configuration = Self.configuration()
        configuration.lowSpeedLimit = 100
        configuration.lowSpeedTime = 1
        let client = try HTTPClient(configuration: configuration)
        let failing = [
            (peer.url("/cut?size=5000&after=10"), HTTPFailure.interrupted),
            ("http://127.0.0.1:\(unusedPort())/refused", .connect),
            ("http://lava-http-test.invalid/unresolvable", .connect),
            ("https://127.0.0.1:\(peer.port)/not-tls", .connect),
            (peer.url("/slow"), .timeout),
            (peer.url("/a b"), .other),
            ("ftp://127.0.0.1/x", .other),
        ]
        for (url, expected) in failing {
            let error = try #require(throws: LavaError.self) { try client.send(HTTPRequest(url: url)) }
            #expect(HTTPFailure(error) == expected, "\(url): \(error.message)")
            let response = try client.send(HTTPRequest(url: peer.url("/hello")))
            #expect(response.status == 200 && response.text == "hello world")
            let stream = try client.stream(HTTPRequest(url: peer.url("/big?size=100000")))
            #expect(try stream.readAll().count == 100_000)
        }
    }

    @Test func aStreamClosedEarlyLeavesTheClientUsable() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        let log = LogLines()
        let client = try HTTPClient(configuration: Self.configuration(), debug: log.hook)
        let stream = try client.stream(HTTPRequest(url: peer.url("/big?size=20000000")))
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1000, alignment: 1)
        defer { chunk.deallocate() }
        #expect(try stream.read(into: chunk) > 0)
        // Another request while the stream is open gets a connection of its own.
        let during = try client.send(HTTPRequest(url: peer.url("/hello")))
        #expect(during.headers["X-Connection"] != stream.headers["X-Connection"])
        stream.close()
        #expect(try stream.read(into: chunk) == 0)
        #expect(try client.send(HTTPRequest(url: peer.url("/hello"))).text == "hello world")
        #expect(log.all.contains { $0.hasPrefix("GET 127.0.0.1:\(peer.port)/big status=200") && $0.hasSuffix("closed-early") })
    }

    // MARK: Proxy and TLS

    @Test func proxySettingsFollowLibcurlsEnvironmentRules() {
        let all = HTTPProxy.fromEnvironment(["ALL_PROXY": "http://all:1", "no_proxy": "a.internal", "NO_PROXY": "b"])
        #expect(all.http == "http://all:1" && all.https == "http://all:1" && all.noProxy == "a.internal")
        let specific = HTTPProxy.fromEnvironment(["http_proxy": "http://h:1", "HTTPS_PROXY": "http://s:2", "all_proxy": "http://all:1"])
        #expect(specific.proxy(forScheme: "http") == "http://h:1")
        #expect(specific.proxy(forScheme: "https") == "http://s:2")
        // HTTP_PROXY in capitals is ignored for http:// (httpoxy), as libcurl does.
        let capitals = HTTPProxy.fromEnvironment(["HTTP_PROXY": "http://evil:1", "NO_PROXY": "b", "https_proxy": ""])
        #expect(capitals.http == nil && capitals.https == nil && capitals.noProxy == "b")
    }

    @Test func requestsGoThroughTheProxyUnlessExempt() throws {
        let peer = try HTTPPeer()
        defer { peer.stop() }
        var configuration = Self.configuration()
        configuration.proxy = .fromEnvironment(["http_proxy": "http://127.0.0.1:\(peer.port)"])
        let proxied = try HTTPClient(configuration: configuration)
        let response = try proxied.send(HTTPRequest(url: "http://lava-proxy-test.invalid/x?y=1"))
        #expect(response.text == "proxied http://lava-proxy-test.invalid/x?y=1")

        configuration.proxy = .fromEnvironment(["http_proxy": "http://127.0.0.1:\(peer.port)", "NO_PROXY": "127.0.0.1"])
        let exempt = try HTTPClient(configuration: configuration)
        #expect(try exempt.send(HTTPRequest(url: peer.url("/hello"))).text == "hello world")

        configuration.proxy = .fromEnvironment(["HTTP_PROXY": "http://127.0.0.1:\(unusedPort())"])
        let ignored = try HTTPClient(configuration: configuration)
        #expect(try ignored.send(HTTPRequest(url: peer.url("/hello"))).text == "hello world")
    }

    @Test func httpsVerifiesThePeer() throws {
        let peer = try HTTPPeer(tls: true)
        defer { peer.stop() }
        let url = "https://127.0.0.1:\(peer.port)/hello"

        // The system store does not know the test's self-signed certificate.
        let system = try HTTPClient(configuration: Self.configuration())
        let error = try #require(throws: LavaError.self) { try system.send(HTTPRequest(url: url)) }
        #expect(HTTPFailure(error) == .tls, "\(error.message)")
        #expect(!error.isTransientHTTPFailure)

        var configuration = Self.configuration()
        configuration.caBundle = HTTPPeer.certificate
        let trusting = try HTTPClient(configuration: configuration)
        let first = try trusting.send(HTTPRequest(url: url))
        #expect(first.status == 200 && first.text == "hello world")
        let second = try trusting.send(HTTPRequest(url: url))
        #expect(second.headers["X-Connection"] == first.headers["X-Connection"])
    }
}

