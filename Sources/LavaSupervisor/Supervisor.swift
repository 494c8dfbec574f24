import CShim
import LavaSystem
import LavaLog
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One daemon to keep running: which worker, which release, exactly what to exec and as whom.
public struct DaemonSpec: Sendable, Equatable {
    public var worker: String
    /// 1-based, among the worker's daemons.
    public var index: Int
    public var version: String
    public var executable: String
    public var arguments: [String]
    public var environment: [String]
    public var workingDirectory: String?
    /// nil: run as the agent's own user (`--user-mode`).
    public var identity: SpawnRequest.Identity?

    public init(worker: String, index: Int, version: String, executable: String, arguments: [String],
                environment: [String], workingDirectory: String?, identity: SpawnRequest.Identity?) {
        self.worker = worker
        self.index = index
        self.version = version
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.identity = identity
    }
}

/// What `status` shows of one daemon.
public struct DaemonState: Sendable, Equatable {
    public enum Phase: String, Sendable { case running, restarting, stopped }
    public var worker: String
    public var index: Int
    public var version: String
    public var pid: Int32?
    public var restarts: Int
    /// Seconds since this run started, while running.
    public var uptime: Double?
    public var phase: Phase
    public var lastExit: String?
}

/// Restart waits: 1 s doubling to 60 s, back to 1 s after a run of 10 minutes.
public struct RestartBackoff: Sendable {
    public var initial: Double = 1
    public var maximum: Double = 60
    public var resetAfter: Double = 600
    public init() {}
}

/// Starts the daemons as direct children, restarts any that exits while not stopping, and
/// drains them on request. Exits arrive from the process's one Reaper; output from one pump thread.
public final class Supervisor: Sendable {
    private struct Daemon {
        var spec: DaemonSpec
        var pid: pid_t?
        var startedAt: Double?
        var restarts = 0
        var nextDelay: Double
        var phase: DaemonState.Phase = .stopped
        var lastExit: String?
        /// Bumped on every start, so a stale restart timer does nothing.
        var generation = 0
    }

    private struct State {
        var daemons: [Daemon]
        var stopping = false
    }

    private let state: Mutex<State>
    private let logger: Logger
    private let backoff: RestartBackoff
    private let loop: EventLoop

    public init(specs: [DaemonSpec], logger: Logger, backoff: RestartBackoff = RestartBackoff()) throws(LavaError) {
        self.logger = logger
        self.backoff = backoff
        loop = try EventLoop()
        state = Mutex(State(daemons: specs.map { Daemon(spec: $0, nextDelay: backoff.initial) }))
    }

    public var isStopping: Bool { state.withLock { $0.stopping } }

    /// Starts every daemon. A daemon that cannot even be exec'd is retried like one that exits.
    public func start() {
        let count = state.withLock { $0.daemons.count }
        for index in 0..<count { launch(index) }
    }

    public func status() -> [DaemonState] {
        let now = Clock.monotonicSeconds()
        return state.withLock { state in
            state.daemons.map { daemon in
                DaemonState(worker: daemon.spec.worker, index: daemon.spec.index, version: daemon.spec.version,
                            pid: daemon.pid, restarts: daemon.restarts,
                            uptime: daemon.pid == nil ? nil : daemon.startedAt.map { now - $0 },
                            phase: daemon.phase, lastExit: daemon.lastExit)
            }
        }
    }

    private func logger(for spec: DaemonSpec) -> Logger {
        var logger = self.logger
        logger[metadataKey: "worker"] = "\(spec.worker)"
        logger[metadataKey: "daemon"] = "\(spec.index)"
        return logger
    }

    private func launch(_ index: Int) {
        state.withLock { state in
            guard !state.stopping else { return }
            var daemon = state.daemons[index]
            let log = logger(for: daemon.spec)
            daemon.generation += 1
            var fds: [Int32] = [0, 0]
            guard lava_pipe_cloexec(&fds) == 0 else {
                log.error("cannot start: pipe2: \(String(cString: strerror(errno)))")
                return
            }
            var request = SpawnRequest(executable: daemon.spec.executable, arguments: daemon.spec.arguments,
                                       environment: daemon.spec.environment, workingDirectory: daemon.spec.workingDirectory)
            request.argumentZero = "lava-worker"
            request.standardOutput = fds[1]
            request.standardError = fds[1]
            request.identity = daemon.spec.identity
            // Its own process group, so SIGKILL at the deadline takes the worker's jobs too.
            request.newProcessGroup = true
            let generation = daemon.generation
            do throws(LavaError) {
                let pid = try Reaper.shared.spawn(request) { [self] status in self.exited(index, generation: generation, status: status) }
                close(fds[1])
                daemon.pid = pid
                daemon.startedAt = Clock.monotonicSeconds()
                daemon.phase = .running
                state.daemons[index] = daemon
                let output = log.with(component: "lava-worker")
                loop.add(fds[0]) { line in output.info("\(line)") }
                log.info("started \(daemon.spec.worker) daemon \(daemon.spec.index) (pid \(pid), lava \(daemon.spec.version))")
            } catch {
                close(fds[0])
                close(fds[1])
                daemon.lastExit = error.message
                state.daemons[index] = daemon
                log.error("cannot start \(daemon.spec.worker) daemon \(daemon.spec.index): \(error.message)")
                scheduleRestart(index, state: &state)
            }
        }
    }

