import LavaSystem
import LavaTestSupport
import Testing

/// The coverage-guided differential fuzz target (scripts/fuzz-bzip2.sh) for a bounded time: any
/// crash, hang, sanitizer report or disagreement with libbz2 fails the run.
@Suite struct FuzzTests {
    static let repository = Paths.parent(of: Paths.parent(of: Paths.parent(of: #filePath)))

    @Test func theFuzzTargetFindsNothingInABoundedRun() {
        let result = Command.run("/bin/bash", [Paths.join(FuzzTests.repository, "scripts/fuzz-bzip2.sh"), "45"],
                                 environment: ["HOME": ProcessEnvironment.current()["HOME"] ?? "/root"])
        let output = result.stdout + result.stderr
        #expect(result.exitCode == 0, "\(output.suffix(4000))")
        let executed = output.split(separator: "\n").first { $0.hasPrefix("stat::number_of_executed_units:") }
            .flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
        #expect(executed > 1000, "libFuzzer ran \(executed) inputs")
    }
}
