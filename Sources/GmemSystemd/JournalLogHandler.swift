import CSystemd
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Where structured journal entries go.
///
/// Contract: ``send(_:)`` submits one entry made of `FIELD=value` strings
/// (names already valid for journald), never blocks for long, is safe from
/// any thread, and swallows its own failures: logging must not fail the caller.
public protocol JournalSink: Sendable {
    func send(_ fields: [String])
}

/// The system journal, through sd_journal_sendv (the non-variadic entry point).
public struct SystemJournal: JournalSink {
    public init() {}

    public func send(_ fields: [String]) {
        self.submit(fields)
    }

    /// Sends one entry; returns sd_journal_sendv's result: 0, or a negative errno (`-ENOENT` without journald).
    /// A log line that cannot be delivered is dropped: logging never fails the daemon.
    @discardableResult
    public func submit(_ fields: [String]) -> Int32 {
        // Each field must outlive the call: keep contiguous copies, then point iovecs at them.
        let buffers = fields.map { Array($0.utf8) }
        var vectors: [iovec] = []
        vectors.reserveCapacity(buffers.count)
        var result: Int32 = 0
        Self.withPointers(buffers, index: 0, into: &vectors) { vectors in
            // Values may hold newlines: sendv frames them binary-safe.
            result = vectors.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
        return result
    }

    /// Nests `withUnsafeBufferPointer` so every buffer stays pinned while the iovecs are used.
    private static func withPointers(
        _ buffers: [[UInt8]],
        index: Int,
        into vectors: inout [iovec],
        _ body: ([iovec]) -> Void
    ) {
        guard index < buffers.count else { return body(vectors) }
        buffers[index].withUnsafeBufferPointer { bytes in
            vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count))
            Self.withPointers(buffers, index: index + 1, into: &vectors, body)
        }
    }
}

/// A swift-log handler that writes structured journal entries: MESSAGE,
/// PRIORITY, SYSLOG_IDENTIFIER, the source location (CODE_FILE, CODE_LINE,
/// CODE_FUNC) and every metadata key as a `GMEM_` field (see ``JournalFieldName``).
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let identifier: String
    private let sink: any JournalSink

    public init(
        label: String,
        identifier: String = "gmemd",
        level: Logger.Level = .info,
        sink: any JournalSink = SystemJournal()
    ) {
        self.label = label
        self.identifier = identifier
        self.logLevel = level
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = self.metadata
        if let provided = self.metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let own = event.metadata { merged.merge(own) { _, new in new } }
        if let error = event.error { merged["error"] = "\(error)" }
        let keys = merged.keys.sorted()
        // MESSAGE repeats the metadata so that plain `journalctl -u gmemd` reads well.
        var message = event.message.description
        for key in keys { message += " \(key)=\(merged[key]!)" }
        var fields = [
            "MESSAGE=\(message)",
            "PRIORITY=\(Self.priority(event.level))",
            "SYSLOG_IDENTIFIER=\(self.identifier)",
            "CODE_FILE=\(event.file)",
            "CODE_LINE=\(event.line)",
            "CODE_FUNC=\(event.function)",
            "GMEM_LOGGER=\(self.label)",
            "GMEM_LEVEL=\(event.level.rawValue)",
        ]
        for key in keys {
            fields.append("\(JournalFieldName.forMetadataKey(key))=\(merged[key]!)")
        }
        self.sink.send(fields)
    }

    /// syslog(3) priorities: swift-log has no alert or emergency level.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}
