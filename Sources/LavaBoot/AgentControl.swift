import Dispatch
import LavaControl
import LavaJSON
import LavaSupervisor
import LavaSystem
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The agent's control socket: `status` answers from the supervisor, `stop` fires the trigger
/// (and, with `wait`, answers once the drain is over).
public final class AgentControl: Sendable {
    private let lock: AgentLock
    private let server: ControlServer
    private let drained = DispatchSemaphore(value: 0)
    /// Where the supervisor records its daemons' process groups for the next agent.
    public let records: DaemonRecords

    /// Takes the single-agent lock on `root` first: a second agent fails here, changing nothing.
    public init(root: HostRoot, agent: @escaping @Sendable () -> Agent?, trigger: StopTrigger, startedAt: Double,
                identity: (realm: String, worker: String, source: String), logger: Logger) throws(LavaError) {
        let directory = AgentDirectory(root: root)
        lock = try AgentLock.acquire(directory)
        records = DaemonRecords(directory: directory.path)
        // An agent that died (SIGKILL, OOM) left its daemons running: never two sets at once.
        records.stopLeftovers(logger: logger)
        let drained = self.drained
        do {
            server = try ControlServer(directory: directory, log: { line in logger.debug("\(line)") }) { request in
                switch request {
                case .status:
                    let rows = agent()?.supervisor?.status() ?? []
                    return ControlResponse.status(AgentStatus(
                        agentPID: getpid(), realm: identity.realm, worker: identity.worker, source: identity.source,
                        stopping: trigger.current != nil, startedAt: startedAt, daemons: rows, lifecycle: agent()?.lifecycleStatus))
                case .stop(let stop):
                    let overrides = LifecycleOverrides(group: stop.autoScalingGroupName, hook: stop.lifecycleHookName,
                                                       token: stop.lifecycleActionToken, instanceID: stop.instanceID,
                                                       heartbeat: stop.lifecycleHeartbeat)
                    let first = trigger.fire(StopReason(source: "stop request", signal: stop.signal ?? SIGHUP, lifecycle: overrides))
                    logger.info(first ? "stop requested on the control socket" : "stop requested again; already stopping")
                    if stop.wait {
                        drained.wait()
                        drained.signal()
                        return ControlResponse.ok([JSONMember("drained", .bool(true))])
                    }
                    return ControlResponse.ok([JSONMember("stopping", .bool(true))])
                }
            }
            try server.start()
        } catch {
            lock.release()
            throw error
        }
    }

    /// After the drain: answers waiting `stop --wait` clients, closes the socket, frees the lock.
    public func finish() {
        drained.signal()
        server.stop()
        lock.release()
    }
}
