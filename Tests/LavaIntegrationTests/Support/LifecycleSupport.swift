import Foundation
import LavaTestSupport

/// What the lifecycle suites ask of the fake IMDS / Auto Scaling peer.
extension FakeIMDS {
    static let instanceID = "i-0123456789abcdef0"

    /// An agent's environment pointed at this peer, with fast retries and IMDS polls.
    func agentEnvironment(home: String) -> [String: String] {
        ["AWS_EC2_METADATA_SERVICE_ENDPOINT": endpoint, "AWS_ENDPOINT_URL_AUTO_SCALING": endpoint,
         "LAVA_BOOT_RETRY_BASE_SECONDS": "0.01", "LAVA_BOOT_LIFECYCLE_POLL_SECONDS": "0.2", "HOME": home]
    }

    /// Serves `value` at an IMDS path (nil: 404).
    func setPath(_ path: String, _ value: String?) throws {
        let json = value.map { "\"\($0.replacingOccurrences(of: "\"", with: "\\\""))\"" } ?? "null"
        try control(json: #"{"paths": {"\#(path)": \#(json)}}"#)
    }

    func targetState(_ value: String?) throws {
        try setPath("/latest/meta-data/autoscaling/target-lifecycle-state", value)
    }

    /// Every Auto Scaling call of `action` the peer saw, refused ones too.
    func calls(_ action: String) throws -> [[String: Any]] {
        ((try counters()["autoscaling_calls"] as? [[String: Any]]) ?? []).filter { $0["action"] as? String == action }
    }

    func completions() throws -> [[String: Any]] { (try counters()["completions"] as? [[String: Any]]) ?? [] }
}
