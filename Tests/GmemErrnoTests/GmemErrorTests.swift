import GmemErrno
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("GmemError and SystemCall")
struct GmemErrorTests {
    @Test("errors carry their errno, a negative wire status, a reason and where they were raised")
    func errorShape() {
        let codes: [(Errno, Int32, String)] = [
            (.badAddress, EFAULT, "EFAULT"), (.invalidArgument, EINVAL, "EINVAL"), (.noSuchEntry, ENOENT, "ENOENT"),
            (.stale, ESTALE, "ESTALE"), (.noMemory, ENOMEM, "ENOMEM"), (.noSpace, ENOSPC, "ENOSPC"),
            (.notPermitted, EPERM, "EPERM"), (.operationNotSupported, EOPNOTSUPP, "EOPNOTSUPP"), (.ioError, EIO, "EIO"),
        ]
        for (code, errno, name) in codes {
            let line: UInt = #line + 1
            let error = GmemError(code, "because")
            #expect(error.code.rawValue == errno && error.wireStatus == -errno)
            #expect(error.location == "GmemErrnoTests/GmemErrorTests.swift:\(line)")
            #expect(error.description == "\(name): because (\(error.location))")
            #expect(error.debugDescription == "GmemError.\(name) (\(errno)): because (\(error.location))")
        }
    }

    @Test("errors compare and hash by code only: the reason and the location are for humans")
    func equalityByCode() {
        let first = GmemError(.badAddress, "one sentence")
        let second = GmemError(.badAddress, "another sentence")
        #expect(first == second)
        #expect(first.hashValue == second.hashValue)
        #expect(first != GmemError(.invalidArgument, "one sentence"))
        #expect(Set([first, second]).count == 1)
    }

    @Test("a failed system call keeps its errno and names the call")
    func systemCallError() {
        let error = GmemError.systemCall("mmap", errno: EBADF)
        #expect(error.code == .badFileDescriptor)
        #expect(error.reason == "mmap: \(String(cString: strerror(EBADF)))")
    }

    @Test("an interrupted call is called again; other results come back as they are")
    func retryingOnInterrupt() {
        var calls = 0
        let result = SystemCall.retryingOnInterrupt { () -> Int32 in
            calls += 1
            if calls < 3 {
                errno = EINTR
                return -1
            }
            return 7
        }
        #expect(result == 7 && calls == 3)

        calls = 0
        let failed = SystemCall.retryingOnInterrupt { () -> Int in
            calls += 1
            errno = EAGAIN
            return -1
        }
        #expect(failed == -1 && calls == 1 && Errno.current == .tryAgain)
    }

    @Test("run throws a GmemError with the call's name and errno, after retrying EINTR")
    func runThrows() {
        var calls = 0
        let error = #expect(throws: GmemError.self) {
            _ = try SystemCall.run("read(fd 3)") { () -> Int in
                calls += 1
                errno = calls == 1 ? EINTR : EIO
                return -1
            }
        }
        #expect(calls == 2)
        #expect(error?.code == .ioError)
        #expect(error?.reason.hasPrefix("read(fd 3): ") == true)
        #expect((try? SystemCall.run("getpid") { getpid() }) == getpid())
    }

    @Test("wire statuses: -1 through -MAX_ERRNO are errors, the rest are not")
    func wireStatus() {
        #expect(Errno(wireStatus: -14) == .badAddress)
        #expect(Errno(wireStatus: -Errno.maxErrno)?.rawValue == Errno.maxErrno)
        #expect(Errno(wireStatus: -Errno.maxErrno - 1) == nil)
        #expect(Errno(wireStatus: 0) == nil)
        #expect(Errno.badAddress.wireStatus == -14)
    }
}
