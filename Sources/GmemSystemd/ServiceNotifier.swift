import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// Sends sd_notify(3) state strings to the service manager.
///
/// Contract: each call sends one datagram, optionally with file descriptors
/// attached (SCM_RIGHTS), and returns whether it was delivered; false (and
/// nothing sent) when the process runs without a service manager. Calls are
/// safe from any thread and never block for long. The descriptors stay the
/// caller's: the manager receives duplicates.
public protocol ServiceNotifier: Sendable {
    @discardableResult
    func notify(_ state: String, descriptors: [Int32]) -> Bool
}

/// The notifier that talks to systemd through libsystemd's `NOTIFY_SOCKET`.
public struct SystemdNotifier: ServiceNotifier {
    public init() {}

    /// Whether a service manager listens (NOTIFY_SOCKET is set).
    public static var isAvailable: Bool { getenv("NOTIFY_SOCKET") != nil }

    @discardableResult
    public func notify(_ state: String, descriptors: [Int32] = []) -> Bool {
        // The non-variadic entry point; pid 0 sends as this process, and the
        // environment is kept because readiness, status and watchdog follow.
        let result = descriptors.withUnsafeBufferPointer { fds in
            sd_pid_notify_with_fds(0, 0, state, fds.baseAddress, UInt32(fds.count))
        }
        return result > 0
    }
}

extension ServiceNotifier {
    @discardableResult
    public func notify(_ state: String) -> Bool { self.notify(state, descriptors: []) }

    /// READY=1 with a first status line: the region is mapped and the socket serves.
    @discardableResult
    public func ready(status: String) -> Bool {
        self.notify("READY=1\nSTATUS=\(Self.oneLine(status))")
    }

    /// STATUS=, the one-line summary `systemctl status` shows.
    @discardableResult
    public func status(_ text: String) -> Bool { self.notify("STATUS=\(Self.oneLine(text))") }

    /// STOPPING=1 with a reason.
    @discardableResult
    public func stopping(status: String) -> Bool {
        self.notify("STOPPING=1\nSTATUS=\(Self.oneLine(status))")
    }

    /// WATCHDOG=1: the service is alive.
    @discardableResult
    public func watchdogAlive() -> Bool { self.notify("WATCHDOG=1") }

    /// FDSTORE=1: keeps a duplicate of `descriptor` in the manager's fd store
    /// under `name`, handed back as LISTEN_FDS on the next start.
    @discardableResult
    public func store(_ descriptor: Int32, name: String) -> Bool {
        self.notify("FDSTORE=1\nFDNAME=\(name)", descriptors: [descriptor])
    }

    /// FDSTOREREMOVE=1: drops every stored descriptor called `name`.
    @discardableResult
    public func removeStored(name: String) -> Bool {
        self.notify("FDSTOREREMOVE=1\nFDNAME=\(name)")
    }

    /// Newlines would start a new assignment in the datagram.
    static func oneLine(_ text: String) -> String {
        String(text.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
