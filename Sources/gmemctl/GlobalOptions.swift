//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// The options every gmemctl command takes, connecting, and reporting failures.
//
//===----------------------------------------------------------------------===//

import ArgumentParser
import GmemClient
import GmemCommandLine
import GmemProtocol

/// `--socket` and `--json`, shared by every subcommand (before or after the subcommand's name).
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "gmemd's Unix socket.",
            discussion: "Default: $GMEMD_SOCKET, $XDG_RUNTIME_DIR/gmemd.sock, /run/gmemd/gmemd.sock for root, "
                + "else ./gmemd.sock (the same resolution as gmemd).",
            valueName: "path"
        )
    )
    var socket: String?

    @Flag(name: .long, help: "Print machine-readable JSON (one value per command or session line) instead of text.")
    var json = false

    /// The socket to connect to.
    var socketPath: String {
        self.socket ?? GmemClient.defaultSocketPath
    }

    /// Connects, runs `body` and closes the connection.
    ///
    /// Any failure is reported on standard error as `gmemctl: MESSAGE` (and as a JSON object on standard output
    /// with `--json`) and turned into exit status 1. An `ExitCode` thrown by `body` passes through unchanged.
    func withClient(events: Bool = false, _ body: (GmemClient) async throws -> Void) async throws {
        do {
            // DEVICE_OPS costs nothing and makes `info` report max_segments.
            let features: HelloReply.Features = events ? [.events, .deviceOps] : [.deviceOps]
            let client = try await GmemClient.connect(path: self.socketPath, features: features)
            do {
                try await body(client)
            } catch {
                await client.close()
                throw error
            }
            await client.close()
        } catch let exit as ExitCode {
            throw exit
        } catch {
            self.report(error)
            throw ExitCode.failure
        }
    }

    /// Prints `error` as `gmemctl: [context: ]MESSAGE` on standard error and, with `--json`, as
    /// `{"error": {...}}` on standard output.
    func report(_ error: any Error, context: String? = nil, extra: [(String, JSONValue)] = []) {
        let prefix = context.map { "gmemctl: \($0): " } ?? "gmemctl: "
        printError(prefix + Failure.message(for: error))
        if self.json {
            print(JSONValue.object(extra + [("error", Failure.json(for: error))]).serialized)
        }
    }

    /// Prints a command's output as text or JSON.
    func emit(_ report: Report) {
        if self.json {
            print(report.json.serialized)
        } else if !report.text.isEmpty {
            print(report.text)
        }
    }
}

/// What one operation prints: text for people, a JSON value for programs.
struct Report {
    var text: String
    var json: JSONValue
}

/// A failure of gmemctl itself (a file it cannot read, an unknown session command) rather than of gmemd.
struct CommandFailure: Error, CustomStringConvertible {
    var message: String
    /// The errno that best describes it, if any, e.g. `ENOENT` for an unknown GPC handle.
    var errno: Errno?

    init(message: String, errno: Errno? = nil) {
        self.message = message
        self.errno = errno
    }

    var description: String {
        if let errno = self.errno { return "\(errno.name): \(self.message)" }
        return self.message
    }
}

/// How failures read.
enum Failure {
    /// `EFAULT: the range lies outside guest memory`, `cannot connect to gmemd at PATH: REASON`, ...
    static func message(for error: any Error) -> String {
        switch error {
        case let error as GmemClientError: return error.description
        case let error as CommandFailure: return error.description
        case let error as ValidationError: return error.message
        default: return "\(error)"
        }
    }

    /// `{"name": "EFAULT", "errno": 14, "message": "...", "opcode": "READ", "bytes_completed": 8}`.
    static func json(for error: any Error) -> JSONValue {
        var members: [(String, JSONValue)] = []
        switch error {
        case let error as GmemClientError:
            members.append(("name", .string(error.errno.name)))
            members.append(("errno", .number(error.errno.rawValue)))
            members.append(("kind", .string(error.code.description)))
            if let opcode = error.opcode { members.append(("opcode", .string(opcode.description))) }
            if let done = error.bytesCompleted { members.append(("bytes_completed", .number(done))) }
        case let error as CommandFailure:
            if let errno = error.errno {
                members.append(("name", .string(errno.name)))
                members.append(("errno", .number(errno.rawValue)))
            }
            members.append(("kind", .string("gmemctl")))
        default:
            members.append(("kind", .string("gmemctl")))
        }
        members.append(("message", .string(Failure.message(for: error))))
        return .object(members)
    }
}

/// Numbers as operators type them: decimal or `0x` hex, with an optional K, M, G or T (binary) suffix.
enum Number {
    /// Parses an address or size. - Throws: `ValidationError` (exit status 2) for anything else.
    @Sendable
    static func parse(_ text: String) throws -> UInt64 {
        guard let count = ByteCount(parsing: text) else {
            throw ValidationError(
                "'\(text)' is not a number: use decimal or 0x hex, optionally with a K, M, G or T suffix"
            )
        }
        return count.value
    }

    /// Parses a length that must fit an `Int`.
    @Sendable
    static func parseLength(_ text: String) throws -> Int {
        guard let value = Int(exactly: try Self.parse(text)) else {
            throw ValidationError("'\(text)' is too large")
        }
        return value
    }

    /// `4096 (4K)`: the exact value, and the short form when it differs.
    static func describe(_ value: UInt64) -> String {
        let short = ByteCount(value).description
        return short == String(value) ? short : "\(value) (\(short))"
    }
}
