import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// The file descriptors a service manager passed at start (LISTEN_FDS):
/// a listening socket from gmemd.socket, the fd store's guest memfd and
/// state memfd, any combination of them, or nothing.
///
/// Stored memfds are told apart by their FDNAME; a listening socket by
/// sd_is_socket_unix, whatever its name (FileDescriptorName= may change it).
public struct InheritedDescriptors: Sendable, Hashable {
    /// FDNAME of the guest memory memfd in the fd store.
    public static let guestName = "gmemd-guest"
    /// FDNAME of the attribute state memfd in the fd store.
    public static let stateName = "gmemd-state"

    public var listener: Int32?
    public var guest: Int32?
    public var state: Int32?
    /// Descriptors that are none of the above, or a second of one kind, with
    /// their names: the caller closes them and says so.
    public var unrecognized: [Unrecognized] = []

    public struct Unrecognized: Sendable, Hashable {
        public var descriptor: Int32
        public var name: String
        public var reason: String
    }

    public init(listener: Int32? = nil, guest: Int32? = nil, state: Int32? = nil) {
        self.listener = listener
        self.guest = guest
        self.state = state
    }

    /// Takes the descriptors passed to this process and unsets LISTEN_FDS,
    /// LISTEN_PID and LISTEN_FDNAMES so that nothing this process starts
    /// mistakes them for its own. LISTEN_PID must name this process, else
    /// nothing was passed to it.
    public static func take() -> InheritedDescriptors {
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = nil
        let count = sd_listen_fds_with_names(1, &names)
        defer {
            // libsystemd allocates the array and every name; the caller frees them.
            if let names {
                for index in 0..<Int(max(count, 0)) { free(names[index]) }
                free(names)
            }
        }
        guard count > 0 else { return InheritedDescriptors() }
        var passed: [(descriptor: Int32, name: String)] = []
        for index in 0..<Int(count) {
            let name = names?[index].map { String(cString: $0) } ?? "unknown"
            passed.append((SD_LISTEN_FDS_START + Int32(index), name))
        }
        return Self.classify(passed, isListeningSocket: Self.isListeningUnixStreamSocket)
    }

    /// Sorts `passed` by name and kind. Pure apart from `isListeningSocket`, for tests.
    public static func classify(
        _ passed: [(descriptor: Int32, name: String)],
        isListeningSocket: (Int32) -> Bool
    ) -> InheritedDescriptors {
        var result = InheritedDescriptors()
        for (descriptor, name) in passed {
            let kind: WritableKeyPath<InheritedDescriptors, Int32?>
            let what: String
            if name == Self.guestName {
                (kind, what) = (\.guest, "stored guest memfd")
            } else if name == Self.stateName {
                (kind, what) = (\.state, "stored state memfd")
            } else if isListeningSocket(descriptor) {
                (kind, what) = (\.listener, "listening socket")
            } else {
                result.unrecognized.append(
                    Unrecognized(
                        descriptor: descriptor,
                        name: name,
                        reason: "neither a stored region nor a listening Unix stream socket"
                    )
                )
                continue
            }
            if result[keyPath: kind] == nil {
                result[keyPath: kind] = descriptor
            } else {
                result.unrecognized.append(Unrecognized(descriptor: descriptor, name: name, reason: "a second \(what)"))
            }
        }
        return result
    }

    /// sd_is_socket_unix: a Unix stream socket in the listening state, at any path.
    public static func isListeningUnixStreamSocket(_ descriptor: Int32) -> Bool {
        sd_is_socket_unix(descriptor, Int32(SOCK_STREAM.rawValue), 1, nil, 0) > 0
    }

    /// Whether anything of the fd store came back.
    public var hasStoredRegion: Bool { self.guest != nil || self.state != nil }
}
