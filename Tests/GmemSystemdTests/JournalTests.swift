import GmemSystemd
import GmemTesting
import Logging
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Collects entries instead of sending them to journald.
final class CapturingSink: JournalSink {
    let entries = Mutex<[[String]]>([])
    func send(_ fields: [String]) { self.entries.withLock { $0.append(fields) } }
}

@Suite("journald logging")
struct JournalTests {
    @Test(
        "metadata keys become valid journal field names",
        arguments: [
            ("connection", "GMEM_CONNECTION"),
            ("peer uid", "GMEM_PEER_UID"),
            ("gpa", "GMEM_GPA"),
            ("readOnly", "GMEM_READ_ONLY"),
            ("region_id", "GMEM_REGION_ID"),
            ("interval.us", "GMEM_INTERVAL_US"),
            ("__weird--key__", "GMEM_WEIRD_KEY"),
            ("ä", "GMEM_FIELD"),
            (String(repeating: "x", count: 100), "GMEM_" + String(repeating: "X", count: 59)),
        ]
    )
    func fieldNames(key: String, expected: String) {
        let name = JournalFieldName.forMetadataKey(key)
        #expect(name == expected)
        #expect(JournalFieldName.isValid(name))
    }

    @Test("a log event becomes one structured entry with priority, message, location and fields")
    func structuredEntry() {
        let sink = CapturingSink()
        var handler = JournalLogHandler(label: "gmemd", level: .debug, sink: sink)
        handler[metadataKey: "connection"] = "7"
        var logger = Logger(label: "gmemd") { _ in handler }
        logger.logLevel = .debug
        logger.warning("conversion failed", metadata: ["gpa": "0x1000", "peer uid": "1000"])
        let entries = sink.entries.withLock { $0 }
        #expect(entries.count == 1)
        let fields = entries.first ?? []
        #expect(fields.contains("PRIORITY=4"))
        #expect(fields.contains("SYSLOG_IDENTIFIER=gmemd"))
        #expect(fields.contains("GMEM_CONNECTION=7"))
        #expect(fields.contains("GMEM_GPA=0x1000"))
        #expect(fields.contains("GMEM_PEER_UID=1000"))
        #expect(fields.contains { $0.hasPrefix("MESSAGE=conversion failed") })
        #expect(fields.contains { $0.hasPrefix("CODE_FILE=") } && fields.contains { $0.hasPrefix("CODE_LINE=") })
        for field in fields {
            let name = String(field.prefix { $0 != "=" })
            #expect(JournalFieldName.isValid(name), "journald would drop \(name)")
        }
    }

    @Test(
        "priorities follow syslog",
        arguments: [
            (Logger.Level.trace, 7), (.debug, 7), (.info, 6), (.notice, 5), (.warning, 4), (.error, 3), (.critical, 2),
        ]
    )
    func priorities(level: Logger.Level, priority: Int) {
        #expect(JournalLogHandler.priority(level) == priority)
    }

    @Test("the journal is chosen only when JOURNAL_STREAM names stderr's device and inode")
    func destination() {
        var status = stat()
        fstat(2, &status)
        #expect(LogDestination.detect(journalStream: "\(status.st_dev):\(status.st_ino)") == .journal)
        #expect(LogDestination.detect(journalStream: "\(status.st_dev):\(status.st_ino &+ 1)") == .standardError)
        #expect(LogDestination.detect(journalStream: nil) == .standardError)
        #expect(LogDestination.detect(journalStream: "garbage") == .standardError)
    }

    @Test("sd_journal_sendv's result is reported: a malformed entry is refused, a valid one accepted")
    func realJournal() throws {
        let journal = SystemJournal()
        // Checked before anything is sent, journald or not: a field needs a name and a '='.
        #expect(journal.submit(["MESSAGE without an equals sign"]) == -EINVAL)
        #expect(journal.submit(["=no name"]) == -EINVAL)
        let marker = "\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let result = journal.submit([
            "MESSAGE=gmemd test entry", "PRIORITY=7", "SYSLOG_IDENTIFIER=gmemd-test", "GMEM_TEST=\(marker)",
        ])
        // 0 also without journald: libsystemd drops entries silently when its socket does not exist (ENOENT).
        #expect(result == 0, "sd_journal_sendv returned \(result)")
        let journald = "/run/systemd/journal/socket"
        guard UnixSocket.socketFileExists(at: journald) else {
            print("realJournal: no journald at \(journald); the entry is not read back")
            return
        }
        guard let journalctl = ExecutableLocator.program(named: "journalctl") else {
            print("realJournal: sent, but no journalctl to read the entry back")
            return
        }
        // journald writes asynchronously: read back until the entry appears (a reader without access sees nothing).
        var found = ""
        for _ in 0..<20 where !found.contains("gmemd test entry") {
            let reader = try Subprocess(
                executable: journalctl,
                arguments: ["--no-pager", "-q", "-o", "cat", "GMEM_TEST=\(marker)"],
                standardOutput: .pipe
            )
            found = try reader.readOutput(timeout: .seconds(10))
            _ = try reader.wait(timeout: .seconds(10))
            if !found.contains("gmemd test entry") { usleep(100_000) }
        }
        if found.isEmpty {
            print("realJournal: sent (sd_journal_sendv returned 0), but this user cannot read the journal back")
        } else {
            #expect(found.contains("gmemd test entry"), "journalctl printed: \(found)")
        }
    }
}

@Suite("inherited descriptors")
struct InheritedDescriptorsTests {
    @Test("stored memfds by name, the listening socket by kind, the rest refused")
    func classify() {
        let listening: Set<Int32> = [3, 7]
        let result = InheritedDescriptors.classify(
            [
                (3, "gmemd.socket"), (4, "gmemd-guest"), (5, "gmemd-state"), (6, "stray"), (7, "other.socket"),
                (8, "gmemd-guest"),
            ],
            isListeningSocket: { listening.contains($0) }
        )
        #expect(result.listener == 3 && result.guest == 4 && result.state == 5)
        #expect(result.unrecognized.map(\.descriptor) == [6, 7, 8])
        #expect(result.hasStoredRegion)
    }

    @Test("a socket named like a stored fd is still taken by name; none passed means none")
    func empty() {
        #expect(InheritedDescriptors.classify([], isListeningSocket: { _ in true }) == InheritedDescriptors())
        let onlySocket = InheritedDescriptors.classify([(3, "unknown")], isListeningSocket: { _ in true })
        #expect(onlySocket.listener == 3 && !onlySocket.hasStoredRegion)
    }

    @Test("sd_is_socket_unix tells a listening socket from a memfd")
    func realSocket() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let socket = try UnixAddress.listeningSocket(path: directory.path + "/probe.sock")
        defer { close(socket) }
        #expect(InheritedDescriptors.isListeningUnixStreamSocket(socket))
        let file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC)
        defer { close(file) }
        #expect(!InheritedDescriptors.isListeningUnixStreamSocket(file))
    }
}
