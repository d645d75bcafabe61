// swift-tools-version: 6.0
// layerfs: a FUSE filesystem in which the layer is the database.
import PackageDescription

let package = Package(
    name: "layerfs",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "LayerCore", targets: ["LayerCore"]),
        .executable(name: "layerfs", targets: ["layerfs"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
    ],
    targets: [
        // C libraries, each behind a system-library target (pkg-config name, Debian provider).
        .systemLibrary(
            name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]),
        .systemLibrary(
            name: "CBtrfsUtil", path: "Sources/CBtrfsUtil", pkgConfig: "libbtrfsutil",
            providers: [.apt(["libbtrfsutil-dev"])]),
        .systemLibrary(
            name: "CFuse3", path: "Sources/CFuse3", pkgConfig: "fuse3",
            providers: [.apt(["libfuse3-dev"])]),
        .systemLibrary(
            name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        // hnswlib (header-only C++, Debian's libhnswlib-dev) behind a small C interface.
        .target(
            name: "CHNSW",
            path: "Sources/CHNSW",
            cxxSettings: [.unsafeFlags(["-O2"])]),

        // The store: events, hashing, log, state index, time, blocks, verify. No FUSE here.
        .target(
            name: "LayerCore",
            dependencies: [
                "COpenSSL", "CBtrfsUtil",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),

        // The similarity index: embedders and the HNSW index, fed from the log, outside the store.
        .target(
            name: "LayerIndex",
            dependencies: [
                "LayerCore", "CHNSW", "COpenBLAS",
                .product(name: "Logging", package: "swift-log"),
            ]),

        // The FUSE adapter: the namespace of views, the node table, the libfuse low-level callbacks.
        .target(
            name: "LayerFS",
            dependencies: [
                "CFuse3", "LayerCore", "LayerIndex",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),

        // The command-line tool: parses options, hands off to LayerCore and LayerFS.
        .executableTarget(
            name: "layerfs",
            dependencies: [
                "LayerCore", "LayerFS", "LayerIndex",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // Benchmarks (bench/README.md): print figures and ratios to a same-run baseline.
        .executableTarget(
            name: "layerfs-bench",
            dependencies: ["LayerCore"],
            path: "bench/Sources/layerfs-bench"),

        .testTarget(
            name: "LayerCoreTests",
            dependencies: [
                "LayerCore",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]),
        // Real-filesystem tests: loop-mounted btrfs (root only) and the CLI binary end to end.
        .testTarget(
            name: "LayerIntegrationTests",
            dependencies: ["LayerCore"]),
        // The FUSE adapter: namespace tests without a kernel, and real mounts of the built binary (root only).
        .testTarget(
            name: "LayerIndexTests",
            dependencies: ["LayerIndex", "LayerCore"]),
        .testTarget(
            name: "LayerFSTests",
            dependencies: ["LayerFS", "LayerCore"]),
    ],
    swiftLanguageModes: [.v6]
)

// Fuzz targets (fuzz/README.md), declared only when LAYERFS_FUZZ is set, so that an ordinary build
// never needs a toolchain with libFuzzer. fuzz/run.sh builds them with -sanitize=fuzzer,address in
// their own scratch path (.build-fuzz). Each starts libFuzzer from its `<module>_main` (FuzzSupport).
if Context.environment["LAYERFS_FUZZ"] != nil {
    let fuzzers: [(name: String, dependencies: [Target.Dependency])] = [
        ("fuzz-time", ["LayerCore"]),
        ("fuzz-event-line", ["LayerCore"]),
        ("fuzz-block-header", ["LayerCore"]),
        ("fuzz-stream", ["LayerCore"]),
        ("fuzz-proof", ["LayerCore"]),
        ("fuzz-similar-name", ["LayerFS"]),
    ]
    package.targets.append(.target(name: "CFuzzDriver", path: "fuzz/Sources/CFuzzDriver"))
    package.targets.append(.target(name: "FuzzSupport", dependencies: ["CFuzzDriver"], path: "fuzz/Sources/FuzzSupport"))
    for fuzzer in fuzzers {
        package.targets.append(
            .executableTarget(
                name: fuzzer.name, dependencies: fuzzer.dependencies + ["FuzzSupport"], path: "fuzz/Sources/\(fuzzer.name)",
                swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
        package.products.append(.executable(name: fuzzer.name, targets: [fuzzer.name]))
    }
}
