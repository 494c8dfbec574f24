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

    /// Freed heap memory goes back to the kernel: the pages of freed blocks between live ones
    /// stop being resident (mincore on those very pages: other tests' allocations do not count).
    @Test func freeHeapPagesAreReturned() {
        // 64 KiB blocks live in the heap (below the mmap threshold); every other one is freed,
        // so the live ones between keep the holes from merging into what free() trims itself.
        let all = (0..<512).map { _ in
            let block = UnsafeMutableRawPointer.allocate(byteCount: 64 << 10, alignment: 16)
            block.initializeMemory(as: UInt8.self, repeating: 1, count: 64 << 10)
            return block
        }
        let blocks = all.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        let keepers = all.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        for block in blocks { block.deallocate() }
        let before = ResidentPagesTests.residentPages(inside: blocks, length: 64 << 10)
        ResidentPages.releaseFreeHeapPages()
        let after = ResidentPagesTests.residentPages(inside: blocks, length: 64 << 10)
        for keeper in keepers { keeper.deallocate() }
        #expect(before > 256 * 8 && after < before / 4, "resident pages of the freed blocks: \(before) -> \(after)")
    }

    /// Resident whole pages inside each `length`-byte block (still mapped: the heap keeps it).
    static func residentPages(inside blocks: [UnsafeMutableRawPointer], length: Int) -> Int {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var resident = 0
        var vector = [UInt8](repeating: 0, count: length / page + 1)
        for block in blocks {
            let first = (Int(bitPattern: block) + page - 1) / page * page
            let end = (Int(bitPattern: block) + length) / page * page
            guard end > first, mincore(UnsafeMutableRawPointer(bitPattern: first), end - first, &vector) == 0 else { continue }
            resident += vector[0..<((end - first) / page)].filter { $0 & 1 != 0 }.count
        }
        return resident
    }
}
