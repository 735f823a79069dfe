//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// gmemctl: inspect and drive a running gmemd from the command line.
//
//===----------------------------------------------------------------------===//

import ArgumentParser

/// The `gmemctl` command.
///
/// Exit status: 0 on success; 1 when gmemd refuses a request, cannot be reached, or an input cannot be read; 2 for
/// usage errors (a bad number, a missing argument), as most Unix tools do, instead of ArgumentParser's 64.
@main
struct Gmemctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gmemctl",
        abstract: "Inspect and drive a running gmemd over its Unix socket (wire protocol v1).",
        discussion: """
            Addresses, sizes and counts are decimal or 0x hex, with an optional K, M, G or T \
            (binary) suffix: 0x1000, 4K, 16M. Errors print as "gmemctl: ERRNO: sentence" and \
            exit with status 1; usage errors exit with status 2.
            """,
        subcommands: [
            Info.self, Ping.self, Read.self, Write.self, Discard.self, Convert.self, Stats.self, Pages.self,
            Readv.self, Atomic.self, Session.self,
        ]
    )

    @OptionGroup var global: GlobalOptions

    /// ArgumentParser's entry point, with usage errors mapped to exit status 2.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                printError(fullMessage(for: error))
                exit(withError: ExitCode(2))
            }
            exit(withError: error)
        }
    }
}
