import LavaSystem

/// What a `pin` or `unpin` did to `x-workers.<worker>.version`.
public struct PinChange: Sendable, Equatable {
    public var worker: String
    /// The value before, nil when nothing was pinned.
    public var old: String?
    /// The value after, nil when nothing is pinned.
    public var new: String?

    public var changed: Bool { old != new }
}

/// Where `x-workers.<worker>.version` stands in an item, which decides the one UpdateItem that
/// sets it: each shape has a condition that holds only while the item still has that shape, so
/// a concurrent writer's maps and keys are never overwritten, only re-read.
enum PinSlot: Equatable {
    case noWorkersMap
    case noWorkerMap
    case unpinned
    case pinned(AttributeValue)

    init(item: RealmItem, realm: String, worker: String) throws(LavaError) {
        guard let workers = item["x-workers"] else {
            self = .noWorkersMap
            return
        }
        guard case .map(let map) = workers else {
            throw LavaError(.invalidConfig, "\(realm): x-workers: expected a map (M), got \(workers.typeName); fix the item by hand")
        }
        guard let own = map[worker] else {
            self = .noWorkerMap
            return
        }
        guard case .map(let keys) = own else {
            throw LavaError(.invalidConfig, "\(realm): worker \(worker): expected a map (M), got \(own.typeName); fix the item by hand")
        }
        self = keys["version"].map { .pinned($0) } ?? .unpinned
    }

    var value: AttributeValue? {
        if case .pinned(let value) = self { return value }
        return nil
    }

    /// The version as `pin` and `unpin` print it.
    var text: String? {
        switch value {
        case .string(let text)?: return text
        case let other?: return other.displayText
        case nil: return nil
        }
    }
}

extension RealmsTable {
    /// Sets `x-workers.<worker>.version`, creating the maps that are missing. With `expect`, only
    /// while the current value is `expect`; a mismatch is an error naming the value found.
    public func pin(realm: String, worker: String, version: String, expect: String?) throws(LavaError) -> PinChange {
        let names = ["#realm": "realm", "#xw": "x-workers", "#w": worker, "#v": "version"]
        // The slot our last write was conditioned on: when a write whose answer was lost is
        // retried, its condition fails against our own value, and this is what it replaced.
        var written: PinSlot?
        for _ in 0..<RealmsTable.conflictRetries {
            let slot = try PinSlot(item: item(realm: realm, consistent: true), realm: realm, worker: worker)
            if slot.value == .string(version) {
                return PinChange(worker: worker, old: written.map(\.text) ?? version, new: version)
            }
            if let expect, slot.text != expect {
                throw LavaError(.invalidConfig, "\(realm): worker \(worker): version is \(slot.text.map { "\"\($0)\"" } ?? "not pinned"), not the expected \"\(expect)\"; nothing changed")
            }
            let value = AttributeValue.string(version)
            do {
                switch slot {
                case .noWorkersMap:
                    try update(realm: realm, expression: "SET #xw = :xw",
                               condition: "attribute_exists(#realm) AND attribute_not_exists(#xw)",
                               names: names.filter { $0.key != "#w" && $0.key != "#v" },
                               values: [":xw": .map([worker: .map(["version": value])])])
                case .noWorkerMap:
                    try update(realm: realm, expression: "SET #xw.#w = :w",
                               condition: "attribute_exists(#xw) AND attribute_not_exists(#xw.#w)",
                               names: names.filter { $0.key != "#realm" && $0.key != "#v" },
                               values: [":w": .map(["version": value])])
                case .unpinned:
                    try update(realm: realm, expression: "SET #xw.#w.#v = :v",
                               condition: "attribute_exists(#xw.#w) AND attribute_not_exists(#xw.#w.#v)",
                               names: names.filter { $0.key != "#realm" }, values: [":v": value])
                case .pinned(let old):
                    try update(realm: realm, expression: "SET #xw.#w.#v = :v", condition: "#xw.#w.#v = :old",
                               names: names.filter { $0.key != "#realm" }, values: [":v": value, ":old": old])
                }
                return PinChange(worker: worker, old: slot.text, new: version)
            } catch where error.serviceCode == RealmsTable.conditionFailed {
                written = slot
            }
        }
        throw RealmsTable.tooManyConflicts(realm: realm, worker: worker)
    }

    /// Removes `x-workers.<worker>.version` and nothing else; nothing pinned is not an error.
    public func unpin(realm: String, worker: String) throws(LavaError) -> PinChange {
        var written: PinSlot?
        for _ in 0..<RealmsTable.conflictRetries {
            let slot = try PinSlot(item: item(realm: realm, consistent: true), realm: realm, worker: worker)
            guard let old = slot.value else {
                return PinChange(worker: worker, old: written?.text, new: nil)
            }
            do {
                try update(realm: realm, expression: "REMOVE #xw.#w.#v", condition: "#xw.#w.#v = :old",
                           names: ["#xw": "x-workers", "#w": worker, "#v": "version"], values: [":old": old])
                return PinChange(worker: worker, old: slot.text, new: nil)
            } catch where error.serviceCode == RealmsTable.conditionFailed {
                written = slot
            }
        }
        throw RealmsTable.tooManyConflicts(realm: realm, worker: worker)
    }

    static let conditionFailed = "ConditionalCheckFailedException"
    /// Each conflict means another writer changed the item between our read and our write.
    static let conflictRetries = 8

    static func tooManyConflicts(realm: String, worker: String) -> LavaError {
        LavaError(.aws, "\(realm): worker \(worker): the item kept changing under \(conflictRetries) attempts; run again")
    }
}
