import CCurl
import CCurlShim
import LavaSystem

/// One libcurl easy handle inside its own multi handle, reused request after request. The multi
/// handle owns the connection cache, so a kept-alive connection survives from one request to the
/// next; the easy handle is reset between requests. Every request runs through the multi interface
/// (`curl_multi_perform` + `curl_multi_poll` on the calling thread), so a streamed body can be
/// pulled a piece at a time with no helper thread.
final class Transfer: @unchecked Sendable {  // one thread at a time: parked in HTTPClient's mutex or owned by the one request/stream that took it out
    enum BodyMode {
        /// Collect the whole body, failing beyond `limit` bytes.
        case buffered(limit: Int)
        /// Hold at most the stream buffer's capacity; pause the transfer when it is full.
        case streamed
    }

    private let easy: UnsafeMutableRawPointer
    private let multi: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private var headerList: UnsafeMutablePointer<curl_slist>? = nil
    private var attached = false

    // The current request.
    private(set) var target = RequestTarget(method: "", url: "", headers: [])
    private var mode = BodyMode.streamed
    private var startedAt = 0.0
    private(set) var bytesSent = 0
    private(set) var status = 0
    private(set) var headers = HTTPHeaders()
    private(set) var headersComplete = false
    private(set) var finished = false
    private var result = CURLE_OK
    private var bodyTooLarge = false
    private var bodyBytes: [UInt8] = []
    private(set) var received: Int64 = 0
    private(set) var paused = false
    let buffer: ByteBuffer

    init(streamBufferSize: Int) throws(LavaError) {
        guard let easy = curl_easy_init() else { throw LavaError(.http, "libcurl: cannot create an easy handle") }
        guard let multi = curl_multi_init() else {
            curl_easy_cleanup(easy)
            throw LavaError(.http, "libcurl: cannot create a multi handle")
        }
        self.easy = easy
        self.multi = multi
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        buffer = ByteBuffer(capacity: streamBufferSize)
    }

    deinit {
        detach()
        curl_multi_cleanup(multi)
        curl_easy_cleanup(easy)
        curl_slist_free_all(headerList)
        errorBuffer.deallocate()
    }

    // MARK: Starting

    /// Sets the easy handle up for `request` and adds it to the multi handle; nothing is sent
    /// until `drive` runs.
    func start(_ request: HTTPRequest, mode: BodyMode, configuration: HTTPClient.Configuration) throws(LavaError) {
        detach()
        curl_easy_reset(easy)  // keeps live connections, DNS and TLS session caches
        curl_slist_free_all(headerList)
        headerList = nil
        target = RequestTarget(method: request.method, url: request.url, headers: request.headers)
        self.mode = mode
        startedAt = Clock.monotonicSeconds()
        bytesSent = request.body.count
        status = 0
        headers = HTTPHeaders()
        headersComplete = false
        finished = false
        result = CURLE_OK
        bodyTooLarge = false
        bodyBytes = []
        received = 0
        paused = false
        buffer.clear()
        errorBuffer[0] = 0

        try validate(request)
        let context = Unmanaged.passUnretained(self).toOpaque()
        try set(CURLOPT_URL, request.url)
        try set(CURLOPT_NOSIGNAL, 1)  // threads: no SIGALRM around name resolution
        try set(CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer))
        try check(lava_curl_setopt_write_callback(easy, { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            return transfer.receiveBody(UnsafeRawBufferPointer(start: data, count: size * count))
        }, context), "CURLOPT_WRITEFUNCTION")
        try check(lava_curl_setopt_header_callback(easy, { data, size, count, context in
            let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            transfer.receiveHeaderLine(UnsafeRawBufferPointer(start: data, count: size * count))
            return size * count
        }, context), "CURLOPT_HEADERFUNCTION")
        try set(CURLOPT_PROTOCOLS_STR, "http,https")
        // HTTP/1.1 everywhere: S3 and the AWS APIs speak it, and pausing a transfer is simple there.
        try set(CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1)
        try set(CURLOPT_FOLLOWLOCATION, 0)  // a redirect is the caller's to read (S3 region moves)
        try set(CURLOPT_TCP_KEEPALIVE, 1)
        try set(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1)  // a proxy's CONNECT reply is not the response
        try set(CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(configuration.connectTimeout))
        try set(CURLOPT_LOW_SPEED_LIMIT, configuration.lowSpeedLimit)
        try set(CURLOPT_LOW_SPEED_TIME, configuration.lowSpeedTime)
        if case .buffered = mode {
            try set(CURLOPT_TIMEOUT_MS, Self.milliseconds(configuration.totalTimeout))
        }
        // The proxy is always set explicitly ("" = none), so libcurl never reads the environment
        // itself: the client's HTTPProxy is the one source (see HTTPProxy).
        try set(CURLOPT_PROXY, configuration.proxy.proxy(forScheme: target.scheme) ?? "")
        try set(CURLOPT_NOPROXY, configuration.proxy.noProxy ?? "")
        if let bundle = configuration.caBundle { try set(CURLOPT_CAINFO, bundle) }
        try set(CURLOPT_USERAGENT, configuration.userAgent)
        let sendsBody = try setMethodAndBody(request)
        try setHeaders(request, sendsBody: sendsBody)

