import Foundation
@testable import LavaControl
import LavaJSON
import LavaSystem
import Testing

/// The control socket end to end: a real server on a temporary root, real clients.
@Suite struct ControlServerTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    /// A locked directory with a started server; stopped and released by `close()`.
    final class Agent {
        let root = TemporaryRoot()
        let lock: AgentLock
        let server: ControlServer
        var directory: AgentDirectory { root.directory }

        init(allowPeer: (@Sendable (uid_t) -> Bool)? = nil,
             handler: @escaping @Sendable (ControlRequest) -> JSONValue) throws {
            lock = try AgentLock.acquire(root.directory)
            if let allowPeer {
                server = try ControlServer(directory: root.directory, log: nil, allowPeer: allowPeer, handler: handler)
            } else {
                server = try ControlServer(directory: root.directory, handler: handler)
            }
            try server.start()
        }

        func close() {
            server.stop()
            lock.release()
        }
    }

    // MARK: The socket

    @Test func socketIsMode0600WhateverTheUmask() throws {
        let previous = umask(0)
        let agent: Agent
        do {
            defer { umask(previous) }
            agent = try Agent { _ in ControlResponse.ok() }
        }
        defer { agent.close() }
        var info = stat()
        #expect(lstat(agent.directory.socketPath, &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFSOCK)
        #expect(info.st_mode & 0o7777 == 0o600)
        #expect(info.st_uid == geteuid())
        // The private bind directory is gone.
        #expect(try Files.list(agent.directory.path)?.sorted() == ["control.sock", "lava-boot.pid"])
    }

    @Test func aStaleSocketIsReplaced() throws {
        let root = TemporaryRoot()
        try Files.makeDirectories(root.directory.path)
        // A socket file nobody listens on, as a killed agent leaves behind.
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let bound = withUnixAddress(root.directory.socketPath) { bind(stale, $0, $1) }
        #expect(bound == 0)
        close(stale)
        expectLavaError(.noAgent) { _ = try ControlClient.send(.status, directory: root.directory, timeout: 5) }

        let lock = try AgentLock.acquire(root.directory)
        defer { lock.release() }
        let server = try ControlServer(directory: root.directory) { _ in ControlResponse.status(sampleStatus()) }
        defer { server.stop() }
        try server.start()
        #expect(try ControlClient.status(directory: root.directory, timeout: 5) == sampleStatus())
    }

    @Test func aNonSocketInThePlaceOfTheSocketIsLeftAlone() throws {
        let root = TemporaryRoot()
        let lock = try AgentLock.acquire(root.directory)
        defer { lock.release() }
        try Files.writeAtomically(root.directory.socketPath, Array("data".utf8))
        let error = expectLavaError(.system) { _ = try ControlServer(directory: root.directory) { _ in ControlResponse.ok() } }
        #expect(error?.message.contains("is not a socket") == true)
        #expect(try Files.readText(root.directory.socketPath) == "data")
    }

    @Test func stopClosesAndRemovesTheSocket() throws {
        let agent = try Agent { _ in ControlResponse.status(sampleStatus()) }
        defer { agent.lock.release() }
        #expect(try ControlClient.status(directory: agent.directory, timeout: 5).agentPID == 4242)
        agent.server.stop()
        #expect(!Files.exists(agent.directory.socketPath))
        let error = expectLavaError(.noAgent) { _ = try ControlClient.send(.status, directory: agent.directory, timeout: 5) }
        #expect(error?.message == "no lava-boot agent is running (no \(agent.directory.socketPath))")
        agent.server.stop()  // twice is fine
    }

    @Test func stopGivesAConnectionInFlightItsGraceThenShutsItDown() throws {
        let gate = Gate()
        let entered = Shared<Bool>(false)
        let agent = try Agent { request in
            if case .stop = request {
                entered.update { $0 = true }
                _ = gate.wait(seconds: 30)
            }
            return ControlResponse.ok()
        }
        defer {
            gate.open()
            agent.lock.release()
        }
        let outcome = Shared<LavaError?>(nil)
        let directory = agent.directory
        let started = Clock.monotonicSeconds()
        let client = Thread {
            do {
                _ = try ControlClient.send(.stop(StopRequest(wait: true)), directory: directory, timeout: nil)
            } catch let error as LavaError {
                outcome.update { $0 = error }
            } catch {}
        }
        client.start()
        for _ in 0..<3000 where !entered.value { usleep(10_000) }  // until the request is in the handler
        #expect(entered.value)
        agent.server.stop(grace: 0.3)
        let stopped = Clock.monotonicSeconds()
        #expect(stopped - started < 60, "the grace is 0.3 s; only a server that waits for the handler takes this long")
        for _ in 0..<500 where outcome.value == nil { usleep(10_000) }
        #expect(outcome.value?.code == .controlProtocol)
        #expect(outcome.value?.message.contains("closed the connection without answering") == true)
    }

    // MARK: Requests and answers

    @Test func statusRoundTrip() throws {
        let calls = Shared(0)
        let agent = try Agent { request in
            calls.update { $0 += 1 }
            #expect(request == .status)
            return ControlResponse.status(sampleStatus(pid: getpid()))
        }
        defer { agent.close() }
        let status = try ControlClient.status(directory: agent.directory, timeout: 5)
        #expect(status == sampleStatus(pid: getpid()))
        let response = try ControlClient.send(.status, directory: agent.directory, timeout: 5)
        #expect(response["ok"] == .bool(true))
        #expect(response["status"]?["realm"] == .string("demo"))
        #expect(calls.value == 2)
    }

    @Test func stopRoundTripWithEveryFlag() throws {
        let received = Shared<[ControlRequest]>([])
        let agent = try Agent { request in
            received.update { $0.append(request) }
            return ControlResponse.ok([JSONMember("stopping", .bool(true))])
        }
        defer { agent.close() }
        let full = StopRequest(signal: SIGINT, wait: true, noDispatch: true, autoScalingGroupName: "asg-lava",
                               lifecycleHookName: "drain-hook", lifecycleActionToken: "tok-123",
                               instanceID: "i-0abc", lifecycleHeartbeat: false)
        let response = try ControlClient.send(.stop(full), directory: agent.directory, timeout: 5)
        #expect(response == .object([JSONMember("ok", .bool(true)), JSONMember("stopping", .bool(true))]))
        _ = try ControlClient.send(.stop(StopRequest()), directory: agent.directory, timeout: 5)
        #expect(received.value == [.stop(full), .stop(StopRequest())])
    }

    @Test func rawWireFormat() throws {
        let agent = try Agent { request in
            if case .stop(let stop) = request { return ControlResponse.ok([JSONMember("signal", .number(Int(stop.signal ?? 0)))]) }
            return ControlResponse.status(sampleStatus())
        }
        defer { agent.close() }
        let path = agent.directory.socketPath
        #expect(try rawExchange(path, "{\"command\":\"stop\",\"signal\":15}\n") == "{\"ok\":true,\"signal\":15}\n")
        // No newline: the end of the stream ends the request.
        #expect(try rawExchange(path, "{\"command\":\"stop\",\"signal\":2}", shutdownWrite: true) == "{\"ok\":true,\"signal\":2}\n")
        let status = try rawExchange(path, "{\"command\":\"status\",\"from\":\"a newer client\"}\n")
        #expect(status.hasPrefix("{\"ok\":true,\"status\":{\"pid\":4242,\"realm\":\"demo\""))
        #expect(status.hasSuffix("}\n"))
    }

    @Test func malformedRequestsGetAnErrorAndTheServerKeepsServing() throws {
        let agent = try Agent { _ in ControlResponse.status(sampleStatus()) }
        defer { agent.close() }
        let path = agent.directory.socketPath
        let cases: [(String, String)] = [
            ("not json\n", "malformed request: invalid JSON at byte 0"),
            ("[1,2]\n", "malformed request: request: expected a JSON object"),
            ("{}\n", "malformed request: request.command: missing"),
            ("{\"command\":\"launch\"}\n", "malformed request: request.command: unknown command \\\"launch\\\" (expected status or stop)"),
            ("{\"command\":\"stop\",\"signal\":\"HUP\"}\n", "malformed request: request.signal: expected a whole number"),
            ("{\"command\":\"stop\",\"signal\":99}\n", "malformed request: request.signal: 99 is not a signal number (1-64)"),
            ("{\"command\":\"stop\",\"wait\":\"yes\"}\n", "malformed request: request.wait: expected true or false"),
        ]
        for (request, expected) in cases {
            let answer = try rawExchange(path, request)
            #expect(answer.hasPrefix("{\"ok\":false,\"error\":\"\(expected)"), "\(request) → \(answer)")
            #expect(answer.hasSuffix("\"}\n"), "\(answer)")
        }
        // A client that connects and says nothing gets nothing, and costs nothing.
        #expect(try rawExchange(path, "", shutdownWrite: true) == "")
        #expect(try ControlClient.status(directory: agent.directory, timeout: 5) == sampleStatus())
    }

    @Test func anOversizedRequestIsRefused() throws {
        let agent = try Agent { _ in ControlResponse.ok() }
        defer { agent.close() }
        let answer = try rawExchange(agent.directory.socketPath, String(repeating: " ", count: 70_000) + "{}\n")
        #expect(answer == "{\"ok\":false,\"error\":\"request longer than 65536 bytes\"}\n")
    }

    @Test func handlerErrorsReachTheClient() throws {
        let agent = try Agent { _ in ControlResponse.error("already stopping") }
        defer { agent.close() }
        let error = expectLavaError(.agentError) { _ = try ControlClient.send(.stop(StopRequest()), directory: agent.directory, timeout: 5) }
        #expect(error?.message == "the lava-boot agent refused the request: already stopping")
    }

    @Test func peersAreCheckedByUID() throws {
        let seen = Shared<[uid_t]>([])
        let handled = Shared(0)
        let agent = try Agent(allowPeer: { uid in
            seen.update { $0.append(uid) }
            return false
        }, handler: { _ in
            handled.update { $0 += 1 }
            return ControlResponse.ok()
        })
        defer { agent.close() }
        let error = expectLavaError(.agentError) { _ = try ControlClient.send(.status, directory: agent.directory, timeout: 5) }
        #expect(error?.message == "the lava-boot agent refused the request: uid \(geteuid()) may not use the lava-boot control socket; run as root")
        #expect(seen.value == [geteuid()])
        #expect(handled.value == 0)
    }

    // MARK: Clients

    @Test func noAgentNamesTheSocket() throws {
        let root = TemporaryRoot()
        let error = expectLavaError(.noAgent) { _ = try ControlClient.send(.status, directory: root.directory, timeout: 5) }
        #expect(error?.message == "no lava-boot agent is running (no \(root.directory.socketPath))")
        let stop = expectLavaError(.noAgent) { _ = try ControlClient.send(.stop(StopRequest(wait: true)), directory: root.directory, timeout: nil) }
        #expect(stop?.message.contains(root.directory.socketPath) == true)
    }

    @Test func aSlowHandlerTimesTheClientOut() throws {
        let gate = Gate()
        let agent = try Agent { request in
            if case .stop(let stop) = request, stop.wait { _ = gate.wait(seconds: 30) }
            return ControlResponse.ok()
        }
        defer {
            gate.open()
            agent.close()
        }
        let started = Clock.monotonicSeconds()
        let error = expectLavaError(.agentTimeout) {
            _ = try ControlClient.send(.stop(StopRequest(wait: true)), directory: agent.directory, timeout: 0.3)
        }
        let elapsed = Clock.monotonicSeconds() - started
        #expect(error?.message == "the lava-boot agent did not answer within 0.3 s (\(agent.directory.socketPath))")
        #expect(elapsed >= 0.3 && elapsed < 60, "\(elapsed)")
        // While a stop waits for the drain, status is still answered.
        #expect(try ControlClient.send(.status, directory: agent.directory, timeout: 5)["ok"] == .bool(true))
    }

    @Test func stopWaitWithoutTimeoutWaitsForTheDrain() throws {
        let gate = Gate()
        let agent = try Agent { request in
            if case .stop(let stop) = request, stop.wait {
                _ = gate.wait(seconds: 30)
                return ControlResponse.ok([JSONMember("drained", .bool(true))])
            }
            return ControlResponse.ok()
        }
        defer { agent.close() }
        let answer = Shared<JSONValue?>(nil)
        let directory = agent.directory
        let client = Thread {
            let response = try? ControlClient.send(.stop(StopRequest(wait: true)), directory: directory, timeout: nil)
            answer.update { $0 = response }
        }
        client.start()
        usleep(300_000)
        #expect(answer.value == nil)  // still waiting for the drain
        gate.open()
        for _ in 0..<500 where answer.value == nil { usleep(10_000) }
        #expect(answer.value?["drained"] == .bool(true))
    }

    @Test func manyConcurrentClients() throws {
        let calls = Shared(0)
        let agent = try Agent { _ in
            calls.update { $0 += 1 }
            usleep(2_000)
            return ControlResponse.status(sampleStatus())
        }
        defer { agent.close() }
        let failures = Shared<[String]>([])
        let directory = agent.directory
        let clients = 48, rounds = 5
        onThreads(clients) { _ in
            for _ in 0..<rounds {
                do {
                    let status = try ControlClient.status(directory: directory, timeout: 30)
                    if status != sampleStatus() { failures.update { $0.append("wrong status") } }
                } catch {
                    failures.update { $0.append("\(error)") }
                }
            }
        }
        #expect(failures.value == [])
        #expect(calls.value == clients * rounds)
    }

    @Test func moreClientsThanConnectionSlotsAllGetAnswers() throws {
        // Every slot held by a waiting stop: further clients queue in the backlog until one ends.
        let gate = Gate()
        let slots = ControlServer.maximumConnections
        let agent = try Agent { request in
            if case .stop = request { _ = gate.wait(seconds: 30) }
            return ControlResponse.ok()
        }
        defer { agent.close() }
        let answered = Shared(0)
        let directory = agent.directory
        let waiting = Thread {
            onThreads(slots) { _ in
                if (try? ControlClient.send(.stop(StopRequest(wait: true)), directory: directory, timeout: nil)) != nil {
                    answered.update { $0 += 1 }
                }
            }
        }
        waiting.start()
        usleep(500_000)
        expectLavaError(.agentTimeout) { _ = try ControlClient.send(.status, directory: agent.directory, timeout: 0.3) }
        gate.open()
        #expect(try ControlClient.send(.status, directory: agent.directory, timeout: 10)["ok"] == .bool(true))
        for _ in 0..<1000 where answered.value < slots { usleep(10_000) }
        #expect(answered.value == slots)
    }
}
