import LavaHTTP
import LavaSigV4
import LavaSystem

/// The Auto Scaling calls a terminating or launching instance makes (Query protocol: a
/// form-encoded `Action`/`Version` POST, XML answers, `<ErrorResponse>` errors).
public struct AutoScalingClient: Sendable {
    public let client: AWSServiceClient
    static let version = "2011-01-01"

    public init(client: AWSServiceClient) {
        self.client = client
    }

    public struct Instance: Sendable, Equatable {
        public var group: String
        public var lifecycleState: String
    }

    public struct LifecycleHook: Sendable, Equatable {
        public var name: String
        public var transition: String
        public var heartbeatTimeout: Int?
        public var globalTimeout: Int?
    }

    /// The same client, whose calls end once `cancel` is readable (error code `stopped`).
    public func cancelling(on cancel: Int32) -> AutoScalingClient {
        AutoScalingClient(client: client.cancelling(on: cancel))
    }

    /// The instance's group and lifecycle state; nil when it is in no group.
    public func describeInstance(_ instanceID: String) throws(LavaError) -> Instance? {
        let result = try call("DescribeAutoScalingInstances", [("InstanceIds.member.1", instanceID)])
        guard let member = result.child("AutoScalingInstances")?.all("member").first(where: { $0["InstanceId"] == instanceID }),
              let group = member["AutoScalingGroupName"] else { return nil }
        return Instance(group: group, lifecycleState: member["LifecycleState"] ?? "")
    }

    public func describeLifecycleHooks(group: String) throws(LavaError) -> [LifecycleHook] {
        let result = try call("DescribeLifecycleHooks", [("AutoScalingGroupName", group)])
        return (result.child("LifecycleHooks")?.all("member") ?? []).compactMap { member in
            guard let name = member["LifecycleHookName"] else { return nil }
            return LifecycleHook(name: name, transition: member["LifecycleTransition"] ?? "",
                                 heartbeatTimeout: member["HeartbeatTimeout"].flatMap { Int($0) },
                                 globalTimeout: member["GlobalTimeout"].flatMap { Int($0) })
        }
    }

    /// Names the action by instance id, and by token only when one was given.
    public func recordHeartbeat(group: String, hook: String, instanceID: String, token: String?) throws(LavaError) {
        _ = try call("RecordLifecycleActionHeartbeat", actionParameters(group, hook, instanceID, token))
    }

    public func completeLifecycleAction(group: String, hook: String, instanceID: String, token: String?, result: String) throws(LavaError) {
        _ = try call("CompleteLifecycleAction", actionParameters(group, hook, instanceID, token) + [("LifecycleActionResult", result)])
    }

    private func actionParameters(_ group: String, _ hook: String, _ instanceID: String, _ token: String?) -> [(String, String)] {
        var parameters = [("AutoScalingGroupName", group), ("LifecycleHookName", hook), ("InstanceId", instanceID)]
        if let token { parameters.append(("LifecycleActionToken", token)) }
        return parameters
    }

    /// One call; returns the `<ActionResult>` element.
    private func call(_ action: String, _ parameters: [(String, String)]) throws(LavaError) -> XMLElement {
        let form = ([("Action", action), ("Version", AutoScalingClient.version)] + parameters)
            .map { "\(SigV4Signer.percentEncode($0.0))=\(SigV4Signer.percentEncode($0.1))" }.joined(separator: "&")
        let response = try client.send(AWSRequest(
            operation: action, method: "POST", endpoint: client.endpoint.url, path: "/",
            headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")], body: Array(form.utf8)))
        guard let document = try? XMLDocument.parse(response.body) else {
            throw LavaError(.aws, "autoscaling \(action): the response is not XML")
        }
        return document.child("\(action)Result") ?? XMLElement(name: "\(action)Result")
    }
}
