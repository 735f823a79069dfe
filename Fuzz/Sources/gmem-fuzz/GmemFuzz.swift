import GmemFuzzHarness

#if canImport(Glibc)
import Glibc
#endif

#if GMEM_LIBFUZZER
import CGmemFuzz
#endif

/// The fuzz target.
///
/// Built by `Fuzz/run.sh` with `-Xswiftc -sanitize=fuzzer,address
/// -Xswiftc -DGMEM_LIBFUZZER`, this is a libFuzzer binary: every libFuzzer
/// flag and argument applies, and an input that breaks a check aborts, so
/// libFuzzer saves it as a crash. SwiftPM links an executable's entry point
/// as `gmem_fuzz_main` (renamed to `main`), so that function hands control to
/// libFuzzer through `LLVMFuzzerRunDriver` instead of libFuzzer's own `main`.
///
/// Built normally (`swift build --product gmem-fuzz`), it replays inputs:
/// `gmem-fuzz FILE-OR-DIRECTORY...` runs each file through the same harness
/// and exits 1 if any check fails.
#if GMEM_LIBFUZZER
@_cdecl("gmem_fuzz_main")
public func gmemFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOneInput(data, size) }
}

/// Also exported under libFuzzer's usual name: the linker pulls libFuzzer's
/// own main (which calls it) out of the runtime archive, although SwiftPM's
/// `main` = `gmem_fuzz_main` is the one that runs.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let violations = FuzzHarness.run(UnsafeRawBufferPointer(start: data, count: size))
    if !violations.isEmpty {
        for violation in violations { GmemFuzz.printError("gmem-fuzz: VIOLATION: \(violation)") }
        abort()
    }
    return 0
}
#else
@main
enum GmemFuzzReplay {
    static func main() {
        GmemFuzz.replay(Array(CommandLine.arguments.dropFirst()))
    }
}
#endif

enum GmemFuzz {
    static func printError(_ message: String) {
        var line = message + "\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    static func replay(_ paths: [String]) {
        guard !paths.isEmpty else {
            Self.printError("usage: gmem-fuzz FILE-OR-DIRECTORY... (replays fuzz inputs; see Fuzz/README.md)")
            exit(2)
        }
        var inputs = 0
        var failures = 0
        for file in paths.flatMap(Self.files(under:)).sorted() {
            guard let bytes = Self.contents(of: file) else {
                Self.printError("gmem-fuzz: cannot read \(file)")
                exit(2)
            }
            inputs += 1
            let violations = FuzzHarness.run(bytes)
            if !violations.isEmpty {
                failures += 1
                for violation in violations { print("FAIL \(file): \(violation)") }
            }
        }
        print("gmem-fuzz: replayed \(inputs) inputs, \(failures) failed")
        exit(failures == 0 ? 0 : 1)
    }

    /// `path` itself if it is a file, else the regular files below it.
    static func files(under path: String) -> [String] {
        guard let directory = opendir(path) else { return [path] }
        defer { closedir(directory) }
        var result: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
            }
            if name == "." || name == ".." || name.hasPrefix(".") { continue }
            result += Self.files(under: path + "/" + name)
        }
        return result
    }

    static func contents(of path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            bytes += buffer[..<count]
            if count < buffer.count { break }
        }
        return ferror(file) == 0 ? bytes : nil
    }
}
