//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// `gmemctl session`: a scripted session on one connection.
//
//===----------------------------------------------------------------------===//

import ArgumentParser
import GmemClient
import GmemCommandLine
import GmemProtocol
import Synchronization

/// `gmemctl session [FILE]`.
struct Session: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run commands from FILE or standard input on one connection, so GPC handles live across lines.",
        discussion: SessionInterpreter.help + """


            '#' starts a comment. A failing line prints "gmemctl: line N: ERRNO: sentence" on \
            standard error and the session goes on; the exit status is 1 if any line failed. \
            GPC_INVALIDATED events are printed as "event: ..." after the line during which they \
            were noticed. With --json every line prints one object: {"line", "command", "result"} \
            or {"line", "command", "error"}, and events {"event", "handle", "reason"}.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The script; standard input when absent or '-'.")
    var file: String?

    func run() async throws {
        let source: LineSource
        do {
            source = try LineSource(path: self.file)
        } catch {
            self.global.report(error)
            throw ExitCode.failure
        }
        var failures = 0
        try await self.global.withClient(events: true) { client in
            let events = EventCollector(client.events)
            let interpreter = SessionInterpreter(client: client)
            var lineNumber = 0
            while let line = source.next() {
                lineNumber += 1
                let words = SessionInterpreter.words(of: line)
                guard let command = words.first else { continue }
                do {
                    if let report = try await interpreter.execute(words) {
                        self.emit(report, line: lineNumber, command: command)
                    }
                } catch {
                    failures += 1
                    self.global.report(
                        error,
                        context: "line \(lineNumber)",
                        extra: [("line", .number(lineNumber)), ("command", .string(command))]
                    )
                }
                self.printEvents(events.drain())
                flushStandardOutput()
            }
            self.printEvents(events.drain())
            events.cancel()
        }
        if failures > 0 {
            printError("gmemctl: \(failures) session line\(failures == 1 ? "" : "s") failed")
            throw ExitCode.failure
        }
    }

    private func emit(_ report: Report, line: Int, command: String) {
        if self.global.json {
            let members: [(String, JSONValue)] = [
                ("line", .number(line)), ("command", .string(command)), ("result", report.json),
            ]
            print(JSONValue.object(members).serialized)
        } else if !report.text.isEmpty {
            print(report.text)
        }
    }

    private func printEvents(_ events: [GpcInvalidatedEvent]) {
        for event in events {
            self.global.emit(
                Report(
                    text: "event: GPC_INVALIDATED handle=\(event.handle) reason=\(event.reason)",
                    json: .object([
                        ("event", .string("GPC_INVALIDATED")),
                        ("handle", .number(event.handle)),
                        ("reason", .string(event.reason.description)),
                    ])
                )
            )
        }
    }
}

/// Lines of a script file, or of standard input as they are typed.
///
/// Not `Sendable`: used by the session's one task.
final class LineSource {
    private var lines: [Substring]?
    private var index = 0

    /// Reads the whole file at `path`, or prepares to read standard input for `nil` and `-`.
    init(path: String?) throws(CommandFailure) {
        guard let path, path != "-" else { return }
        let bytes = try Bytes.readFile(path)
        self.lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// The next line without its terminator, or `nil` at the end.
    func next() -> String? {
        guard let lines = self.lines else { return readLine(strippingNewline: true) }
        guard self.index < lines.count else { return nil }
        defer { self.index += 1 }
        // A final newline ends the last line; it does not start an empty one.
        if self.index == lines.count - 1 && lines[self.index].isEmpty { return nil }
        return String(lines[self.index])
    }
}

/// Consumes a client's event stream in the background and hands out what has arrived.
///
/// `Sendable`: the arrived events are behind a mutex; the task only appends to them.
final class EventCollector: Sendable {
    private let arrived = Mutex<[GpcInvalidatedEvent]>([])
    private let consumer = Mutex<Task<Void, Never>?>(nil)

    /// Starts consuming `events`.
    init(_ events: AsyncStream<GpcInvalidatedEvent>) {
        let task = Task { [weak self] in
            for await event in events {
                self?.arrived.withLock { $0.append(event) }
            }
        }
        self.consumer.withLock { $0 = task }
    }

    /// The events that arrived since the last call, oldest first.
    func drain() -> [GpcInvalidatedEvent] {
        self.arrived.withLock { events in
            defer { events.removeAll() }
            return events
        }
    }

    /// Stops consuming.
    func cancel() {
        self.consumer.withLock { $0?.cancel() }
    }
}
