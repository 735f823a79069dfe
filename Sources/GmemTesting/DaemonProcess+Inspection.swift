//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// DaemonProcess inspection: the daemon as the kernel sees it, from /proc/PID.
//
//===----------------------------------------------------------------------===//

#if canImport(Glibc)
import Glibc
#endif

/// What a process does with a signal, from the `SigIgn` and `SigCgt` masks of `/proc/PID/status`.
public enum SignalDisposition: Hashable, Sendable {
    /// The default action (SIGTERM: the process dies).
    case `default`
    /// Ignored: the signal is discarded.
    case ignored
    /// A handler is installed.
    case caught
}

/// A process's memory and thread counts, from `/proc/PID/status` (the kernel's kB converted to bytes).
///
/// What a benchmark reports about a daemon at rest: the resident cost of its region, its connections and its GPCs.
public struct ProcessStatus: Hashable, Sendable {
    /// `VmRSS`: resident memory, in bytes.
    public var vmRSS: UInt64
    /// `RssAnon`: resident anonymous memory (heap, stacks), in bytes.
    public var rssAnon: UInt64
    /// `RssFile`: resident file-backed memory (the binary, libraries), in bytes.
    public var rssFile: UInt64
    /// `RssShmem`: resident shared memory, in bytes; gmemd's guest memfd counts here.
    public var rssShmem: UInt64
    /// `Threads`.
    public var threads: UInt64

    /// A status with the given counts, all 0 by default.
    public init(
        vmRSS: UInt64 = 0,
        rssAnon: UInt64 = 0,
        rssFile: UInt64 = 0,
        rssShmem: UInt64 = 0,
        threads: UInt64 = 0
    ) {
        self.vmRSS = vmRSS
        self.rssAnon = rssAnon
        self.rssFile = rssFile
        self.rssShmem = rssShmem
        self.threads = threads
    }

    /// Parses the text of a `/proc/PID/status` file; a field that is missing stays 0.
    public init(parsing text: String) {
        self.init()
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let value = UInt64(parts[1].drop { !$0.isNumber }.prefix { $0.isNumber }) ?? 0
            switch parts[0] {
            case "VmRSS": self.vmRSS = value * 1024
            case "RssAnon": self.rssAnon = value * 1024
            case "RssFile": self.rssFile = value * 1024
            case "RssShmem": self.rssShmem = value * 1024
            case "Threads": self.threads = value
            default: break
            }
        }
    }

    /// `/proc/<pid>/status`, or `nil` if it cannot be read (the process has been reaped).
    public static func read(pid: pid_t) -> ProcessStatus? {
        guard let text = try? ProcMaps.readFile("/proc/\(pid)/status") else { return nil }
        return ProcessStatus(parsing: text)
    }
}

extension DaemonProcess {
    /// The daemon's memory and thread counts, or `nil` once it has ended.
    ///
    /// An ended daemon is reaped first: its zombie would still have a status file (without memory counts), and
    /// after reaping the pid may belong to another process.
    public func status() -> ProcessStatus? {
        // A zombie (it died since isRunning) has a status file without memory lines.
        guard self.isRunning, let text = try? ProcMaps.readFile("/proc/\(self.pid)/status"), text.contains("VmRSS:")
        else { return nil }
        return ProcessStatus(parsing: text)
    }

    /// How many descriptors the daemon has open (the entries of `/proc/PID/fd`): a ring's memfd and doorbells are
    /// three of them, so a leak or a double close shows here.
    public func openDescriptorCount() throws -> Int {
        guard let directory = opendir("/proc/\(self.pid)/fd") else {
            throw GmemTestingError.systemCall("opendir /proc/\(self.pid)/fd", errno: errno)
        }
        defer { closedir(directory) }
        var count = 0
        // Every entry but "." and "..".
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != 0x2e { count += 1 }
        }
        return count
    }

    /// CPU time every thread of the daemon has run so far, in nanoseconds (the first field of each
    /// `/proc/PID/task/TID/schedstat`), or `nil` once it has ended.
    public func cpuNanoseconds() -> UInt64? {
        guard self.isRunning, let directory = opendir("/proc/\(self.pid)/task") else { return nil }
        defer { closedir(directory) }
        var total: UInt64 = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard Int(name) != nil, let text = try? ProcMaps.readFile("/proc/\(self.pid)/task/\(name)/schedstat"),
                let first = text.split(separator: " ").first, let nanoseconds = UInt64(first)
            else { continue }
            total += nanoseconds
        }
        return total
    }

    /// The protection `/proc/PID/maps` shows for each guest page in `pages` of the daemon's `/memfd:gmemd-guest`
    /// mapping: `---s` where the daemon cannot touch the page, `rw-s` where it can.
    ///
    /// This is the kernel's view, independent of PAGE_STATE: a test compares the two.
    ///
    /// - Parameter pages: guest page numbers (gpa / page size).
    public func mapsProtections(
        ofRegionIn pages: Range<Int>,
        pageSize: Int = DaemonProcess.systemPageSize
    ) throws -> [MappedProtection] {
        try ProcMaps.protections(mapsText: try ProcMaps.read(pid: self.pid), pages: pages, pageSize: pageSize)
    }

    /// The protection of the one guest page holding `gpa`.
    public func mapsProtection(
        ofPageAt gpa: UInt64,
        pageSize: Int = DaemonProcess.systemPageSize
    ) throws -> MappedProtection {
        let page = Int(gpa / UInt64(pageSize))
        return try self.mapsProtections(ofRegionIn: page..<(page + 1), pageSize: pageSize)[0]
    }

    /// What the daemon currently does with `signal`.
    public func disposition(of signal: Int32) throws -> SignalDisposition {
        let status = try ProcMaps.readFile("/proc/\(self.pid)/status")
        func mask(_ name: String) -> UInt64 {
            for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
                return UInt64(line.dropFirst(name.count + 1).drop(while: { $0 == "\t" || $0 == " " }), radix: 16) ?? 0
            }
            return 0
        }
        let bit = UInt64(1) << UInt64(signal - 1)
        if mask("SigCgt") & bit != 0 { return .caught }
        if mask("SigIgn") & bit != 0 { return .ignored }
        return .default
    }

    /// Waits until the daemon has installed its handler for `signal` (gmemd handles SIGTERM and SIGINT once it has
    /// finished starting).
    ///
    /// A test of graceful shutdown calls this before sending SIGTERM, so that it tests shutdown and not start-up:
    /// a signal that arrives while the daemon still starts is a separate case, with its own test.
    public func waitUntilCatching(_ signal: Int32, timeout: Duration = .seconds(10)) throws {
        try waitUntil(
            "gmemd (pid \(self.pid)) to install its handler for signal \(signal)",
            timeout: timeout,
            interval: .milliseconds(2)
        ) {
            if let status = self.exitStatus { throw GmemTestingError.daemonExited(status, stderr: self.stderr) }
            return try self.disposition(of: signal) == .caught
        }
    }
}
