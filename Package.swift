// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "gmemd",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "GmemCore", targets: ["GmemCore"]),
        .library(name: "GmemProtocol", targets: ["GmemProtocol"]),
        .library(name: "GmemTesting", targets: ["GmemTesting"]),
        .library(name: "GmemClient", targets: ["GmemClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.1.0"),
    ],
    targets: [
        // Thin C shims for the Linux calls Swift cannot make directly
        // (variadic syscall/fcntl) or that glibc headers hide behind _GNU_SOURCE.
        .target(name: "CGmemSys"),

        // Layer 1: guest memory, per-page state and the refcounted map/unmap protocol.
        // No networking, no systemd; the only I/O is the memfd itself.
        .target(name: "GmemCore", dependencies: ["CGmemSys"]),

        // Layer 2: wire protocol v1, pure encode and decode.
        .target(name: "GmemProtocol"),

        // Layer 3: the daemon's serving logic on SwiftNIO.
        .target(
            name: "GmemServer",
            dependencies: [
                "GmemCore", "GmemProtocol", "CGmemSys",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // systemd integration: libsystemd (sd_notify, sd_listen_fds, the journal),
        // readiness, watchdog, the fd store and its attribute state file.
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .target(
            name: "GmemSystemd",
            dependencies: ["CSystemd", "GmemCore", "GmemProtocol", .product(name: "Logging", package: "swift-log")]
        ),

        .executableTarget(
            name: "gmemd",
            dependencies: [
                "GmemServer", "GmemCore", "GmemProtocol", "GmemSystemd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),

        // Layer 4: an async client library over one pipelined connection, and the operator's CLI.
        .target(
            name: "GmemClient",
            dependencies: [
                "GmemProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "gmemctl",
            dependencies: [
                "GmemClient", "GmemProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Benchmarks: `gmem-bench startup`, `run`, `raw-server`, `protect-pair`, `suite` (Benchmarks/README.md).
        .executableTarget(
            name: "gmem-bench",
            dependencies: [
                "GmemCore", "GmemProtocol", "GmemTesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),

        .testTarget(name: "GmemCoreTests", dependencies: ["GmemCore", "CGmemSys"]),
        .testTarget(name: "GmemProtocolTests", dependencies: ["GmemProtocol"]),

        // Test support for users of gmemd: spawn the real daemon, talk to it byte by byte.
        .target(name: "GmemTesting", dependencies: ["GmemProtocol"]),
        .testTarget(name: "GmemdEndToEndTests", dependencies: ["GmemTesting", "GmemProtocol"]),
        .testTarget(name: "GmemClientTests", dependencies: ["GmemClient", "GmemProtocol"]),
        // Spawns the real gmemd binary: build the gmemd product before running these.
        .testTarget(name: "GmemSystemdTests", dependencies: ["GmemSystemd", "GmemCore", "GmemProtocol", "CGmemSys"]),

        // Fuzzing (Fuzz/README.md): the harness over the real connection handler,
        // the gmem-fuzz target (a replayer unless Fuzz/run.sh builds it with
        // libFuzzer), and a test that replays the seed corpus and every saved
        // finding on each test run.
        .target(
            name: "GmemFuzzHarness",
            dependencies: [
                "GmemCore", "GmemServer",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Fuzz/Sources/GmemFuzzHarness"
        ),
        .target(name: "CGmemFuzz", path: "Fuzz/Sources/CGmemFuzz"),
        .executableTarget(name: "gmem-fuzz", dependencies: ["GmemFuzzHarness", "CGmemFuzz"], path: "Fuzz/Sources/gmem-fuzz"),
        .testTarget(
            name: "GmemFuzzRegressionTests",
            dependencies: ["GmemFuzzHarness"],
            path: "Fuzz/Tests/GmemFuzzRegressionTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
