import LavaSystem
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ResidentPagesTests {
    /// Resident KiB of the mappings with the given permissions of this executable, or of the
    /// file whose name starts with `library`.
    static func residentKiB(permissions: String, library: String? = nil) -> Int {
        guard let exe = Directory.readLink(AT_FDCWD, "/proc/self/exe"), let smaps = try? Files.readText("/proc/self/smaps") else { return -1 }
        var total = 0
        var inside = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let first = fields.first, first.contains("-"), !first.hasSuffix(":") {
                let path = fields.count >= 6 ? String(fields[5]) : ""
                let file = library.map { path.split(separator: "/").last?.hasPrefix($0) == true } ?? (path == exe)
                inside = file && fields[1] == permissions
            } else if inside, fields.first == "Rss:", fields.count >= 2 {
                total += Int(fields[1]) ?? 0
            }
        }
        return total
    }

    /// The executable's and the shared libraries' code leaves the resident set and runs on (it
    /// faults back in); relocated, written pages are never dropped.
    @Test func startupPagesAreReleasedAndTheProcessRunsOn() {
        let codeBefore = ResidentPagesTests.residentKiB(permissions: "r-xp")
        let libcBefore = ResidentPagesTests.residentKiB(permissions: "r-xp", library: "libc.so")
        let writableBefore = ResidentPagesTests.residentKiB(permissions: "rw-p")
        let released = ResidentPages.releaseStartupPages()
        let codeAfter = ResidentPagesTests.residentKiB(permissions: "r-xp")
        let libcAfter = ResidentPagesTests.residentKiB(permissions: "r-xp", library: "libc.so")
        #expect(codeBefore > 0 && released > 0, "released \(released) bytes of \(codeBefore) KiB")
        #expect(codeAfter < codeBefore, "r-xp resident \(codeBefore) -> \(codeAfter) KiB")
        #expect(libcBefore > 0 && libcAfter < libcBefore, "libc r-xp resident \(libcBefore) -> \(libcAfter) KiB")
        #expect(ResidentPagesTests.residentKiB(permissions: "rw-p") >= writableBefore / 2, "written pages stay")
        #expect((1...1000).reduce(0, +) == 500500)
    }

    /// Freed heap memory goes back to the kernel: a large freed block leaves no resident pages.
    @Test func freeHeapPagesAreReturned() {
        // 64 KiB blocks live in the heap (below the mmap threshold), each followed by a live
        // small one, so freeing them leaves 16 MiB of free holes that free() cannot trim.
        var blocks = [UnsafeMutableRawPointer](), keepers = [UnsafeMutableRawPointer]()
        for _ in 0..<256 {
            let block = UnsafeMutableRawPointer.allocate(byteCount: 64 << 10, alignment: 16)
            block.initializeMemory(as: UInt8.self, repeating: 1, count: 64 << 10)
            blocks.append(block)
            keepers.append(UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16))
        }
        for block in blocks { block.deallocate() }
        let before = ResidentPagesTests.anonymousKiB()
        ResidentPages.releaseFreeHeapPages()
        let after = ResidentPagesTests.anonymousKiB()
        for keeper in keepers { keeper.deallocate() }
        #expect(after < before - 8 * 1024, "RssAnon \(before) -> \(after) KiB")
    }

    static func anonymousKiB() -> Int {
        guard let status = try? Files.readText("/proc/self/status") else { return -1 }
        let line = status.split(separator: "\n").first { $0.hasPrefix("RssAnon:") }
        return line.flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) } ?? -1
    }
}
