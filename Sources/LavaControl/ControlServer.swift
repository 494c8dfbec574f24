#if canImport(Glibc)
import Glibc
#endif
import LavaJSON
import LavaSystem

/// The agent's end of `<dir>/control.sock`: one accepting thread, one thread per connection;
/// each connection carries one request line of JSON and gets one answer line, then closes.
/// Only root and the agent's own user are served.
///
/// Create it while holding the `AgentLock`, then `start()`; `stop()` before the agent exits.
public final class ControlServer: Sendable {
    public let directory: AgentDirectory
    private let handler: @Sendable (ControlRequest) -> JSONValue
    private let log: (@Sendable (String) -> Void)?
    private let allowPeer: @Sendable (uid_t) -> Bool
    private let listener: Int32
    private let wakeReader: Int32
    private let wakeWriter: Int32
    private let socketDevice: UInt64
    private let socketInode: UInt64
    private let monitor = Monitor(State())

    /// Connections served at once; more wait in the listen backlog.
    static let maximumConnections = 32
    /// A client gets this long to send its request line, and to take its answer.
    static let requestTimeout = 5.0
    static let maximumRequestBytes = 65_536

    private enum Phase { case created, running(pthread_t), stopped }

    private struct State {
        var phase = Phase.created
        var connections = Set<Int32>()
    }

    /// Binds and listens on `directory.socketPath` (mode 0600), replacing a stale socket file.
    /// Connections wait in the backlog until `start()`. `log` receives refused peers and
    /// accept failures. `handler` runs on a connection's thread; with `stop --wait` it may
    /// block until the drain is done. It returns the whole answer (see `ControlResponse`).
    public convenience init(directory: AgentDirectory, log: (@Sendable (String) -> Void)? = nil,
                            handler: @escaping @Sendable (ControlRequest) -> JSONValue) throws(LavaError) {
        let euid = geteuid()
        try self.init(directory: directory, log: log, allowPeer: { $0 == 0 || $0 == euid }, handler: handler)
    }

