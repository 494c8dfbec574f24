import Synchronization

/// A value set once some work is done and read from other threads (the supervisor once the
/// workers started, for status requests that may come before).
public final class SharedValue<Value: Sendable>: Sendable {
    private let box = Mutex<Value?>(nil)
    public init() {}
    public func set(_ value: Value) { box.withLock { $0 = value } }
    public var value: Value? { box.withLock { $0 } }
}
