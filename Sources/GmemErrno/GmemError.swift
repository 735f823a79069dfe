//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// GmemError: an errno, a sentence for humans, and where it was raised.
//
//===----------------------------------------------------------------------===//

#if canImport(Glibc)
import Glibc
#endif

/// The error of the guest-memory core and of the daemon's own system calls.
///
/// Its ``code`` is an ``Errno``, so a reply carries it 1:1 as a negative status. The ``reason`` says in a sentence
/// what went wrong and ``file``/``line`` record where the error was raised; ``description`` prints all three, in
/// the style of swift-certificates' `CertificateError`. Two errors are equal when their codes are: the reason is
/// free text for logs, never something to compare.
///
/// The parts live in one shared, immutable object, so the error is a single pointer wide: it is thrown (typed) on
/// the core's copy paths, and a small error keeps the success path cheap.
public struct GmemError: Error, Hashable, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    private final class Backing: Sendable {
        let code: Errno
        let reason: String
        let file: String
        let line: UInt

        init(code: Errno, reason: String, file: String, line: UInt) {
            self.code = code
            self.reason = reason
            self.file = file
            self.line = line
        }
    }

    private let backing: Backing

    /// The Linux error number a reply carries for this error.
    public var code: Errno { self.backing.code }
    /// A sentence for humans; never parsed.
    public var reason: String { self.backing.reason }
    /// The source file (`#fileID`) that raised the error.
    public var file: String { self.backing.file }
    /// The line that raised the error.
    public var line: UInt { self.backing.line }
    /// `file:line`, for logs.
    public var location: String { "\(self.file):\(self.line)" }

    @inline(never)
    public init(_ code: Errno, _ reason: String, file: String = #fileID, line: UInt = #line) {
        self.backing = Backing(code: code, reason: reason, file: file, line: line)
    }

    /// An error from a failed system call named `name`, keeping its errno and the C library's message for it.
    @inline(never)
    public static func systemCall(
        _ name: String,
        errno value: Int32,
        file: String = #fileID,
        line: UInt = #line
    ) -> GmemError {
        let message = String(cString: strerror(value))
        return GmemError(Errno(rawValue: value), "\(name): \(message)", file: file, line: line)
    }

    /// The negative errno a reply carries.
    public var wireStatus: Int32 { self.code.wireStatus }

    /// `EFAULT: range 0x1000+16 lies outside the region (GmemCore/RegionGeometry.swift:67)`.
    public var description: String { "\(self.code.name): \(self.reason) (\(self.location))" }

    /// `GmemError.EFAULT (14): ...`, with the location.
    public var debugDescription: String {
        "GmemError.\(self.code.name) (\(self.code.rawValue)): \(self.reason) (\(self.location))"
    }

    /// Equal when the codes are: the reason and the location are for humans.
    public static func == (lhs: GmemError, rhs: GmemError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }
}
