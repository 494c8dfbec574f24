import LavaSystem

extension LavaError.Code {
    /// No agent answers on the control socket: `status` says so, `stop` still completes a
    /// lifecycle action it was given.
    public static let noAgent = LavaError.Code("no-agent")
    /// Another agent holds the lock in `/run/lava-boot`.
    public static let agentRunning = LavaError.Code("agent-running")
    /// The agent took longer than the caller's timeout to answer.
    public static let agentTimeout = LavaError.Code("agent-timeout")
    /// The agent answered `{"ok":false,"error":...}`.
    public static let agentError = LavaError.Code("agent-error")
    /// A request or answer on the control socket that does not follow docs/status-json.md.
    public static let controlProtocol = LavaError.Code("control-protocol")
}
