import CShim
import LavaSystem
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

/// What `status` shows of one daemon: the one type the supervisor reports and the control
/// module serialises (docs/status-json.md).
public struct DaemonStatus: Sendable, Equatable {
    /// `running`, `restarting` or `stopped`; a client may meet states a later agent adds.
    public struct Phase: RawRepresentable, Sendable, Hashable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let running = Phase(rawValue: "running")
        public static let restarting = Phase(rawValue: "restarting")
        public static let stopped = Phase(rawValue: "stopped")
    }
    public var worker: String
    /// 1-based among the worker's daemons, as in the log lines (`core daemon 1`).
    public var index: Int
    public var version: String
    /// nil while the daemon is not running.
    public var pid: Int32?
    /// Starts after the first.
    public var restarts: Int
    /// Seconds since this run started, while running.
    public var uptime: Double?
    public var phase: Phase
    /// How the previous process ended (`exit status 1`, `signal 9 (SIGKILL)`); nil before any exit.
    public var lastExit: String?

    public init(worker: String, index: Int, version: String, pid: Int32?, restarts: Int, uptime: Double?,
                phase: Phase, lastExit: String?) {
        self.worker = worker
        self.index = index
        self.version = version
        self.pid = pid
        self.restarts = restarts
        self.uptime = uptime
        self.phase = phase
        self.lastExit = lastExit
    }
}

/// Restart waits: 1 s doubling to 60 s, back to 1 s after a run of 10 minutes.
public struct RestartBackoff: Sendable {
    public var initial: Double = 1
    public var maximum: Double = 60
    public var resetAfter: Double = 600
    public init() {}

    /// Every wait scaled so the first is `initial` seconds (tests run many restarts quickly).
    public init(initial: Double) {
        self.maximum = maximum * initial / self.initial
        self.initial = initial
    }
}

/// Starts the daemons as direct children, restarts any that exits while not stopping, and
/// drains them on request. Exits arrive from the process's one Reaper; output and timers run on
/// one event-loop thread. The state lock is never held while forking, logging or signalling.
/// Each daemon leads its own process group: when it exits, whatever it left there gets SIGTERM
/// and, 10 s later, SIGKILL, and its successor starts only once the group is gone.
public final class Supervisor: Sendable {
    private struct Daemon {
        var spec: DaemonSpec
        var pid: pid_t?
        var startedAt: Double?
        var restarts = 0
        var nextDelay: Double
        var phase: DaemonStatus.Phase = .stopped
        var lastExit: String?
        /// Bumped on every start, so a stale restart timer or exit does nothing.
        var generation = 0
        /// The daemon's output pipe on the loop, while it runs.
        var output: EventLoop.SourceID?
        /// The group of the last run, which must be gone before the next starts.
        var lastGroup: pid_t?
        /// An exit the Reaper reported before the spawn was recorded.
        var earlyExit: (generation: Int, status: ExitStatus)?
    }

    private struct State {
        var daemons: [Daemon]
        var stopping = false
        /// Process groups of daemons that started and may still have members.
        var groups: [DaemonGroup] = []
        /// Bumped on every restart: `afterRestarts` runs only for the latest.
        var restartTicket = 0
        /// When the drain sends SIGTERM (monotonic seconds); it only ever moves earlier.
        var terminateAt = Double.infinity
    }

    private let state: Mutex<State>
    private let logger: Logger
    private let backoff: RestartBackoff
    private let loop: EventLoop
    private let records: DaemonRecords?
    private let afterRestarts: (@Sendable () -> Void)?
    static let groupKillGrace = 10.0
    /// Quiet time after a restart before `afterRestarts` runs: the exits, group waits and log
    /// lines around a burst of restarts are over by then.
    static let restartsSettle = 5.0

    /// - Parameter afterRestarts: called on the event loop once no daemon has restarted for
    ///   `restartsSettle` seconds.
    public init(specs: [DaemonSpec], logger: Logger, backoff: RestartBackoff = RestartBackoff(),
                records: DaemonRecords? = nil, afterRestarts: (@Sendable () -> Void)? = nil) throws(LavaError) {
        self.logger = logger
        self.backoff = backoff
        self.records = records
        self.afterRestarts = afterRestarts
        loop = try EventLoop()
        state = Mutex(State(daemons: specs.map { Daemon(spec: $0, nextDelay: backoff.initial) }))
    }

