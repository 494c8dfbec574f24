import LavaSystem

/// A response whose body is pulled, a buffer at a time, by the reader (libarchive's read
/// callback, a file copy). Status and headers are known before the first body byte is read.
///
/// `read(into:)` runs the transfer on the calling thread: it hands out what the bounded buffer
/// holds, and only when that is empty lets libcurl go on (unpausing it, then
/// `curl_multi_perform`/`curl_multi_poll`) until more bytes arrive. At most the client's
/// `streamBuffer` bytes (plus libcurl's own receive buffer) are held, whatever the object's size.
///
/// Not thread-safe (not `Sendable`): one reader. Reading to the end or `close()` returns the
/// connection to the client; closing early abandons the connection.
public final class HTTPResponseStream: ByteStream {
    public let status: Int
    public let headers: HTTPHeaders
    /// Body bytes handed out so far.
    public private(set) var bytesRead: Int64 = 0

    private let client: HTTPClient
    private var transfer: Transfer?
    private var failure: LavaError?

    init(client: HTTPClient, transfer: Transfer) {
        self.client = client
        self.transfer = transfer
        status = transfer.status
        headers = transfer.headers
    }

    deinit { close() }

    /// The body's announced length, when the response has a `Content-Length`.
    public var expectedLength: Int64? { headers["Content-Length"].flatMap { Int64($0) } }

    /// Fills up to `buffer.count` bytes; 0 at the end of the body. A failed transfer (timeout,
    /// connection lost, body shorter than `Content-Length`) throws, now and on every later call.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(LavaError) -> Int {
        if let failure { throw failure }
        guard let transfer, buffer.count > 0 else { return 0 }
        do throws(LavaError) {
            while true {
                let n = transfer.buffer.take(into: buffer)
                if n > 0 {
                    bytesRead += Int64(n)
                    return n
                }
                if transfer.finished { break }
                try transfer.resume()  // may deliver what libcurl held back, from inside the call
                if !transfer.buffer.isEmpty { continue }
                try transfer.drive { !transfer.buffer.isEmpty }
            }
        } catch {
            finish(error: error)
            throw error
        }
        let error = transfer.failure()
        finish(error: error)
        if let error { throw error }
        return 0
    }

    /// The rest of the body, for error documents and other small bodies; fails beyond `limit`.
    public func readAll(limit: Int = 1024 * 1024) throws(LavaError) -> [UInt8] {
        var result: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 1)
        defer { chunk.deallocate() }
        while true {
            let n = try read(into: chunk)
            if n == 0 { return result }
            guard result.count + n <= limit else {
                let target = transfer.map { "\($0.target)" } ?? "response"
                close()
                throw LavaError(.http, "\(target): response body larger than \(limit) bytes")
            }
            result.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
        }
    }

    /// Ends the transfer now; the connection is closed if the body was not read to its end.
    /// Reads after this return 0. Called by `deinit` too.
    public func close() {
        guard let transfer else { return }
        let closedEarly = !transfer.finished
        client.log(transfer.logLine(error: closedEarly ? nil : transfer.failure(), closedEarly: closedEarly))
        self.transfer = nil
        client.giveBack(transfer)
    }

    private func finish(error: LavaError?) {
        guard let transfer else { return }
        failure = error
        client.log(transfer.logLine(error: error))
        self.transfer = nil
        client.giveBack(transfer)
    }
}
