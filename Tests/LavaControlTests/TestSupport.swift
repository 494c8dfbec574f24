import Foundation
import LavaControl
import LavaJSON
import LavaSupervisor
import LavaSystem
import LavaTestSupport
import Synchronization
import Testing

/// A private directory used as `--root`, removed at the end of the test.
final class TemporaryRoot {
    private let scratch = TemporaryDirectory("control")
    var path: String { scratch.path }

    var root: HostRoot { HostRoot(path) }
    var directory: AgentDirectory { AgentDirectory(root: root) }
}

/// Fails the test unless `body` throws a LavaError with `code`; returns that error.
@discardableResult
func expectLavaError(_ code: LavaError.Code, sourceLocation: SourceLocation = #_sourceLocation,
                     _ body: () throws -> Void) -> LavaError? {
    do {
        try body()
        Issue.record("expected a \(code) error, but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as LavaError {
        #expect(error.code == code, "\(error.message)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected a LavaError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// A raw client: connects to `path`, writes `bytes` as they are, reads until the server closes.
func rawExchange(_ path: String, _ text: String, shutdownWrite: Bool = false) throws -> String {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw LavaError.errno("socket") }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard connected == 0 else { throw LavaError.errno("connect", path) }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let request = Array(text.utf8)
    guard request.isEmpty || send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else {
        throw LavaError.errno("send", path)
    }
    if shutdownWrite { shutdown(fd, Int32(SHUT_WR)) }
    var answer = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &chunk, chunk.count, 0)
        if n < 0 { throw LavaError.errno("recv", path) }
        if n == 0 { break }
        answer += chunk[0..<n]
    }
    return String(decoding: answer, as: UTF8.self)
}

/// A value tests share with handlers running on the server's threads.
final class Shared<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>
    init(_ value: Value) { storage = Mutex(value) }
    var value: Value { storage.withLock { $0 } }
    func update<R>(_ body: (inout Value) -> R) -> R { storage.withLock { body(&$0) } }
}

/// A gate handlers wait on until the test opens it; opening releases every waiter.
final class Gate: @unchecked Sendable {  // `opened` is only touched with `condition` locked
    private let condition = NSCondition()
    private var opened = false

    func open() {
        condition.lock()
        opened = true
        condition.broadcast()
        condition.unlock()
    }

    /// True when opened before `seconds` passed.
    func wait(seconds: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: seconds)
        while !opened {
            if !condition.wait(until: deadline) { return opened }
        }
        return true
    }
}

func sampleStatus(pid: Int32 = 4242) -> AgentStatus {
    AgentStatus(
        agentPID: pid, realm: "demo", worker: "core", source: "file:///srv/lava-code", stopping: false,
        startedAt: 1_795_460_645.25,
        daemons: [
            DaemonStatus(worker: "core", index: 0, version: "8.2.0", pid: 4250, restarts: 0,
                            uptime: 7385.5, phase: .init(rawValue: "running"), lastExit: nil),
            DaemonStatus(worker: "core", index: 1, version: "8.2.0", pid: nil, restarts: 3,
                            uptime: nil, phase: .init(rawValue: "restarting"), lastExit: "exit status 1"),
            DaemonStatus(worker: "batch", index: 0, version: "7.0.3", pid: 4301, restarts: 12,
                            uptime: 42.125, phase: .init(rawValue: "running"), lastExit: "signal 9 (SIGKILL)"),
        ])
}

/// Runs `count` bodies on their own OS threads at once and waits for all of them.
func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        let thread = Thread {
            body(index)
            group.leave()
        }
        thread.start()
    }
    group.wait()
}
