import Foundation
import LavaTestSupport
import Testing

/// Every program the tests and benches call. A machine without one fails here, naming it,
/// rather than with exit 127 deep inside another test.
@Suite struct ToolsTests {
    static let tools = ["bzip2", "lbzip2", "tar", "curl", "python3", "moto_server", "aws", "useradd", "groupadd", "userdel", "groupdel",
                        "gcc", "ldconfig", "objdump", "readelf", "strip", "rpmbuild", "rpm", "packer", "shellcheck"]

    @Test func everyToolTheSuiteCallsIsInstalled() {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        let missing = ToolsTests.tools.filter { tool in !directories.contains { access("\($0)/\(tool)", X_OK) == 0 } }
        #expect(missing.isEmpty, "not installed: \(missing.joined(separator: ", ")); scripts/install-deps.sh installs them")
    }
}
