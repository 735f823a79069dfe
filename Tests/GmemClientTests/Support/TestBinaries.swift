//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// Locating the gmemd and gmemctl binaries the tests run, and running processes.
//
//===----------------------------------------------------------------------===//

import Foundation
import Testing

/// The built `gmemd` and `gmemctl` executables.
///
/// `swift build` (and `swift test`, which builds every product before running tests) puts them in the same
/// directory as the test bundle. Set `GMEMD_BIN_DIR` to test other binaries.
enum TestBinaries {
    struct Missing: Error, CustomStringConvertible {
        var name: String
        var searched: [String]
        var description: String {
            "\(self.name) not found (searched \(self.searched.joined(separator: ", "))); run `swift build` first"
        }
    }

    /// Directories that may hold the products, most specific first.
    static let candidateDirectories: [String] = {
        var directories: [String] = []
        if let explicit = ProcessInfo.processInfo.environment["GMEMD_BIN_DIR"], !explicit.isEmpty {
            directories.append(explicit)
        }
        // The running test executable: .build/<triple>/debug/gmemdPackageTests.xctest on Linux.
        if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            directories.append((executable as NSString).deletingLastPathComponent)
        }
        if let executable = Bundle.main.executablePath {
            var directory = (executable as NSString).deletingLastPathComponent
            // macOS: .build/debug/gmemdPackageTests.xctest/Contents/MacOS/gmemdPackageTests.
            while directory.contains(".xctest") { directory = (directory as NSString).deletingLastPathComponent }
            directories.append(directory)
        }
        // Tests/GmemClientTests/Support/TestBinaries.swift → the package root.
        var root = #filePath as NSString
        for _ in 0..<4 { root = root.deletingLastPathComponent as NSString }
        directories.append(root.appendingPathComponent(".build/debug"))
        return directories
    }()

    /// The absolute path of the executable `name`.
    static func path(of name: String) throws -> String {
        for directory in candidateDirectories {
            let candidate = (directory as NSString).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw Missing(name: name, searched: candidateDirectories)
    }
}

/// The outcome of a finished process.
struct ProcessResult: Sendable {
    var status: Int32
    var standardOutput: Data
    var standardError: String

    /// Standard output as UTF-8 text.
    var output: String {
        String(decoding: self.standardOutput, as: UTF8.self)
    }
}

/// A fresh directory under /tmp, short enough for Unix socket paths (at most 107 bytes).
func makeTemporaryDirectory(prefix: String) throws -> String {
    var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
    guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw CocoaError(.fileWriteUnknown)
    }
    return String(cString: created)
}

/// Runs `executable` with `arguments` to completion, feeding it `input` on standard input.
///
/// Output goes through files rather than pipes, so that a chatty child can never block on a full pipe while the
/// test waits for it to exit.
func runProcess(
    _ executable: String,
    _ arguments: [String],
    input: Data? = nil,
    environment: [String: String]? = nil
) async throws -> ProcessResult {
    let directory = try makeTemporaryDirectory(prefix: "gmem-run")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let outputPath = directory + "/stdout"
    let errorPath = directory + "/stderr"
    let inputPath = directory + "/stdin"
    _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
    _ = FileManager.default.createFile(atPath: inputPath, contents: input ?? Data())

    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let outputHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
    let errorHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: errorPath))
    let inputHandle = try FileHandle(forReadingFrom: URL(fileURLWithPath: inputPath))
    process.standardOutput = outputHandle
    process.standardError = errorHandle
    process.standardInput = inputHandle

    let status: Int32 = try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { finished in continuation.resume(returning: finished.terminationStatus) }
        do {
            try process.run()
        } catch {
            process.terminationHandler = nil
            continuation.resume(throwing: error)
        }
    }
    try? outputHandle.close()
    try? errorHandle.close()
    try? inputHandle.close()
    return ProcessResult(
        status: status,
        standardOutput: FileManager.default.contents(atPath: outputPath) ?? Data(),
        standardError: String(decoding: FileManager.default.contents(atPath: errorPath) ?? Data(), as: UTF8.self)
    )
}
