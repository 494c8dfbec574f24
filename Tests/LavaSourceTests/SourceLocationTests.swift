#if canImport(Glibc)
import Glibc
#endif
import LavaSource
import LavaSystem
import LavaTestSupport
import Testing

/// SPEC §1: the SOURCE argument, and a code area on local disk.
@Suite struct SourceLocationTests {
    typealias Location = LavaSource.SourceLocation

    @Test(arguments: [
        ("file:///abs/path", Location.file(path: "/abs/path")),
        ("file:///abs/path/", Location.file(path: "/abs/path")),
        ("file:///abs/path///", Location.file(path: "/abs/path")),
        ("file:///", Location.file(path: "/")),
        ("file:///srv/lava code/area", Location.file(path: "/srv/lava code/area")),
        ("s3://bucket/prefix", Location.s3(bucket: "bucket", prefix: "prefix")),
        ("s3://bucket/prefix/", Location.s3(bucket: "bucket", prefix: "prefix")),
        ("s3://bucket/a/b/c", Location.s3(bucket: "bucket", prefix: "a/b/c")),
        ("s3://bucket", Location.s3(bucket: "bucket", prefix: "")),
        ("s3://bucket/", Location.s3(bucket: "bucket", prefix: "")),
        ("s3://my-lava.code-2024/dev", Location.s3(bucket: "my-lava.code-2024", prefix: "dev")),
        ("s3://abc", Location.s3(bucket: "abc", prefix: "")),
    ])
    func parses(_ text: String, _ expected: Location) throws {
        let location = try Location(parsing: text)
        #expect(location == expected)
        // The description is a canonical SOURCE that parses back to the same place.
        #expect(try Location(parsing: location.description) == location)
    }

    @Test func descriptions() throws {
        #expect(try Location(parsing: "s3://bucket/prefix/").description == "s3://bucket/prefix")
        #expect(try Location(parsing: "s3://bucket/").description == "s3://bucket")
        #expect(try Location(parsing: "file:///abs/path/").description == "file:///abs/path")
    }

    @Test(arguments: [
        "s4://x", "s3://", "s3:///prefix", "file://relative", "file://", "file://./x", "http://x", "https://bucket.s3.amazonaws.com/x",
        "bucket/prefix", "/abs/path", "", "s3:/bucket/prefix", "s3:bucket",
        "s3://Bucket/prefix", "s3://my_bucket/x", "s3://ab", "s3://-bucket", "s3://bucket-", String("s3://" + String(repeating: "b", count: 64)),
        "file:///a/../etc", "file:///..", " s3://bucket",
    ])
    func malformedSourcesAreInvalidSourceErrorsNamingTheSource(_ text: String) {
        let error = #expect(throws: LavaError.self) { try Location(parsing: text) }
        #expect(error?.code == .invalidSource)
        #expect(error?.message.hasPrefix("\(text): ") == true, "\(String(describing: error))")
    }

    @Test func hintsSayWhatIsExpected() {
        let error = #expect(throws: LavaError.self) { try Location(parsing: "bucket/prefix") }
        #expect(error?.message.contains("s3://") == true)
        #expect(error?.message.contains("file:///") == true)
        let relative = #expect(throws: LavaError.self) { try Location(parsing: "file://relative") }
        #expect(relative?.message.contains("absolute") == true, "\(String(describing: relative))")
    }

    // MARK: Local code area

    static func tree() -> TemporaryDirectory {
        let directory = TemporaryDirectory("codearea")
        directory.write("code/_boot_/10-first.sh", "#!/bin/sh\necho first\n", mode: 0o755)
        directory.write("code/_boot_/90-last.sh", "#!/bin/sh\n", mode: 0o755)
        directory.write("code/_boot_/README.md", "docs\n")
        directory.write("code/_boot_/B.txt", "b")
        directory.write("code/_boot_/sub/deeper.sh", "#!/bin/sh\n", mode: 0o755)
        directory.write("code/_dist_/pkg/amzn2023/lava-8.2.0.tar.bz2", "bundle-bytes")
        directory.write("code/_dist_/pkg/ubuntu24/lava-9.0.0.tar.bz2", "other")
        directory.write("code/_dist_/pkg/notes.txt", "n")
        symlink("README.md", directory.sub("code/_boot_/zz-link.md"))
        symlink("sub", directory.sub("code/_boot_/zz-dirlink"))
        symlink("missing", directory.sub("code/_boot_/zz-dangling"))
        return directory
    }

