#if canImport(Glibc)
import Glibc
#endif

/// pthreads, as Foundation's Thread is not in FoundationEssentials.
public enum Threads {
    /// Starts a thread running `body`: detached, or `joinable` (then the caller must `join` it).
    /// A name (15 bytes at most) shows in `/proc/<pid>/task/*/comm`.
    @discardableResult
    public static func start(name: String? = nil, joinable: Bool = false,
                             _ body: @escaping @Sendable () -> Void) throws(LavaError) -> pthread_t {
        let box = Unmanaged.passRetained(ThreadBody(name, body))
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { raw in
            Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().runNamed()
            return nil
        }, box.toOpaque())
        if result != 0 {
            box.release()
            throw .errno("pthread_create", nil, result)
        }
        if !joinable { pthread_detach(handle) }
        return handle
    }

    public static func join(_ thread: pthread_t) {
        pthread_join(thread, nil)
    }
}

/// What a new thread runs, handed over through pthread_create's argument.
private final class ThreadBody {
    let name: String?
    let run: @Sendable () -> Void

    init(_ name: String?, _ run: @escaping @Sendable () -> Void) {
        self.name = name
        self.run = run
    }

    func runNamed() {
        if let name {
            // pthread_setname_np and prctl are out of Swift's reach (_GNU_SOURCE, variadic).
            let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
            if fd >= 0 {
                var short = String(name.prefix(15))
                short.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
                close(fd)
            }
        }
        run()
    }
}
