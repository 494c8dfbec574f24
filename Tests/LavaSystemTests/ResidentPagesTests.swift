import LavaSystem
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ResidentPagesTests {
    /// Resident KiB of this executable's mappings with the given permissions.
    static func residentKiB(permissions: String) -> Int {
        guard let exe = Directory.readLink(AT_FDCWD, "/proc/self/exe"), let smaps = try? Files.readText("/proc/self/smaps") else { return -1 }
        var total = 0
        var inside = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let first = fields.first, first.contains("-"), !first.hasSuffix(":") {
                inside = fields.count >= 6 && String(fields[5]) == exe && fields[1] == permissions
            } else if inside, fields.first == "Rss:", fields.count >= 2 {
                total += Int(fields[1]) ?? 0
            }
        }
        return total
    }

    /// The executable's code leaves the resident set and runs on (it faults back in); its
    /// relocated, written pages are never dropped.
    @Test func startupPagesAreReleasedAndTheProcessRunsOn() {
        let codeBefore = ResidentPagesTests.residentKiB(permissions: "r-xp")
        let writableBefore = ResidentPagesTests.residentKiB(permissions: "rw-p")
        let released = ResidentPages.releaseExecutableStartupPages()
        let codeAfter = ResidentPagesTests.residentKiB(permissions: "r-xp")
        #expect(codeBefore > 0 && released > 0, "released \(released) bytes of \(codeBefore) KiB")
        #expect(codeAfter < codeBefore, "r-xp resident \(codeBefore) -> \(codeAfter) KiB")
        #expect(ResidentPagesTests.residentKiB(permissions: "rw-p") >= writableBefore / 2, "written pages stay")
        #expect((1...1000).reduce(0, +) == 500500)
    }
}