    @Test func listHoldsRegularFilesDirectlyUnderInByteOrder() throws {
        let directory = SourceLocationTests.tree()
        let area = LocalCodeArea(root: directory.sub("code"))
        let objects = try area.list("_boot_")
        #expect(objects.map(\.key) == ["_boot_/10-first.sh", "_boot_/90-last.sh", "_boot_/B.txt", "_boot_/README.md", "_boot_/zz-link.md"])
        #expect(objects.map(\.name) == ["10-first.sh", "90-last.sh", "B.txt", "README.md", "zz-link.md"])
        #expect(objects.first?.size == Int64("#!/bin/sh\necho first\n".utf8.count))
        #expect(objects.last?.size == 5)
        #expect(objects.allSatisfy { $0.modified > 1_000_000_000 && $0.etag != nil })
        #expect(try area.list("_nope_").isEmpty)
        #expect(try area.list("_dist_/pkg").map(\.key) == ["_dist_/pkg/notes.txt"])
    }

    @Test func listDirectoriesHoldsOnlyDirectories() throws {
        let directory = SourceLocationTests.tree()
        let area = LocalCodeArea(root: directory.sub("code"))
        #expect(try area.listDirectories("_dist_/pkg") == ["amzn2023", "ubuntu24"])
        #expect(try area.listDirectories("") == ["_boot_", "_dist_"])
        #expect(try area.listDirectories("_nope_").isEmpty)
    }

    @Test func headFindsObjectsOnly() throws {
        let directory = SourceLocationTests.tree()
        let area = LocalCodeArea(root: directory.sub("code"))
        let object = try #require(try area.head("_dist_/pkg/amzn2023/lava-8.2.0.tar.bz2"))
        #expect(object.key == "_dist_/pkg/amzn2023/lava-8.2.0.tar.bz2")
        #expect(object.size == 12)
        #expect(try area.head("_dist_/pkg/amzn2023/lava-9.9.9.tar.bz2") == nil)
        #expect(try area.head("_dist_/pkg/amzn2023") == nil)
        #expect(try area.head("_boot_/zz-dangling") == nil)
        #expect(try area.head("_boot_/README.md/x") == nil)
    }

    @Test func openReadsTheBytes() throws {
        let directory = SourceLocationTests.tree()
        let area = LocalCodeArea(root: directory.sub("code"))
        let stream = try area.open("_dist_/pkg/amzn2023/lava-8.2.0.tar.bz2")
        var bytes = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 5)
        while true {
            let n = try buffer.withUnsafeMutableBytes { raw in try stream.read(into: raw) }
            if n == 0 { break }
            bytes += buffer[0..<n]
        }
        #expect(String(decoding: bytes, as: UTF8.self) == "bundle-bytes")
        #expect(throws: LavaError.self) { try area.open("_dist_/pkg/amzn2023/missing.tar.bz2") }
    }

    @Test func namesAndPaths() throws {
        let directory = SourceLocationTests.tree()
        let root = directory.sub("code")
        let area = LocalCodeArea(root: root)
        #expect(area.location == .file(path: root))
        #expect(area.localPath("_boot_/10-first.sh") == root + "/_boot_/10-first.sh")
        #expect(area.displayName("_boot_/10-first.sh") == "file://\(root)/_boot_/10-first.sh")
    }

    @Test func openingAnArea() throws {
        let directory = SourceLocationTests.tree()
        let location = try Location(parsing: "file://\(directory.sub("code"))/")
        let area = try CodeAreas.open(location)
        #expect(area.location == location)
        #expect(try area.list("_boot_").count == 5)
        let missing = #expect(throws: LavaError.self) { try CodeAreas.open(.file(path: directory.sub("nope"))) }
        #expect(missing?.code == .invalidSource)
        #expect(missing?.message.contains(directory.sub("nope")) == true, "\(String(describing: missing))")
        let notDirectory = #expect(throws: LavaError.self) { try CodeAreas.open(.file(path: directory.sub("code/_boot_/B.txt"))) }
        #expect(notDirectory?.code == .invalidSource)
    }
}
