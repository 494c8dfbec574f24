import LavaAWS
import LavaHTTP
import LavaJSON
import LavaSystem

/// The realms table: one eventually consistent GetItem per boot; conditional UpdateItems for pins.
public struct RealmsTable: Sendable {
    public let client: AWSServiceClient
    public let table: String

    public static let defaultName = "lava.realms"

    public init(client: AWSServiceClient, table: String) {
        self.client = client
        self.table = table
    }

    /// The realm's item; `consistent` for an operator's read-modify-write, eventually consistent
    /// (half the capacity) for boots.
    public func item(realm: String, consistent: Bool = false) throws(LavaError) -> RealmItem {
        let response = try call("GetItem", [
            JSONMember("TableName", .string(table)),
            JSONMember("Key", key(realm)),
            JSONMember("ConsistentRead", .bool(consistent)),
        ])
        guard let json = try? JSONValue(parsing: response.body) else {
            throw LavaError(.aws, "dynamodb GetItem \(table): the response is not JSON")
        }
        guard let item = json["Item"] else {
            throw LavaError(.noSuchRealm, "\(realm): no such realm")
        }
        do {
            return try AttributeValue.item(typedJSON: item)
        } catch {
            throw LavaError(.invalidConfig, "realms table \(table), realm \(realm): \(error)")
        }
    }

    /// One UpdateItem. Unused names or values are an error to DynamoDB, so callers pass only
    /// what their expressions mention.
    func update(realm: String, expression: String, condition: String,
                names: [String: String], values: [String: AttributeValue]) throws(LavaError) {
        var members = [
            JSONMember("TableName", .string(table)),
            JSONMember("Key", key(realm)),
            JSONMember("UpdateExpression", .string(expression)),
            JSONMember("ConditionExpression", .string(condition)),
            JSONMember("ExpressionAttributeNames", .object(names.sorted { $0.key < $1.key }.map { JSONMember($0.key, .string($0.value)) })),
        ]
        if !values.isEmpty {
            members.append(JSONMember("ExpressionAttributeValues",
                                      .object(values.sorted { $0.key < $1.key }.map { JSONMember($0.key, $0.value.typedJSON) })))
        }
        _ = try call("UpdateItem", members)
    }

    private func key(_ realm: String) -> JSONValue {
        .object([JSONMember("realm", .object([JSONMember("S", .string(realm))]))])
    }

    private func call(_ operation: String, _ members: [JSONMember]) throws(LavaError) -> LavaHTTP.HTTPResponse {
        do {
            return try client.send(AWSRequest(
                operation: operation, method: "POST", endpoint: client.endpoint.url, path: "/",
                headers: [("Content-Type", "application/x-amz-json-1.0"), ("X-Amz-Target", "DynamoDB_20120810.\(operation)")],
                body: Array(JSONValue.object(members).serialized().utf8)))
        } catch {
            if error.serviceCode == "ResourceNotFoundException" {
                throw LavaError(.aws, "realms table \(table) not found in \(client.context.region); pass --realms-table or --region")
            }
            throw error
        }
    }
}
