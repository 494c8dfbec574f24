#if canImport(Glibc)
import Glibc
#endif
import LavaJSON
import LavaSystem

/// The `status` and `stop` commands' end of the control socket.
public enum ControlClient {
    /// The default for a request that should be answered at once.
    public static let defaultTimeout = 10.0

    /// Sends one request and returns the agent's answer, an object with `"ok": true`.
    /// `timeout` covers connecting, sending and the answer; nil waits as long as it takes
    /// (`stop --wait`: the agent answers when the drain is done).
    ///
    /// Errors: `.noAgent` when nothing listens on the socket; `.agentTimeout`; `.agentError`
    /// with the agent's own message when it answered `"ok": false`; `.controlProtocol` for an
    /// answer that is not one.
    public static func send(_ request: ControlRequest, directory: AgentDirectory,
                            timeout: Double? = defaultTimeout) throws(LavaError) -> JSONValue {
        let socketPath = directory.socketPath
        let deadline = timeout.map { Clock.monotonicSeconds() + max(0, $0) }
        let fd = try connect(socketPath, deadline: deadline, timeout: timeout)
        defer { close(fd) }

        let line = Array((request.json.serialized() + "\n").utf8)
        switch writeAll(fd, line, until: deadline) {
        case 0: break
        case ETIMEDOUT: throw timedOut(timeout, socketPath)
        case let number: throw LavaError.errno("send", socketPath, number).prefixed("talking to the lava-boot agent")
        }

        let answer: [UInt8]
        switch readLine(fd, until: deadline, limit: 16 << 20) {
        case .line(let bytes),
             .closed(let bytes) where !bytes.isEmpty:
            answer = bytes
        case .closed:
            throw LavaError(.controlProtocol, "the lava-boot agent closed the connection without answering (\(socketPath))")
        case .timedOut:
            throw timedOut(timeout, socketPath)
        case .tooLong:
            throw LavaError(.controlProtocol, "the lava-boot agent's answer is too long (\(socketPath))")
        case .failed(let number):
            throw LavaError.errno("recv", socketPath, number).prefixed("talking to the lava-boot agent")
        }

        let response: JSONValue
        do {
            response = try JSONValue(parsing: answer)
        } catch {
            throw LavaError(.controlProtocol, "the lava-boot agent sent an unreadable answer: \(error.description)")
        }
        switch response["ok"] {
        case .bool(true)?:
            return response
        case .bool(false)?:
            let message = response["error"]?.stringValue ?? "no reason given"
            throw LavaError(.agentError, "the lava-boot agent refused the request: \(message)")
        default:
            throw LavaError(.controlProtocol, "the lava-boot agent's answer has no \"ok\" field")
        }
    }

    /// `status` with its answer decoded.
    public static func status(directory: AgentDirectory, timeout: Double? = defaultTimeout) throws(LavaError) -> AgentStatus {
        let response = try send(.status, directory: directory, timeout: timeout)
        guard let status = response["status"] else {
            throw LavaError(.controlProtocol, "the lava-boot agent's answer has no \"status\" field")
        }
        return try AgentStatus(json: status)
    }

    private static func connect(_ socketPath: String, deadline: Double?, timeout: Double?) throws(LavaError) -> Int32 {
        guard socketPath.utf8.count <= maximumSocketPathBytes else { throw socketPathTooLong(socketPath) }
        let fd = try makeUnixSocket()
        // A blocking AF_UNIX connect waits for room in a full backlog for up to SO_SNDTIMEO.
        if let deadline {
            let seconds = max(0.001, deadline - Clock.monotonicSeconds())
            var limit = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        }
        while true {
            let result = withUnixAddress(socketPath) { Glibc.connect(fd, $0, $1) }!
            if result == 0 { break }
            let number = errno
            if number == EINTR { continue }
            close(fd)
            switch number {
            case ENOENT, ENOTDIR:
                throw LavaError(.noAgent, "no lava-boot agent is running (no \(socketPath))")
            case ECONNREFUSED:
                throw LavaError(.noAgent, "no lava-boot agent is running (nothing listens on \(socketPath))")
            case EAGAIN, EINPROGRESS, ETIMEDOUT:
                throw timedOut(timeout, socketPath)
            case EACCES, EPERM:
                let denied = LavaError.errno("connect", socketPath, number)
                throw LavaError(denied.code, "\(denied.message) (the control socket is for root: run as root)")
            default:
                throw LavaError.errno("connect", socketPath, number)
            }
        }
        // The answer may be long in coming (`stop --wait`): deadlines are kept with poll, not here.
        var none = timeval()
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    private static func timedOut(_ timeout: Double?, _ socketPath: String) -> LavaError {
        let limit = timeout.map { "within \(jsonSeconds($0)) s" } ?? "in time"
        return LavaError(.agentTimeout, "the lava-boot agent did not answer \(limit) (\(socketPath))")
    }
}
