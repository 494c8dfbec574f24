import Foundation
import LavaSystem
import LavaTestSupport
import Testing

/// docs/architecture.md: modules stand on floors and import only down (or sideways). Read from
/// Package.swift and from every `import` in Sources/, so a dependency that points up fails here.
@Suite struct ArchitectureTests {
    static let floors: [String: Int] = [
        "CShim": 0, "CCurlShim": 0, "CCurl": 0, "CCrypto": 0, "CArchive": 0, "CBzip2": 0, "CLibFuzzer": 0,
        "LavaSystem": 1, "LavaJSON": 1, "LavaBzip2Block": 1,
        "LavaLog": 2, "LavaCrypto": 2, "LavaSigV4": 2, "LavaHTTP": 2, "LavaBzip2": 2,
        "LavaAWS": 3,
        "LavaRealm": 4, "LavaSource": 4, "LavaSelection": 4,
        "LavaPlan": 5,
        "LavaInstall": 6, "LavaSupervisor": 6,
        "LavaControl": 7,
        "LavaBoot": 8,
        "lava-boot": 9, "lava-bzip2-decode": 9, "lava-bzip2-fuzz": 9,
        "LavaTestSupport": 2,
    ]

    static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// (target, its declared dependencies on targets of this package) from Package.swift.
    static func declaredTargets() throws -> [(String, [String])] {
        let text = try #require(try Files.readText(packageRoot + "/Package.swift"))
        var result = [(String, [String])]()
        let pattern = try NSRegularExpression(pattern: #"\.(?:target|executableTarget|systemLibrary)\(name: "([^"]+)"(?:, dependencies: \[([^\]]*)\])?"#)
        for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            let name = String(text[Range(match.range(at: 1), in: text)!])
            var dependencies = [String]()
            if let range = Range(match.range(at: 2), in: text) {
                let list = String(text[range])
                // Quoted names that are targets of this package (products of other packages are not floored).
                let quoted = try NSRegularExpression(pattern: #""([^"]+)""#)
                for item in quoted.matches(in: list, range: NSRange(list.startIndex..., in: list)) {
                    let dependency = String(list[Range(item.range(at: 1), in: list)!])
                    if floors[dependency] != nil { dependencies.append(dependency) }
                }
            }
            result.append((name, dependencies))
        }
        return result
    }

    @Test func everyTargetHasAFloor() throws {
        let targets = try ArchitectureTests.declaredTargets()
        #expect(targets.count >= 20)
        let unplaced = targets.map(\.0).filter { ArchitectureTests.floors[$0] == nil }
        #expect(unplaced.isEmpty, "give these a floor in docs/architecture.md and here: \(unplaced)")
    }

    @Test func declaredDependenciesPointDown() throws {
        for (target, dependencies) in try ArchitectureTests.declaredTargets() {
            guard let floor = ArchitectureTests.floors[target] else { continue }
            for dependency in dependencies {
                let other = ArchitectureTests.floors[dependency]!
                #expect(other <= floor, "\(target) (floor \(floor)) depends on \(dependency) (floor \(other)), which is above it")
            }
        }
    }

    @Test func importsInSourcesPointDown() throws {
        var checked = 0
        for (target, _) in try ArchitectureTests.declaredTargets() {
            guard let floor = ArchitectureTests.floors[target] else { continue }
            let directory = ["lava-bzip2-decode": "bench/bzip2-decode", "LavaTestSupport": "Tests/LavaTestSupport"][target] ?? "Sources/\(target)"
            let enumerator = FileManager.default.enumerator(atPath: ArchitectureTests.packageRoot + "/" + directory)
            while let file = enumerator?.nextObject() as? String {
                guard file.hasSuffix(".swift"),
                      let text = try Files.readText(ArchitectureTests.packageRoot + "/\(directory)/\(file)") else { continue }
                for line in text.split(separator: "\n") where line.hasPrefix("import ") || line.hasPrefix("@testable import ") {
                    let module = String(line.split(separator: " ").last ?? "")
                    guard let other = ArchitectureTests.floors[module] else { continue }
                    checked += 1
                    #expect(other <= floor, "\(directory)/\(file): \(target) (floor \(floor)) imports \(module) (floor \(other))")
                }
            }
        }
        #expect(checked > 50, "the imports were read")
    }
}