    public var isStopping: Bool { state.withLock { $0.stopping } }

    /// Starts every daemon. A daemon that cannot even be exec'd is retried like one that exits.
    public func start() {
        let count = state.withLock { $0.daemons.count }
        for index in 0..<count { launch(index) }
    }

    public func status() -> [DaemonStatus] {
        let now = Clock.monotonicSeconds()
        return state.withLock { state in
            state.daemons.map { daemon in
                DaemonStatus(worker: daemon.spec.worker, index: daemon.spec.index, version: daemon.spec.version,
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
        let ticket: (DaemonSpec, Int)? = state.withLock { state in
            guard !state.stopping else { return nil }
            state.daemons[index].generation += 1
            return (state.daemons[index].spec, state.daemons[index].generation)
        }
        guard let (spec, generation) = ticket else { return }
        let log = logger(for: spec)
        var fds: [Int32] = [0, 0]
        guard lava_pipe_cloexec(&fds) == 0 else {
            log.error("cannot start: pipe2: \(String(cString: strerror(errno)))")
            scheduleRestart(index, generation: generation)
            return
        }
        var request = SpawnRequest(executable: spec.executable, arguments: spec.arguments,
                                   environment: spec.environment, workingDirectory: spec.workingDirectory)
        request.argumentZero = "lava-worker"
        request.standardOutput = fds[1]
        request.standardError = fds[1]
        request.identity = spec.identity
        // Its own process group, so what it leaves behind can be found and stopped.
        request.newProcessGroup = true
        let pid: pid_t
        do throws(LavaError) {
            pid = try Reaper.shared.spawn(request) { [self] status in self.exited(index, generation: generation, status: status) }
        } catch {
            close(fds[0])
            close(fds[1])
            state.withLock { $0.daemons[index].lastExit = error.message }
            log.error("cannot start \(spec.worker) daemon \(spec.index): \(error.message)")
            scheduleRestart(index, generation: generation)
            return
        }
        close(fds[1])
        let group = DaemonGroup(id: pid, startTime: ProcessTable.startTime(of: pid) ?? 0)
        let output = log.with(component: "lava-worker")
        let source = loop.add(fds[0]) { line in output.info("\(line)") }
        let early: ExitStatus? = state.withLock { state in
            state.groups.append(group)
            state.daemons[index].pid = pid
            state.daemons[index].output = source
            state.daemons[index].startedAt = Clock.monotonicSeconds()
            state.daemons[index].phase = .running
            guard let early = state.daemons[index].earlyExit, early.generation == generation else { return nil }
            state.daemons[index].earlyExit = nil
            return early.status
        }
        recordGroups()
        log.info("started \(spec.worker) daemon \(spec.index) (pid \(pid), lava \(spec.version))")
        if let early { exited(index, generation: generation, status: early) }
    }

    /// On the reaper thread (or just after a spawn that the exit overtook).
    private func exited(_ index: Int, generation: Int, status: ExitStatus) {
        let outcome: (spec: DaemonSpec, pid: pid_t, output: EventLoop.SourceID?, uptime: Double, stopping: Bool, delay: Double)? = state.withLock { state in
            var daemon = state.daemons[index]
            guard daemon.generation == generation else { return nil }
            guard let pid = daemon.pid else {
                daemon.earlyExit = (generation, status)  // launch() records the pid, then handles this
                state.daemons[index] = daemon
                return nil
            }
            let uptime = daemon.startedAt.map { Clock.monotonicSeconds() - $0 } ?? 0
            let output = daemon.output
            daemon.pid = nil
            daemon.output = nil
            daemon.lastGroup = pid
            daemon.lastExit = status.description
            if state.stopping {
                daemon.phase = .stopped
            } else {
                if uptime >= backoff.resetAfter { daemon.nextDelay = backoff.initial }
                daemon.phase = .restarting
                daemon.restarts += 1
            }
            state.daemons[index] = daemon
            return (daemon.spec, pid, output, uptime, state.stopping, daemon.nextDelay)
        }
        guard let outcome else { return }
        if let output = outcome.output { loop.retire(output) }
        let log = logger(for: outcome.spec)
        let what = "\(outcome.spec.worker) daemon \(outcome.spec.index) exited (\(status)) after \(Int(outcome.uptime)) s"
        if outcome.stopping {
            log.info("\(what)")
        } else {
            log.error("\(what); restarting in \(formatSeconds(outcome.delay))")
        }
        stopLeftovers(of: outcome.pid, log: log)
        if !outcome.stopping { scheduleRestart(index, generation: generation) }
    }

    /// SIGTERM to whatever the daemon left in its group, SIGKILL `groupKillGrace` later.
    private func stopLeftovers(of group: pid_t, log: Logger) {
        guard ProcessTable.groupExists(group) else { return forget(group) }
        log.warning("processes the daemon started are still running in its group \(group); sending them SIGTERM")
        kill(-group, SIGTERM)
        loop.schedule(after: Supervisor.groupKillGrace) { [self] in
            guard ProcessTable.groupExists(group) else { return forget(group) }
            log.error("processes of group \(group) ignored SIGTERM; sending SIGKILL")
            kill(-group, SIGKILL)
        }
        waitForGroup(group)
    }

    /// Polls, on the loop, until the group is gone, then drops it from the records.
    private func waitForGroup(_ group: pid_t) {
        loop.schedule(after: 0.1) { [self] in
            if ProcessTable.groupExists(group) { waitForGroup(group) } else { forget(group) }
        }
    }

    private func forget(_ group: pid_t) {
        let removed = state.withLock { state in
            let before = state.groups.count
            state.groups.removeAll { $0.id == group }
            return before != state.groups.count
        }
        if removed { recordGroups() }
    }

    private func recordGroups() {
        guard let records else { return }
        let groups = state.withLock { $0.groups }
        do { try records.write(groups) } catch { logger.warning("cannot record the daemons: \(error.message)") }
    }

    /// After the backoff, and once the previous run's group is gone, starts the next run.
    private func scheduleRestart(_ index: Int, generation: Int) {
        let delay: Double? = state.withLock { state in
            guard state.daemons[index].generation == generation, !state.stopping else { return nil }
            let delay = state.daemons[index].nextDelay
            state.daemons[index].nextDelay = min(backoff.maximum, delay * 2)
            state.daemons[index].phase = .restarting
            return delay
        }
        guard let delay else { return }
        loop.schedule(after: delay) { [self] in self.restartWhenClear(index, generation: generation) }
    }

    private func restartWhenClear(_ index: Int, generation: Int) {
        let (current, lastGroup): (Bool, pid_t?) = state.withLock { state in
            (state.daemons[index].generation == generation && !state.stopping, state.daemons[index].lastGroup)
        }
        guard current else { return }
        if let lastGroup, ProcessTable.groupExists(lastGroup) {
            loop.schedule(after: 0.1) { [self] in self.restartWhenClear(index, generation: generation) }
            return
        }
        launch(index)
        guard let afterRestarts else { return }
        let ticket = state.withLock { state in
            state.restartTicket += 1
            return state.restartTicket
        }
        loop.schedule(after: Supervisor.restartsSettle) { [self] in
            if state.withLock({ $0.restartTicket == ticket && !$0.stopping }) { afterRestarts() }
        }
    }

    /// Stops every daemon: `beginDrain` then `finishDrain`.
    public func drain(signal: Int32 = SIGHUP, terminateAt: Double, killGrace: Double = 10) {
        beginDrain(signal: signal)
        finishDrain(terminateAt: terminateAt, killGrace: killGrace)
    }

    /// Restarts no daemon from now on, and sends `signal` to every running one (workers finish
    /// in-flight jobs); returns at once.
    public func beginDrain(signal: Int32 = SIGHUP) {
        let running: [(pid_t, DaemonSpec)] = state.withLock { state in
            state.stopping = true
            for index in state.daemons.indices where state.daemons[index].phase == .restarting {
                state.daemons[index].phase = .stopped
            }
            return Supervisor.running(state)
        }
        for (pid, spec) in running {
            logger(for: spec).info("sending \(signalName(signal)) to \(spec.worker) daemon \(spec.index) (pid \(pid))")
            kill(pid, signal)
        }
    }

    /// After `beginDrain`: SIGTERM at `terminateAt` (monotonic seconds) to the daemons still
    /// running, SIGKILL `killGrace` later to every group still there, leftovers of daemons gone
    /// before included. Returns once every daemon has been reaped and every group is gone, or
    /// `killSettle` after the SIGKILL: nothing outlives the kill time, and no process stuck in
    /// the kernel holds up the lifecycle completion. `advanceDrain` may move both times earlier.
    public func finishDrain(terminateAt: Double, killGrace: Double = 10) {
        advanceDrain(terminateAt: terminateAt)
        if !waitUntil({ $0.terminateAt }, { $0.daemons.allSatisfy { $0.pid == nil } }) {
            for (pid, spec) in remaining() {
                logger(for: spec).warning("\(spec.worker) daemon \(spec.index) still running at the deadline; sending SIGTERM (pid \(pid))")
                kill(pid, SIGTERM)
            }
        }
        // Exits queued their leftovers' SIGTERM and SIGKILL; none of those may land after the kill time.
        let gone: (State) -> Bool = { $0.groups.isEmpty && $0.daemons.allSatisfy { $0.pid == nil } }
        guard !waitUntil({ $0.terminateAt + killGrace }, gone) else { return }
        let running = remaining()
        for (pid, spec) in running {
            logger(for: spec).error("\(spec.worker) daemon \(spec.index) ignored SIGTERM; sending SIGKILL to it and its processes (pid \(pid))")
        }
        let groups = state.withLock { $0.groups.map(\.id) }
        let leftovers = groups.filter { group in !running.contains { $0.0 == group } }
        if !leftovers.isEmpty {
            logger.error("processes of daemons that exited are still running at the kill time (process groups \(leftovers.map(String.init).joined(separator: ", "))); sending SIGKILL")
        }
        for group in groups where ProcessTable.groupExists(group) {
            kill(-group, SIGKILL)
        }
        let settled = Clock.monotonicSeconds() + Supervisor.killSettle
        if !waitUntil({ _ in settled }, gone) {
            logger.error("processes still there \(Int(Supervisor.killSettle)) s after SIGKILL (process groups \(groups.map(String.init).joined(separator: ", "))); going on without them")
        }
    }

    /// Moves the drain's SIGTERM to `terminateAt`, and its SIGKILL to `killGrace` after that, when
    /// earlier than planned; from any thread, before or during `finishDrain`, which keeps to the
    /// new times. After the SIGTERM, only the SIGKILL moves: the daemons then get less grace,
    /// as a deadline that came closer leaves no more.
    public func advanceDrain(terminateAt: Double) {
        state.withLock { $0.terminateAt = min($0.terminateAt, terminateAt) }
    }

    /// How long processes get to vanish after SIGKILL before the drain goes on without them.
    static let killSettle = 2.0

    private func remaining() -> [(pid_t, DaemonSpec)] { state.withLock { Supervisor.running($0) } }

    private static func running(_ state: State) -> [(pid_t, DaemonSpec)] {
        state.daemons.compactMap { daemon in daemon.pid.map { ($0, daemon.spec) } }
    }

    /// Polls until `done` holds of the state or the time `deadline` reads from it passes; true
    /// when it holds.
    private func waitUntil(_ deadline: (State) -> Double, _ done: (State) -> Bool) -> Bool {
        while true {
            let (isDone, limit) = state.withLock { (done($0), deadline($0)) }
            if isDone { return true }
            let left = limit - Clock.monotonicSeconds()
            if left <= 0 { return false }
            Clock.sleep(seconds: min(0.05, left))
        }
    }
}

func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(seconds) s"
}