        let added = curl_multi_add_handle(multi, easy)
        guard added == CURLM_OK else { throw multiError(added, "curl_multi_add_handle") }
        attached = true
    }

    private func validate(_ request: HTTPRequest) throws(LavaError) {
        let tokenBytes = request.method.utf8
        guard !tokenBytes.isEmpty, tokenBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }) else {
            throw LavaError(.http, "\(target): not an HTTP method")
        }
        for (name, value) in request.headers {
            guard !name.utf8.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }) else {
                throw LavaError(.http, "\(target): header name \"\(name)\" is not a valid token")
            }
            guard !value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
                throw LavaError(.http, "\(target): the value of header \(name) contains a line break")
            }
        }
        guard target.scheme == "http" || target.scheme == "https" else {
            throw LavaError(.http, "\(target): only http:// and https:// URLs are supported")
        }
    }

    /// True when the request carries a body (possibly empty, as an empty PUT's `Content-Length: 0`).
    private func setMethodAndBody(_ request: HTTPRequest) throws(LavaError) -> Bool {
        let method = request.method
        if method == "HEAD" {
            try set(CURLOPT_NOBODY, 1)
            return false
        } else if request.body.isEmpty && method != "POST" && method != "PUT" && method != "PATCH" {
            try set(CURLOPT_HTTPGET, 1)
            if method != "GET" { try set(CURLOPT_CUSTOMREQUEST, method) }
            return false
        } else {
            // libcurl copies the body now, so it rewinds by itself when it must resend on a new
            // connection (a kept-alive one that the server had closed).
            try check(lava_curl_setopt_off(easy, Self.option(CURLOPT_POSTFIELDSIZE_LARGE), Int64(request.body.count)),
                      "CURLOPT_POSTFIELDSIZE_LARGE")
            let code: Int32 = (request.body.isEmpty ? [0] : request.body).withUnsafeBytes { bytes in
                lava_curl_setopt_ptr(easy, Self.option(CURLOPT_COPYPOSTFIELDS), UnsafeMutableRawPointer(mutating: bytes.baseAddress))
            }
            try check(code, "CURLOPT_COPYPOSTFIELDS")
            if method != "POST" { try set(CURLOPT_CUSTOMREQUEST, method) }
            return true
        }
    }

    private func setHeaders(_ request: HTTPRequest, sendsBody: Bool) throws(LavaError) {
        var lines: [String] = request.headers.map { name, value in
            value.isEmpty ? "\(name);" : "\(name): \(value)"  // "Name;" sends an empty value
        }
        let given = HTTPHeaders(request.headers)
        // "Name:" with nothing after removes a header libcurl would add by itself.
        if !given.contains("Expect") { lines.append("Expect:") }
        if !given.contains("Content-Type") && sendsBody {
            lines.append("Content-Type:")
        }
        for line in lines {
            guard let list = curl_slist_append(headerList, line) else {
                throw LavaError(.http, "\(target): out of memory building the request headers")
            }
            headerList = list
        }
        try set(CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headerList))
    }

    // MARK: Running

    /// Runs the transfer on this thread until `satisfied()` holds or the transfer has ended
    /// (`finished`; the outcome is then in `failure()`). `wakingOn`, readable, ends the wait for
    /// the network at once, so `satisfied()` sees it without delay.
    func drive(wakingOn wake: Int32? = nil, until satisfied: () -> Bool) throws(LavaError) {
        var extra = wake.map { [curl_waitfd(fd: $0, events: Int16(CURL_WAIT_POLLIN), revents: 0)] } ?? []
        while attached && !finished && !satisfied() {
            var running: Int32 = 0
            let performed = curl_multi_perform(multi, &running)
            guard performed == CURLM_OK else { throw multiError(performed, "curl_multi_perform") }
            collectCompletion()
            if finished || satisfied() { return }
            let polled = curl_multi_poll(multi, &extra, UInt32(extra.count), 1000, nil)
            guard polled == CURLM_OK else { throw multiError(polled, "curl_multi_poll") }
        }
    }

    /// Lets a paused transfer go on; libcurl may deliver the held-back data at once.
    func resume() throws(LavaError) {
        guard paused else { return }
        paused = false
        try check(lava_curl_unpause(easy), "curl_easy_pause")
    }

    private func collectCompletion() {
        var queued: Int32 = 0
        while let message = curl_multi_info_read(multi, &queued) {
            if message.pointee.msg == CURLMSG_DONE && message.pointee.easy_handle == easy {
                result = message.pointee.data.result
                finished = true
                if status == 0 {
                    var code = 0
                    _ = lava_curl_getinfo_long(easy, Self.info(CURLINFO_RESPONSE_CODE), &code)
                    status = code
                }
                detach()
            }
        }
    }

    /// Takes the handle out of the multi handle: a finished transfer's connection goes back to
    /// the cache; an unfinished one is abandoned and its connection closed.
    func detach() {
        guard attached else { return }
        curl_multi_remove_handle(multi, easy)
        attached = false
    }

    /// Hands the buffered body over, so a parked transfer does not keep it alive.
    func takeBody() -> [UInt8] {
        defer { bodyBytes = [] }
        return bodyBytes
    }

    /// The error the finished transfer ended with, if any.
    func failure() -> LavaError? {
        if bodyTooLarge, case .buffered(let limit) = mode {
            return LavaError(.http, "\(target): response body larger than \(limit) bytes")
        }
        guard result != CURLE_OK else { return nil }
        let failure = HTTPFailure(curlCode: result)
        var detail = String(cString: errorBuffer)
        if detail.isEmpty { detail = String(cString: curl_easy_strerror(result)) }
        var summary = failure.summary
        if result == CURLE_PARTIAL_FILE, let expected = headers["Content-Length"] {
            summary = "body cut short after \(received) of \(expected) bytes"
        } else if failure == .interrupted && received > 0 {
            summary = "connection lost after \(received) body bytes"
        }
        return LavaError(failure.code, "\(target): \(summary): \(target.redact(detail))")
    }

    /// The one line the debug hook gets: no header values, no query string.
    func logLine(error: LavaError?, closedEarly: Bool = false) -> String {
        let elapsed = Int(((Clock.monotonicSeconds() - startedAt) * 1000).rounded())
        var line = "\(target) status=\(status == 0 ? "-" : String(status))"
        if bytesSent > 0 { line += " sent=\(bytesSent)" }
        line += " bytes=\(received) ms=\(elapsed)"
        if let error, let failure = HTTPFailure(error) { line += " error=\(failure.rawValue)" }
        if closedEarly { line += " closed-early" }
        return line
    }

    // MARK: Callbacks (called by libcurl inside drive/resume, on the driving thread)

    private func receiveBody(_ data: UnsafeRawBufferPointer) -> Int {
        headersComplete = true
        switch mode {
        case .buffered(let limit):
            guard bodyBytes.count + data.count <= limit else {
                bodyTooLarge = true
                return 0  // libcurl aborts with CURLE_WRITE_ERROR
            }
            bodyBytes.append(contentsOf: data)
        case .streamed:
            guard buffer.append(data) else {
                paused = true
                return Int(LAVA_CURL_WRITEFUNC_PAUSE)  // libcurl keeps this data and delivers it again on resume
            }
        }
        received += Int64(data.count)
        return data.count
    }

    private func receiveHeaderLine(_ data: UnsafeRawBufferPointer) {
        guard !headersComplete else { return }  // trailers of a chunked body
        var bytes = data[...]
        while let last = bytes.last, last == 0x0A || last == 0x0D { bytes = bytes.dropLast() }
        let line = String(decoding: bytes, as: UTF8.self)
        if line.isEmpty {
            // The end of one response's header block; 1xx responses are followed by the real one.
            if status >= 200 { headersComplete = true }
        } else if line.hasPrefix("HTTP/") {
            let parts = line.split(separator: " ", maxSplits: 2)
            status = parts.count >= 2 ? Int(parts[1]) ?? 0 : 0
            headers = HTTPHeaders()
        } else if line.first == " " || line.first == "\t" {
            headers.continueLast(with: Self.trimmed(Substring(line)))
        } else if let colon = line.firstIndex(of: ":") {
            headers.append(name: String(line[..<colon]), value: Self.trimmed(line[line.index(after: colon)...]))
        }
    }

    // MARK: Helpers

    private static func trimmed(_ text: Substring) -> String {
        String(text.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }

    private static func milliseconds(_ seconds: Double) -> Int {
        seconds <= 0 ? 0 : max(1, Int((seconds * 1000).rounded()))
    }

    private static func option(_ option: CURLoption) -> Int32 { Int32(bitPattern: option.rawValue) }
    private static func info(_ info: CURLINFO) -> Int32 { Int32(bitPattern: info.rawValue) }

    private func set(_ option: CURLoption, _ value: Int) throws(LavaError) {
        try check(lava_curl_setopt_long(easy, Self.option(option), value), "option \(option.rawValue)")
    }

    private func set(_ option: CURLoption, _ value: String) throws(LavaError) {
        try check(value.withCString { lava_curl_setopt_str(easy, Self.option(option), $0) }, "option \(option.rawValue)")
    }

    private func set(_ option: CURLoption, _ value: UnsafeMutableRawPointer?) throws(LavaError) {
        try check(lava_curl_setopt_ptr(easy, Self.option(option), value), "option \(option.rawValue)")
    }

    private func check(_ code: Int32, _ what: String) throws(LavaError) {
        guard code != Int32(bitPattern: CURLE_OK.rawValue) else { return }
        let reason = String(cString: curl_easy_strerror(CURLcode(rawValue: UInt32(bitPattern: code))))
        throw LavaError(.http, "\(target): libcurl refused \(what): \(reason)")
    }

    private func multiError(_ code: CURLMcode, _ call: String) -> LavaError {
        LavaError(.http, "\(target): \(call): \(String(cString: curl_multi_strerror(code)))")
    }
}

