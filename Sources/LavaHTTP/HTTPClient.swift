import CCurlShim
import LavaSystem
import Synchronization

/// HTTP(S) over libcurl, one request at a time, keeping its connection alive between requests.
///
/// The client keeps one transfer (a libcurl easy handle in its own multi handle, with its
/// connection cache) and lends it to each request in turn: sequential requests reuse the same
/// TCP/TLS connection. A client is meant to be used by one thread at a time; it is still safe to
/// share (`Sendable`): a request made while the transfer is lent out (from another thread, or
/// while a `HTTPResponseStream` is still open) gets a transfer of its own, with its own
/// connection, which is dropped afterwards unless the client has none parked.
///
/// Transport failures throw `LavaError`s whose code tells `HTTPFailure`s apart
/// (`isTransientHTTPFailure` for a retry layer); HTTP statuses are results, never errors.
/// Retrying is not done here.
public final class HTTPClient: Sendable {
    public struct Configuration: Sendable {
        /// Seconds to establish a connection (TCP + TLS), per attempt.
        public var connectTimeout: Double = 10
        /// A transfer slower than `lowSpeedLimit` bytes/s for `lowSpeedTime` seconds fails
        /// with a timeout: this is what ends a stalled stream.
        public var lowSpeedLimit: Int = 1
        public var lowSpeedTime: Int = 30
        /// Seconds for a whole buffered request (`send`). Streams have no total limit.
        public var totalTimeout: Double = 60
        /// `send` fails for a response body larger than this.
        public var maximumBufferedBody: Int = 64 * 1024 * 1024
        /// Body bytes a stream holds between reads; libcurl is paused when it is full.
        public var streamBuffer: Int = 256 * 1024
        /// PEM file of trusted CAs; nil: the system store libcurl was built with
        /// (`/etc/pki/tls/certs/ca-bundle.crt` on Amazon Linux, `/etc/ssl/certs` on Debian).
        /// Peers are always verified.
        public var caBundle: String? = nil
        public var userAgent: String = "lava-boot"
        public var proxy: HTTPProxy = .fromProcessEnvironment()

        public init() {}
    }

    public let configuration: Configuration
    private let debug: (@Sendable (String) -> Void)?
    private let parked: Mutex<Transfer?>

    /// `debug`, if given, gets one line per request when it ends:
    /// `GET host:port/path status=200 bytes=1234 ms=12` (plus `sent=N` for a request body,
    /// `error=KIND` on failure, `closed-early` for a stream closed before its end). It never
    /// carries a header value or the query string.
    public init(configuration: Configuration = Configuration(), debug: (@Sendable (String) -> Void)? = nil) throws(LavaError) {
        let code = lava_curl_global_init_once()
        guard code == 0 else { throw LavaError(.http, "libcurl: curl_global_init failed (code \(code))") }
        self.configuration = configuration
        self.debug = debug
        parked = Mutex(try Transfer(streamBufferSize: configuration.streamBuffer))
    }

    /// Sends `request` and reads the whole response (up to `maximumBufferedBody` bytes), within
    /// `totalTimeout`. For small API calls. `cancel`, once readable, drops the request at once
    /// (error code `stopped`) and closes its connection.
    public func send(_ request: HTTPRequest, cancel: Int32? = nil) throws(LavaError) -> HTTPResponse {
        let transfer = try lend()
        defer { giveBack(transfer) }
        var failure: LavaError? = nil
        do throws(LavaError) {
            try transfer.start(request, mode: .buffered(limit: configuration.maximumBufferedBody), configuration: configuration)
            try transfer.drive(wakingOn: cancel) { Clock.sleep(seconds: 0, unless: cancel) }
            failure = transfer.finished ? transfer.failure() : LavaError(.stopped, "\(transfer.target): cancelled")
        } catch {
            failure = error
        }
        debug?(transfer.logLine(error: failure))
        if let failure { throw failure }
        return HTTPResponse(status: transfer.status, headers: transfer.headers, body: transfer.takeBody())
    }

    /// Sends `request` and returns once the response's status and headers have arrived; the body
    /// is then pulled through the stream's `read(into:)`, never held whole. A non-2xx response
    /// comes back as a stream too (its body is the error document). Close the stream, or read it
    /// to its end, before expecting the next request to reuse the connection.
    public func stream(_ request: HTTPRequest) throws(LavaError) -> HTTPResponseStream {
        let transfer = try lend()
        do throws(LavaError) {
            try transfer.start(request, mode: .streamed, configuration: configuration)
            try transfer.drive { transfer.headersComplete }
            // A failure after the headers (a body cut short) is the reader's to meet, after the
            // bytes that did arrive; one before them is the caller's now.
            if !transfer.headersComplete, transfer.finished, let failure = transfer.failure() { throw failure }
        } catch {
            debug?(transfer.logLine(error: error))
            giveBack(transfer)
            throw error
        }
        return HTTPResponseStream(client: self, transfer: transfer)
    }

    // MARK: Lending the transfer

    private func lend() throws(LavaError) -> Transfer {
        if let transfer = parked.withLock({ $0.take() }) { return transfer }
        return try Transfer(streamBufferSize: configuration.streamBuffer)
    }

    /// Parks `transfer` for the next request, unless another is parked already (then it is freed,
    /// closing its connections).
    func giveBack(_ transfer: Transfer) {
        transfer.detach()
        parked.withLock { parked in
            if parked == nil { parked = transfer }
        }
    }

    func log(_ line: String) { debug?(line) }
}
