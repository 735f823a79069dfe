#if canImport(Glibc)
import Glibc
#endif

/// The one error type of the guest-memory core.
///
/// Every ``Code`` is a Linux errno, so the wire protocol can carry it 1:1 as a
/// negative status. The `reason` says in a sentence what went wrong and
/// `location` records where the error was raised, in the style of
/// swift-certificates' `CertificateError`.
public struct GmemError: Error, Hashable, Sendable, CustomStringConvertible {
    /// An extensible errno-valued error code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The positive Linux errno value.
        public let errno: Int32

        public init(errno: Int32) { self.errno = errno }

        /// The range lies outside the region, or its end overflows 64 bits.
        public static let fault = Code(errno: EFAULT)
        /// A malformed argument: alignment, size, a range crossing a page.
        public static let invalidArgument = Code(errno: EINVAL)
        /// No such object, such as an unknown cache handle.
        public static let noEntry = Code(errno: ENOENT)
        /// The cache was invalidated by a conversion or a discard; refresh it.
        public static let stale = Code(errno: ESTALE)
        /// The kernel refused a protection change, typically the map-count limit.
        public static let outOfMemory = Code(errno: ENOMEM)
        /// A per-connection or per-page limit was reached.
        public static let noSpace = Code(errno: ENOSPC)
        /// The caller may not modify guest memory.
        public static let notPermitted = Code(errno: EPERM)
        /// The operation is not supported by this backing or mode.
        public static let notSupported = Code(errno: EOPNOTSUPP)
        /// A system call failed in a way not listed above.
        public static let io = Code(errno: EIO)

        public var description: String {
            switch self {
            case .fault: "EFAULT"
            case .invalidArgument: "EINVAL"
            case .noEntry: "ENOENT"
            case .stale: "ESTALE"
            case .outOfMemory: "ENOMEM"
            case .noSpace: "ENOSPC"
            case .notPermitted: "EPERM"
            case .notSupported: "EOPNOTSUPP"
            case .io: "EIO"
            default: "errno \(self.errno)"
            }
        }
    }

    public var code: Code
    /// A sentence for humans; never parsed.
    public var reason: String
    /// Where the error was raised, for logs.
    public var location: String

    public init(_ code: Code, _ reason: String, file: String = #fileID, line: UInt = #line) {
        self.code = code
        self.reason = reason
        self.location = "\(file):\(line)"
    }

    /// An error from a failed system call, keeping its errno.
    static func systemCall(_ name: String, errno value: Int32, file: String = #fileID, line: UInt = #line) -> GmemError
    {
        let message = String(cString: strerror(value))
        return GmemError(Code(errno: value), "\(name): \(message)", file: file, line: line)
    }

    /// The negative errno a reply carries.
    public var wireStatus: Int32 { -self.code.errno }

    public var description: String { "\(self.code): \(self.reason)" }

    public static func == (lhs: GmemError, rhs: GmemError) -> Bool { lhs.code == rhs.code && lhs.reason == rhs.reason }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }
}