    /// On the reaper thread.
    private func exited(_ index: Int, generation: Int, status: ExitStatus) {
        state.withLock { state in
            var daemon = state.daemons[index]
            guard daemon.generation == generation else { return }
            let log = logger(for: daemon.spec)
            let uptime = daemon.startedAt.map { Clock.monotonicSeconds() - $0 } ?? 0
            daemon.pid = nil
            daemon.lastExit = status.description
            state.daemons[index] = daemon
            if state.stopping {
                state.daemons[index].phase = .stopped
                log.info("\(daemon.spec.worker) daemon \(daemon.spec.index) exited (\(status)) after \(Int(uptime)) s")
                return
            }
            if uptime >= backoff.resetAfter { state.daemons[index].nextDelay = backoff.initial }
            log.error("\(daemon.spec.worker) daemon \(daemon.spec.index) exited (\(status)) after \(Int(uptime)) s; restarting in \(formatSeconds(state.daemons[index].nextDelay))")
            scheduleRestart(index, state: &state)
        }
    }

    private func scheduleRestart(_ index: Int, state: inout State) {
        let delay = state.daemons[index].nextDelay
        state.daemons[index].nextDelay = min(backoff.maximum, delay * 2)
        state.daemons[index].phase = .restarting
        state.daemons[index].restarts += 1
        let generation = state.daemons[index].generation
        loop.schedule(after: delay) { [self] in
            let current = self.state.withLock { $0.daemons[index].generation == generation && !$0.stopping }
            if current { self.launch(index) }
        }
    }

    /// Stops every daemon: `signal` first (workers finish in-flight jobs), SIGTERM at
    /// `terminateAt` (monotonic seconds) for those still running, SIGKILL `killGrace` later.
    /// Returns once every daemon has been reaped.
    public func drain(signal: Int32 = SIGHUP, terminateAt: Double, killGrace: Double = 10) {
        let running: [(pid_t, DaemonSpec)] = state.withLock { state in
            state.stopping = true
            for index in state.daemons.indices where state.daemons[index].phase == .restarting {
                state.daemons[index].phase = .stopped
            }
            return state.daemons.compactMap { daemon in daemon.pid.map { ($0, daemon.spec) } }
        }
        for (pid, spec) in running {
            logger(for: spec).info("sending \(signalName(signal)) to \(spec.worker) daemon \(spec.index) (pid \(pid))")
            kill(pid, signal)
        }
        if waitForAll(until: terminateAt) { return }
        for (pid, spec) in remaining() {
            logger(for: spec).warning("\(spec.worker) daemon \(spec.index) still running at the deadline; sending SIGTERM (pid \(pid))")
            kill(pid, SIGTERM)
        }
        if waitForAll(until: Clock.monotonicSeconds() + killGrace) { return }
        for (pid, spec) in remaining() {
            logger(for: spec).error("\(spec.worker) daemon \(spec.index) ignored SIGTERM; sending SIGKILL to it and its processes (pid \(pid))")
            kill(-pid, SIGKILL)
        }
        _ = waitForAll(until: Clock.monotonicSeconds() + 30)
    }

    private func remaining() -> [(pid_t, DaemonSpec)] {
        state.withLock { state in state.daemons.compactMap { daemon in daemon.pid.map { ($0, daemon.spec) } } }
    }

    /// Polls until no daemon runs or the time passes; true when all have exited.
    private func waitForAll(until deadline: Double) -> Bool {
        while true {
            if remaining().isEmpty { return true }
            if Clock.monotonicSeconds() >= deadline { return false }
            Clock.sleep(seconds: min(0.05, max(0, deadline - Clock.monotonicSeconds())))
        }
    }
}

func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(seconds) s"
}

