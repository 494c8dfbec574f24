import CShim
#if canImport(Glibc)
import Glibc
#endif

public enum CPUs {
    /// The CPUs this process may run on (its affinity mask: taskset and cpusets count, which
    /// the online count ignores); the online count where the mask cannot be read.
    public static var available: Int {
        let count = Int(lava_affinity_cpus())
        return count > 0 ? count : max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1)
    }
}
