import CShim
#if canImport(Glibc)
import Glibc
#endif

/// The agent runs for the life of the instance, but most of the code it touched getting there
/// (argument parsing, the AWS and install paths, the libraries' own start-up) never runs again,
/// and the kernel's fault-around mapped up to 64 KiB around every page it touched. Once
/// start-up is over, the read-only, never-written file mappings (the executable's and every
/// shared library's) are dropped from the resident set (the page cache keeps them); what runs
/// afterwards faults back in, with its fault-around neighbours.
public enum ResidentPages {

    /// Applies to file mappings that are `r-xp` or `r--p` and hold no page the process wrote
    /// (PT_GNU_RELRO is `r--p` after the dynamic linker relocated it: dropping those pages would
    /// undo the relocations). Returns the bytes released.
    @discardableResult
    public static func releaseStartupPages() -> Int {
        guard let smaps = try? Files.readText("/proc/self/smaps") else { return 0 }
        var released = 0
        var candidate: (start: UInt, end: UInt, resident: Int)?
        var written = false
        func finish() {
            guard let mapping = candidate, !written else { return }
            let pointer = UnsafeMutableRawPointer(bitPattern: mapping.start)
            let length = Int(mapping.end - mapping.start)
            if madvise(pointer, length, Int32(MADV_DONTNEED)) == 0 { released += mapping.resident }
        }
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let range = fields.first, range.contains("-"), fields.count >= 5, !range.hasSuffix(":") {
                finish()
                candidate = nil
                written = false
                let bounds = range.split(separator: "-")
                // A path: a file. Not `[vdso]`, `[stack]` or an anonymous mapping.
                guard fields.count >= 6, fields[5].hasPrefix("/"), fields[1] == "r-xp" || fields[1] == "r--p",
                      bounds.count == 2, let start = UInt(bounds[0], radix: 16), let end = UInt(bounds[1], radix: 16) else { continue }
                candidate = (start, end, 0)
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

    /// Returns the free memory of every malloc arena to the kernel: what a burst of work
    /// allocated and freed stays resident otherwise, scattered between live allocations.
    public static func releaseFreeHeapPages() {
        _ = lava_malloc_trim()
    }
}
