import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Where gmemd's log goes: structured entries to the journal when stderr is
/// connected to it, readable lines on stderr everywhere else.
public enum LogDestination: Sendable, Hashable {
    case journal
    case standardError

    /// The journal exactly when JOURNAL_STREAM names stderr's own file
    /// (`st_dev:st_ino` in decimal, see systemd.exec(5)). A redirected stderr
    /// under systemd, or an inherited variable in a shell, does not match.
    public static func detect(journalStream: String?) -> LogDestination {
        guard let journalStream else { return .standardError }
        let parts = journalStream.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else {
            return .standardError
        }
        var status = stat()
        // fstat of fd 2: what stderr is now, not what it was when JOURNAL_STREAM was set.
        guard fstat(2, &status) == 0 else { return .standardError }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode ? .journal : .standardError
    }

    /// Bootstraps swift-log once, for the whole process, at `level`.
    public func bootstrap(level: Logger.Level, identifier: String = "gmemd") {
        switch self {
        case .journal:
            LoggingSystem.bootstrap { label in
                JournalLogHandler(label: label, identifier: identifier, level: level)
            }
        case .standardError:
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}
