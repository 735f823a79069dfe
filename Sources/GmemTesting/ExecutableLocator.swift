//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// ExecutableLocator: finds the gmemd binary under test and helper programs.
//
//===----------------------------------------------------------------------===//

#if canImport(Glibc)
import Glibc
#endif

/// Finds the executables the end-to-end tests run, and the `gmemd` a tool of the same build (gmem-bench) starts.
public enum ExecutableLocator {
    /// The environment variable that names the `gmemd` binary explicitly.
    public static let gmemdVariable = "GMEMD_BINARY"

    /// Where ``gmemd(explicit:search:)`` looks for `gmemd` when it is not given a path.
    public enum Search: Sendable, Hashable {
        /// `$GMEMD_BINARY`, then the SwiftPM build products directory of the running test bundle and its
        /// ancestors (see ``ExecutableLocator/gmemd()``).
        case buildProducts
        /// Only the directory of the running executable (`/proc/self/exe`), where SwiftPM puts every product of
        /// one build configuration.
        ///
        /// For a tool that must run the daemon built with it: a benchmark measuring a debug `gmemd` found further
        /// up, or one named by a `$GMEMD_BINARY` left over from testing, would report meaningless numbers.
        case besideExecutable
    }

    /// The `gmemd` binary to test.
    ///
    /// 1. `$GMEMD_BINARY`, if set (it must name an executable file).
    /// 2. Otherwise `gmemd` in the SwiftPM build products directory of the running test bundle: starting from
    ///    the directory of `CommandLine.arguments[0]` and of `/proc/self/exe` (the `.xctest` runner lives in
    ///    `.build/<triple>/debug`, next to `gmemd`), each directory and then its ancestors are searched.
    ///
    /// - Throws: ``GmemTestingError/binaryNotFound(searched:)`` listing every candidate that was tried.
    public static func gmemd() throws -> String {
        try self.gmemd(explicit: nil, search: .buildProducts)
    }

    /// `explicit` if given (it must name an executable file, as a `--gmemd PATH` option does), else `gmemd` found
    /// as `search` says.
    ///
    /// - Throws: ``GmemTestingError/binaryNotFound(searched:)`` listing every candidate that was tried.
    public static func gmemd(explicit: String?, search: Search = .buildProducts) throws -> String {
        if let explicit {
            guard isExecutableFile(explicit) else {
                throw GmemTestingError.binaryNotFound(searched: ["\(explicit) (not an executable file)"])
            }
            return explicit
        }
        var starts: [String] = []
        if search == .buildProducts {
            if let explicit = environmentValue(gmemdVariable), !explicit.isEmpty {
                guard isExecutableFile(explicit) else {
                    throw GmemTestingError.binaryNotFound(searched: [
                        "$\(gmemdVariable)=\(explicit) (not an executable file)"
                    ])
                }
                return explicit
            }
            if let argument = CommandLine.arguments.first, let resolved = realPath(argument) {
                starts.append(resolved)
            }
        }
        if let executable = realPath("/proc/self/exe") { starts.append(executable) }
        var searched: [String] = []
        for start in starts {
            var directory = parentDirectory(of: start)
            while true {
                let candidate = directory == "/" ? "/gmemd" : directory + "/gmemd"
                if !searched.contains(candidate) {
                    searched.append(candidate)
                    if isExecutableFile(candidate) { return candidate }
                }
                guard search == .buildProducts, directory != "/" else { break }
                directory = parentDirectory(of: directory)
            }
        }
        throw GmemTestingError.binaryNotFound(searched: searched)
    }

    /// `name` found in `$PATH` or a list of usual directories, or `nil`.
    public static func program(named name: String) -> String? {
        let path = environmentValue("PATH") ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/local/bin", "/usr/bin", "/bin"]
        for directory in directories where !directory.isEmpty {
            let candidate = directory + "/" + name
            if isExecutableFile(candidate) { return candidate }
        }
        return nil
    }

    /// `python3`, preferring the system interpreter: a shim of a version manager may not work without its
    /// environment.
    public static func python3() -> String? {
        for candidate in ["/usr/bin/python3", "/usr/local/bin/python3"] where isExecutableFile(candidate) {
            return candidate
        }
        return program(named: "python3")
    }

    /// Whether `path` is a regular file the current user may execute.
    public static func isExecutableFile(_ path: String) -> Bool {
        var status = stat()
        guard stat(path, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }

    static func environmentValue(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let parent = String(path[..<slash])
        return parent.isEmpty ? "/" : parent
    }
}