/// The bounded buffer between libcurl's write callback and `HTTPResponseStream.read(into:)`.
/// A chunk is taken whole or not at all (libcurl allows nothing in between); an empty buffer
/// takes any chunk, growing if it must, so a transfer can always make progress.
final class ByteBuffer {
    private var storage: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0

    init(capacity: Int) {
        storage = .allocate(byteCount: max(capacity, 16 * 1024), alignment: 1)
    }

    deinit { storage.deallocate() }

    var count: Int { end - start }
    var isEmpty: Bool { start == end }

    func clear() {
        start = 0
        end = 0
    }

    /// False when `data` does not fit next to what is already held.
    func append(_ data: UnsafeRawBufferPointer) -> Bool {
        if isEmpty { clear() }
        if storage.count - end < data.count {
            if start > 0 && storage.count - count >= data.count {
                storage.baseAddress!.copyMemory(from: storage.baseAddress! + start, byteCount: count)
                end = count
                start = 0
            } else if isEmpty {
                storage.deallocate()
                storage = .allocate(byteCount: data.count, alignment: 1)
            } else {
                return false
            }
        }
        if let source = data.baseAddress, data.count > 0 {
            (storage.baseAddress! + end).copyMemory(from: source, byteCount: data.count)
        }
        end += data.count
        return true
    }

    /// Moves up to `destination.count` bytes out.
    func take(into destination: UnsafeMutableRawBufferPointer) -> Int {
        let n = min(count, destination.count)
        guard n > 0, let target = destination.baseAddress else { return 0 }
        target.copyMemory(from: storage.baseAddress! + start, byteCount: n)
        start += n
        if isEmpty { clear() }
        return n
    }
}
