// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "lava-boot",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "lava-boot", targets: ["lava-boot"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // C libraries, found with pkg-config (Debian ships no .pc for libbz2, the tests' bzip2
        // reference: linked by name).
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"]), .yum(["libcurl-devel"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"]), .yum(["openssl-devel"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive",
                       providers: [.apt(["libarchive-dev"]), .yum(["libarchive-devel"])]),
        .systemLibrary(name: "CBzip2",
                       providers: [.apt(["libbz2-dev"]), .yum(["bzip2-devel"])]),
        // What Swift cannot call: the child side of fork/exec and a few syscalls glibc hides.
        .target(name: "CShim"),
        // libcurl's variadic calls, typed; only the HTTP layer links it.
        .target(name: "CCurlShim", dependencies: ["CCurl"]),

        .target(name: "LavaSystem", dependencies: ["CShim", .product(name: "Logging", package: "swift-log")]),
        .target(name: "LavaJSON"),
        .target(name: "LavaLog", dependencies: [
            "CShim", "LavaSystem", "LavaJSON", .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "LavaCrypto", dependencies: ["CCrypto"]),
        .target(name: "LavaSigV4", dependencies: ["LavaCrypto", "LavaSystem"]),
        .target(name: "LavaHTTP", dependencies: ["CCurl", "CCurlShim", "LavaSystem"]),
        .target(name: "LavaAWS", dependencies: [
            "LavaHTTP", "LavaSigV4", "LavaCrypto", "LavaJSON", "LavaSystem",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // One bzip2 stream's blocks decoded in pure Swift; libbz2 is only the tests' reference.
        .target(name: "LavaBzip2Block"),
        .target(name: "LavaBzip2", dependencies: ["LavaBzip2Block", "LavaSystem"]),
        .target(name: "LavaRealm", dependencies: ["LavaSystem", "LavaJSON", "LavaAWS", "LavaHTTP"]),
        .target(name: "LavaSource", dependencies: ["LavaSystem", "LavaAWS", .product(name: "Logging", package: "swift-log")]),
        .target(name: "LavaSelection", dependencies: ["LavaSystem", "LavaSource"]),
        .target(name: "LavaInstall", dependencies: [
            "CArchive", "CShim", "LavaSystem", "LavaJSON", "LavaSource", "LavaSelection", "LavaPlan", "LavaBzip2",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "LavaSupervisor", dependencies: [
            "CShim", "LavaSystem", .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "LavaPlan", dependencies: [
            "LavaSystem", "LavaRealm", "LavaSource", "LavaSelection",
        ]),
        .target(name: "LavaControl", dependencies: ["LavaSystem", "LavaJSON", "LavaSupervisor"]),
        .target(name: "LavaBoot", dependencies: [
            "LavaSystem", "LavaRealm", "LavaSource", "LavaSelection", "LavaInstall", "LavaPlan",
            "LavaSupervisor", "LavaControl", "LavaAWS", "LavaJSON", .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "lava-boot", dependencies: [
            "LavaBoot",
            "LavaPlan", "LavaAWS", "LavaSupervisor", "LavaControl",
            "LavaSystem", "LavaLog", "LavaJSON", "LavaRealm", "LavaSource", "LavaSelection", "LavaInstall",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], linkerSettings: [
            // Every symbol bound at start: a long-running agent then never reads its own symbol
            // tables again after it released its start-up pages (ResidentPages).
            .unsafeFlags(["-Xlinker", "-z", "-Xlinker", "now"], .when(configuration: .release)),
        ]),

        // bench/decoder.sh's harness: the decoder alone, stdin to stdout. Not shipped.
        .executableTarget(name: "lava-bzip2-decode", dependencies: ["LavaBzip2", "LavaSystem"], path: "bench/bzip2-decode"),

        // The block decoder's libFuzzer target, differential against libbz2 (scripts/fuzz-bzip2.sh
        // builds it with -DFUZZING and the sanitizers; a plain build replays the files it is given).
        .systemLibrary(name: "CLibFuzzer", path: "Tests/Fuzz/CLibFuzzer"),
        .executableTarget(name: "lava-bzip2-fuzz", dependencies: ["LavaBzip2Block", "CBzip2", "CLibFuzzer"],
                          path: "Tests/Fuzz/lava-bzip2-fuzz"),

        // What every test target shares: peers, temporary directories, bounded waits, commands run
        // through the Reaper, peak memory measured in a child.
        .target(name: "LavaTestSupport", dependencies: ["CShim", "LavaSystem"], path: "Tests/LavaTestSupport"),

        // Unit tests, one target per module; then one integration target that drives the binary.
        .testTarget(name: "LavaSystemTests", dependencies: ["LavaTestSupport", "LavaSystem", "CShim"]),
        .testTarget(name: "LavaJSONTests", dependencies: ["LavaTestSupport", "LavaJSON"]),
        .testTarget(name: "LavaRealmTests", dependencies: ["LavaTestSupport", "LavaRealm", "LavaJSON", "LavaSystem"]),
        .testTarget(name: "LavaSelectionTests", dependencies: ["LavaTestSupport", "LavaSelection", "LavaSource", "LavaSystem"]),
        .testTarget(name: "LavaSourceTests", dependencies: ["LavaTestSupport", "LavaSource", "LavaSystem"]),
        .testTarget(name: "LavaAWSTests", dependencies: [
            "LavaTestSupport", "LavaAWS", "LavaSigV4", "LavaCrypto", "CCrypto", "CCurl", "LavaSystem",
            .product(name: "Logging", package: "swift-log"),
        ], exclude: ["Vectors"]),
        .testTarget(name: "LavaBootTests", dependencies: ["LavaTestSupport", "LavaBoot", "LavaRealm", "LavaSelection"]),
        .testTarget(name: "LavaIntegrationTests", dependencies: [
            "LavaTestSupport", "CArchive", "CBzip2", "CCurl", "CCrypto", "CShim", "LavaSystem", "LavaJSON", "LavaCrypto", "LavaAWS",
            .product(name: "Logging", package: "swift-log"),
        ], exclude: ["Peers"]),
        .testTarget(name: "LavaBzip2Tests", dependencies: ["LavaTestSupport", "LavaBzip2", "LavaSystem", "CBzip2"]),
        .testTarget(name: "LavaBzip2BlockTests", dependencies: ["LavaTestSupport", "LavaBzip2Block", "LavaSystem", "CBzip2"]),
        .testTarget(name: "LavaControlTests", dependencies: ["LavaTestSupport", "LavaControl", "LavaSupervisor", "LavaSystem", "LavaJSON"]),
        .testTarget(name: "LavaHTTPTests", dependencies: ["LavaTestSupport", "LavaHTTP", "LavaSystem"], exclude: ["Peers"]),
        .testTarget(name: "LavaSigV4Tests", dependencies: ["LavaSigV4", "LavaCrypto"], exclude: ["Vectors"]),
    ],
    swiftLanguageModes: [.v6]
)
