import LavaAWS
import LavaHTTP
import LavaJSON
import LavaSystem

/// The realms table: one eventually consistent GetItem per boot.
public struct RealmsTable: Sendable {
    public let client: AWSServiceClient
    public let table: String

    public static let defaultName = "lava.realms"

    public init(client: AWSServiceClient, table: String) {
        self.client = client
        self.table = table
    }

    public func item(realm: String) throws(LavaError) -> RealmItem {
        let body = JSONValue.object([
            JSONMember("TableName", .string(table)),
            JSONMember("Key", .object([JSONMember("realm", .object([JSONMember("S", .string(realm))]))])),
            JSONMember("ConsistentRead", .bool(false)),
        ]).serialized()
        let response: LavaHTTP.HTTPResponse
        do {
            response = try client.send(AWSRequest(
                operation: "GetItem", method: "POST", endpoint: client.endpoint.url, path: "/",
                headers: [("Content-Type", "application/x-amz-json-1.0"), ("X-Amz-Target", "DynamoDB_20120810.GetItem")],
                body: Array(body.utf8)))
        } catch {
            if error.serviceCode == "ResourceNotFoundException" {
                throw LavaError(.aws, "realms table \(table) not found in \(client.context.region); pass --realms-table or --region")
            }
            throw error
        }
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
}
