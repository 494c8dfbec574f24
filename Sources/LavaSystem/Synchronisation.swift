import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// The project's synchronisation: `Mutex` (Synchronization) for state shared across threads,
// `SharedValue` for a value set once, `Monitor` when a thread must wait for a change.

/// A value set once some work is done and read from other threads (the supervisor once the
/// workers started, for status requests that may come before).
public final class SharedValue<Value: Sendable>: Sendable {
    private let box = Mutex<Value?>(nil)
    public init() {}
    public func set(_ value: Value) { box.withLock { $0 = value } }
    public var value: Value? { box.withLock { $0 } }
}

/// A value behind a pthread mutex, with a condition to wait for it to change.
public final class Monitor<State>: @unchecked Sendable {  // `state` is only touched with `mutex` held
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var state: State

    public init(_ state: State) {
        self.state = state
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the lock held and wakes every waiter afterwards.
    public func withLock<R, E: Error>(_ body: (inout State) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer {
            pthread_cond_broadcast(condition)
            pthread_mutex_unlock(mutex)
        }
        return try body(&state)
    }

    /// Waits until `predicate` holds or the monotonic `deadline` passes (nil: no deadline).
    /// Returns whether the predicate holds.
    @discardableResult
    public func wait(until deadline: Double?, for predicate: (State) -> Bool) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !predicate(state) {
            guard let deadline else {
                pthread_cond_wait(condition, mutex)
                continue
            }
            if Clock.monotonicSeconds() >= deadline { return false }
            var wake = timespec()
            wake.tv_sec = Int(saturating: deadline.rounded(.down))
            wake.tv_nsec = Int(saturating: (deadline - deadline.rounded(.down)) * 1e9)
            pthread_cond_timedwait(condition, mutex, &wake)
        }
        return true
    }
}
