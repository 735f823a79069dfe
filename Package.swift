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
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
    ],
    targets: [
        // Thin C shims for the Linux calls Swift cannot make directly
        // (variadic syscall/fcntl) or that glibc headers hide behind _GNU_SOURCE.
        .target(name: "CGmemSys"),

        // Layer 0: the one errno vocabulary (`Errno`), the error that carries it (`GmemError`) and the one
        // EINTR-retrying system call helper. No dependencies.
        .target(name: "GmemErrno"),

        // Layer 1: guest memory, per-page state and the refcounted map/unmap protocol.
        // No networking, no systemd; the only I/O is the memfd itself.
        .target(name: "GmemCore", dependencies: ["CGmemSys", "GmemErrno"]),

        // Layer 2: wire protocol v1, pure encode and decode.
        .target(name: "GmemProtocol", dependencies: ["GmemErrno", "CGmemSys"]),

        // What gmemd, gmemctl and gmem-bench share that is not wire protocol: sizes as operators type them
        // (ByteCount), the default socket path, and the one JSON writer.
        .target(name: "GmemCommandLine"),

        // Layer 3: the daemon's serving logic on SwiftNIO.
        .target(
            name: "GmemServer",
            dependencies: [
                "GmemCore", "GmemProtocol", "GmemCommandLine", "CGmemSys",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        // systemd integration: libsystemd (sd_notify, sd_listen_fds, the journal),
        // readiness, watchdog, the fd store and its attribute state file.
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .target(
            name: "GmemSystemd",
            dependencies: [
                "CSystemd", "CGmemSys", "GmemCore", "GmemProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        .executableTarget(
            name: "gmemd",
            dependencies: [
                "GmemServer", "GmemCore", "GmemProtocol", "GmemCommandLine", "GmemSystemd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        // Layer 4: an async client library over one pipelined connection, and the operator's CLI.
        .target(
            name: "GmemClient",
            dependencies: [
                "GmemProtocol", "GmemCommandLine",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "gmemctl",
            dependencies: [
                "GmemClient", "GmemErrno", "GmemProtocol", "GmemCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Benchmarks: `gmem-bench startup`, `run`, `raw-server`, `protect-pair`, `suite` (Benchmarks/README.md).
        .executableTarget(
            name: "gmem-bench",
            dependencies: [
                "GmemCore", "GmemProtocol", "GmemCommandLine", "GmemTesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                // Only for the raw-nio diagnostic baseline.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),

        .testTarget(name: "GmemErrnoTests", dependencies: ["GmemErrno"]),
        .testTarget(name: "GmemCoreTests", dependencies: ["GmemCore", "CGmemSys"]),
        .testTarget(name: "GmemProtocolTests", dependencies: ["GmemProtocol"]),
        // The server's logic on its own: the connection state machine.
        .testTarget(
            name: "GmemServerTests",
            dependencies: ["GmemServer", "GmemProtocol", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(name: "GmemCommandLineTests", dependencies: ["GmemCommandLine"]),

        // Test support for users of gmemd: spawn the real daemon, talk to it byte by byte.
        .target(name: "GmemTesting", dependencies: ["GmemErrno", "GmemProtocol", "CGmemSys"]),
        .testTarget(name: "GmemdEndToEndTests", dependencies: ["GmemTesting", "GmemProtocol"]),
        .testTarget(name: "GmemClientTests", dependencies: ["GmemClient", "GmemProtocol", "GmemTesting"]),
        // Spawns the real gmemd binary: build the gmemd product before running these.
        .testTarget(
            name: "GmemSystemdTests",
            dependencies: ["GmemSystemd", "GmemCore", "GmemErrno", "GmemProtocol", "GmemTesting", "CGmemSys"]
        ),

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
        .executableTarget(
            name: "gmem-fuzz",
            dependencies: ["GmemFuzzHarness", "CGmemFuzz"],
            path: "Fuzz/Sources/gmem-fuzz"
        ),
        // The ring target: random entries and scribbling on live rings of the real gmemd.
        .executableTarget(
            name: "gmem-ring-fuzz",
            dependencies: ["GmemProtocol", "GmemTesting"],
            path: "Fuzz/Sources/gmem-ring-fuzz"
        ),
        .testTarget(
            name: "GmemFuzzRegressionTests",
            dependencies: ["GmemFuzzHarness"],
            path: "Fuzz/Tests/GmemFuzzRegressionTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
