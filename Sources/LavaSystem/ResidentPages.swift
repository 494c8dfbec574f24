#if canImport(Glibc)
import Glibc
#endif

/// The agent runs for the life of the instance, but most of the code it touched getting there
/// (argument parsing, the AWS and install paths) never runs again, and the kernel's fault-around
/// mapped 64 KiB around every page it touched. Once start-up is over, the executable's
/// read-only, never-written mappings are dropped from the resident set and their pages from the
/// page cache: fault-around maps only neighbours that are cached, and MADV_RANDOM stops
/// readahead, so what supervision runs comes back a page at a time.
public enum ResidentPages {

    /// Applies to mappings of this executable that are `r-xp` or `r--p` and hold no page the
    /// process wrote (PT_GNU_RELRO is `r--p` after the dynamic linker relocated it: dropping those
    /// pages would undo the relocations). Returns the bytes released.
    @discardableResult
    public static func releaseExecutableStartupPages() -> Int {
        guard let exe = Directory.readLink(AT_FDCWD, "/proc/self/exe"),
              let smaps = try? Files.readText("/proc/self/smaps") else { return 0 }
        let executable = open("/proc/self/exe", O_RDONLY | O_CLOEXEC)
        defer { if executable >= 0 { close(executable) } }
        var released = 0
        var candidate: (start: UInt, end: UInt, offset: UInt, resident: Int)?
        var written = false
        func finish() {
            guard let mapping = candidate, !written else { return }
            let pointer = UnsafeMutableRawPointer(bitPattern: mapping.start)
            let length = Int(mapping.end - mapping.start)
            madvise(pointer, length, Int32(MADV_RANDOM))
            guard madvise(pointer, length, Int32(MADV_DONTNEED)) == 0 else { return }
            released += mapping.resident
            if executable >= 0 { posix_fadvise(executable, off_t(mapping.offset), off_t(length), Int32(POSIX_FADV_DONTNEED)) }
        }
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let range = fields.first, range.contains("-"), fields.count >= 5, !range.hasSuffix(":") {
                finish()
                candidate = nil
                written = false
                let bounds = range.split(separator: "-")
                guard fields.count >= 6, String(fields[5]) == exe, fields[1] == "r-xp" || fields[1] == "r--p",
                      bounds.count == 2, let start = UInt(bounds[0], radix: 16), let end = UInt(bounds[1], radix: 16),
                      let offset = UInt(fields[2], radix: 16) else { continue }
                candidate = (start, end, offset, 0)
            } else if candidate != nil, fields.count >= 2 {
                let kib = Int(fields[1]) ?? 0
                if fields[0] == "Rss:" { candidate!.resident = kib * 1024 }
                // Pages the process wrote (relocations) are its own copies, counted as Anonymous.
                if fields[0] == "Anonymous:" && kib > 0 { written = true }
            }
        }
        finish()
        return released
    }
}