    /// `allowPeer` decides from the peer's uid (SO_PEERCRED) whether it is served.
    init(directory: AgentDirectory, log: (@Sendable (String) -> Void)?, allowPeer: @escaping @Sendable (uid_t) -> Bool,
         handler: @escaping @Sendable (ControlRequest) -> JSONValue) throws(LavaError) {
        let socketPath = directory.socketPath
        guard socketPath.utf8.count <= maximumSocketPathBytes else { throw socketPathTooLong(socketPath) }
        try ControlServer.removeStaleSocket(socketPath)

        let fd = try makeUnixSocket(nonBlocking: true)
        do {
            try ControlServer.bindPrivately(fd, directory: directory.path, socketPath: socketPath)
        } catch {
            close(fd)
            throw error
        }
        var info = stat()
        var pair: [Int32] = [-1, -1]
        let failure: LavaError? =
            if listen(fd, 64) != 0 { .errno("listen", socketPath) }
            else if lstat(socketPath, &info) != 0 { .errno("lstat", socketPath) }
            else if socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) != 0 { .errno("socketpair") }
            else { nil }
        if let failure {
            close(fd)
            unlink(socketPath)
            throw failure
        }
        self.directory = directory
        self.handler = handler
        self.log = log
        self.allowPeer = allowPeer
        self.listener = fd
        self.wakeReader = pair[0]
        self.wakeWriter = pair[1]
        self.socketDevice = UInt64(info.st_dev)
        self.socketInode = UInt64(info.st_ino)
    }

    deinit {
        // Running servers are kept alive by their accepting thread; this is one never started.
        let unstarted = monitor.withLock { state -> Bool in
            if case .created = state.phase { return true }
            return false
        }
        if unstarted { closeListener() }
    }

    /// Starts accepting. Does nothing if the server was already started or stopped.
    public func start() throws(LavaError) {
        try monitor.withLock { (state: inout State) throws(LavaError) in
            guard case .created = state.phase else { return }
            let thread = try Threads.start(name: "lava-control", joinable: true) { [self] in acceptLoop() }
            state.phase = .running(thread)
        }
    }

    /// Stops accepting, closes and removes the socket, then gives connections in flight up to
    /// `grace` seconds to answer; any still open after that are shut down (their handlers run on,
    /// but their answers go nowhere). Call it from the agent, never from inside the handler.
    public func stop(grace: Double = 5) {
        let previous = monitor.withLock { state in
            defer { state.phase = .stopped }
            return state.phase
        }
        switch previous {
        case .stopped:
            return
        case .created:
            break
        case .running(let thread):
            var byte: UInt8 = 1
            _ = write(wakeWriter, &byte, 1)
            Threads.join(thread)
        }
        closeListener()
        let deadline = Clock.monotonicSeconds() + grace
        if !monitor.wait(until: deadline, for: { $0.connections.isEmpty }) {
            // Shut down, never close: the connection's thread owns its descriptor and closes it.
            monitor.withLock { state in
                for fd in state.connections { shutdown(fd, Int32(SHUT_RDWR)) }
            }
        }
    }

    private func closeListener() {
        close(listener)
        close(wakeReader)
        close(wakeWriter)
        // Only the file this server bound: never a socket some later agent put in its place.
        var info = stat()
        if lstat(directory.socketPath, &info) == 0, UInt64(info.st_dev) == socketDevice, UInt64(info.st_ino) == socketInode {
            unlink(directory.socketPath)
        }
    }

    // MARK: Setting up the socket

    private static func removeStaleSocket(_ path: String) throws(LavaError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw LavaError(.system, "\(path) exists and is not a socket; remove it and start lava-boot again")
        }
        if unlink(path) != 0 && errno != ENOENT { throw .errno("unlink", path) }
    }

    /// The socket file's mode comes from the umask at bind(2) (fchmod on the socket does not reach
    /// it on Linux), and the umask is process-wide, not ours to change while other threads create
    /// files. So: bind inside a fresh 0700 directory, chmod the socket to 0600 there, and rename it
    /// into place. At no moment can anyone but this user reach it with a wider mode.
    private static func bindPrivately(_ fd: Int32, directory: String, socketPath: String) throws(LavaError) {
        var template = Array(Paths.join(directory, ".bind-XXXXXX").utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw .errno("mkdtemp", directory)
        }
        let privateDirectory = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let temporary = Paths.join(privateDirectory, "s")
        defer {
            unlink(temporary)
            rmdir(privateDirectory)
        }
        // The private path is no longer than the final one ("/.bind-XXXXXX/s" vs "/control.sock"
        // plus 2), so a socket path that fits makes this one fit too, bar those 2 bytes.
        guard let bound = withUnixAddress(temporary, { bind(fd, $0, $1) }) else { throw socketPathTooLong(temporary) }
        if bound != 0 { throw .errno("bind", temporary) }
        if chmod(temporary, 0o600) != 0 { throw .errno("chmod", temporary) }
        if rename(temporary, socketPath) != 0 { throw .errno("rename", socketPath) }
    }

    // MARK: Serving

    private func acceptLoop() {
        var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wakeReader, events: Int16(POLLIN), revents: 0)]
        while true {
            // At the limit, leave new clients in the backlog until a connection ends.
            monitor.wait(until: nil) { state in
                if case .stopped = state.phase { return true }
                return state.connections.count < ControlServer.maximumConnections
            }
            fds[0].revents = 0
            fds[1].revents = 0
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno != EINTR { pause(because: "poll", errno) }
                continue
            }
            if fds[1].revents != 0 { return }
            if fds[0].revents == 0 { continue }
            // accept4(SOCK_CLOEXEC) needs _GNU_SOURCE, which Swift's Glibc import lacks. The
            // moment between accept and fcntl is harmless: lava-boot's spawn marks every
            // descriptor above 2 close-on-exec in the child (close_range) before it execs.
            let client = accept(listener, nil, nil)
            if client < 0 {
                switch errno {
                case EAGAIN, EINTR, ECONNABORTED: continue
                default: pause(because: "accept", errno)
                }
                continue
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            admit(client)
        }
    }

    /// After a failure that will repeat at once (no descriptors left, no memory): log it and
    /// wait a little instead of spinning.
    private func pause(because call: String, _ number: Int32) {
        log?("control socket: \(LavaError.errno(call, directory.socketPath, number).message)")
        usleep(100_000)
    }

    private func admit(_ client: Int32) {
        guard let uid = peerUID(client) else {
            close(client)
            return
        }
        guard allowPeer(uid) else {
            log?("control socket: refused a connection from uid \(uid)")
            answer(client, ControlResponse.error("uid \(uid) may not use the lava-boot control socket; run as root"))
            close(client)
            return
        }
        monitor.withLock { _ = $0.connections.insert(client) }
        do {
            try Threads.start { [self] in serve(client) }
        } catch {
            log?("control socket: \(error.message)")
            monitor.withLock { _ = $0.connections.remove(client) }
            answer(client, ControlResponse.error("the agent cannot serve this request now: \(error.message)"))
            close(client)
        }
    }

    private func serve(_ client: Int32) {
        var linger = 0.0  // how long to take unread input off a client that is still sending
        defer {
            shutdown(client, Int32(SHUT_WR))
            discardInput(client, until: Clock.monotonicSeconds() + linger, limit: 1 << 20)
            // Leave the set before closing, so `stop` never shuts down a reused descriptor.
            monitor.withLock { _ = $0.connections.remove(client) }
            close(client)
        }
        let bytes: [UInt8]
        switch readLine(client, until: Clock.monotonicSeconds() + ControlServer.requestTimeout,
                        limit: ControlServer.maximumRequestBytes) {
        case .line(let line),
             .closed(let line) where !line.isEmpty:
            bytes = line
        case .closed, .failed:
            return
        case .timedOut:
            answer(client, ControlResponse.error("no request line within \(Int(ControlServer.requestTimeout)) s"))
            return
        case .tooLong:
            linger = 1
            answer(client, ControlResponse.error("request longer than \(ControlServer.maximumRequestBytes) bytes"))
            return
        }
        let request: ControlRequest
        do {
            request = try ControlRequest(json: JSONValue(parsing: bytes))
        } catch let error as JSONParseError {
            answer(client, ControlResponse.error("malformed request: \(error.description)"))
            return
        } catch let error as LavaError {
            answer(client, ControlResponse.error("malformed request: \(error.message)"))
            return
        } catch {
            answer(client, ControlResponse.error("malformed request: \(error)"))
            return
        }
        answer(client, handler(request))
    }

    private func answer(_ client: Int32, _ response: JSONValue) {
        let line = Array((response.serialized() + "\n").utf8)
        writeAll(client, line, until: Clock.monotonicSeconds() + ControlServer.requestTimeout)
    }
}
