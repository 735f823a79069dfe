//===----------------------------------------------------------------------===//
//
// This source file is part of the gmemd open source project
//
// PythonClients: clients that must be separate processes, as python3 scripts.
//
//===----------------------------------------------------------------------===//

import GmemTesting

#if canImport(Glibc)
import Glibc
#endif

/// Clients that cannot run inside the test process: one that changes its credentials before connecting (the daemon
/// reads SO_PEERCRED at accept), and one that is killed with SIGKILL while it holds GPCs. They are small python3
/// scripts using only `socket` and `struct`, run with `python3 -c`; each reports on standard output.
enum PythonClients {
    /// The interpreter, or `nil` if the machine has none (the tests that need it are then disabled).
    static let python3 = ExecutableLocator.python3()

    /// Whether the process runs as root, which the credential tests need to switch to another uid.
    static var isRoot: Bool { getuid() == 0 }

    /// `recv_exact(n)` for the scripts below, on their socket `s`: exits 3 if the daemon closes mid-frame.
    static let receiveExactly = #"""
        def recv_exact(n):
            data = b''
            while len(data) < n:
                chunk = s.recv(n - len(data))
                if not chunk:
                    print('closed-mid-frame', len(data)); sys.exit(3)
                data += chunk
            return data
        """#

    /// Switches to uid and gid 65534 (nobody), connects to `argv[1]` and sends HELLO, printing its reply as
    /// `hello <hex>`. On success it prints `flags <region_flags>`, then sends a 4-byte WRITE and a PING and prints
    /// `write <status>` and `ping <status>`. Last it prints `eof` if the daemon closes the connection (within 1 s
    /// when admitted, 5 s when refused), else `open`.
    static let unprivilegedHello = #"""
        import os, socket, struct, sys
        sys.stderr = sys.stdout
        # argv[2], if given: the supplementary groups, comma-separated.
        os.setgroups([int(g) for g in sys.argv[2].split(',')] if len(sys.argv) > 2 and sys.argv[2] else [])
        os.setgid(65534)
        os.setuid(65534)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(sys.argv[1])

        \#(receiveExactly)

        def frame():
            header = recv_exact(16)
            length = struct.unpack_from('<I', header)[0]
            return header + recv_exact(length - 16)

        s.sendall(struct.pack('<IHHIiII', 24, 1, 0, 7, 0, 1, 0))
        reply = frame()
        print('uid', os.getuid(), 'gid', os.getgid())
        print('hello', reply.hex())
        status = struct.unpack_from('<i', reply, 12)[0]
        if status == 0:
            print('flags', struct.unpack_from('<I', reply, 16 + 40)[0])
            s.sendall(struct.pack('<IHHIi', 36, 4, 0, 9, 0) + struct.pack('<QII', 0, 4, 0) + b'wxyz')
            print('write', struct.unpack_from('<i', frame(), 12)[0])
            s.sendall(struct.pack('<IHHIi', 20, 2, 0, 8, 0) + b'abcd')
            ping = frame()
            print('ping', struct.unpack_from('<i', ping, 12)[0])
        if status == 0:
            s.settimeout(1)  # An admitted connection stays open: do not wait long to see it.
        try:
            print('eof' if s.recv(1) == b'' else 'data')
        except ConnectionResetError:
            print('eof')
        except socket.timeout:
            print('open')
        sys.stdout.flush()
        """#

    /// Connects to `argv[1]`, sends HELLO, activates a 64-byte GPC at each gpa of the comma-separated `argv[2]`,
    /// then leaves a WRITE frame half-sent and prints `ready <handles>`; then it waits to be killed.
    static let gpcHolder = #"""
        import signal, socket, struct, sys
        sys.stderr = sys.stdout
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(sys.argv[1])

        \#(receiveExactly)

        def call(opcode, rid, payload):
            s.sendall(struct.pack('<IHHIi', 16 + len(payload), opcode, 0, rid, 0) + payload)
            length, op, flags, got, status = struct.unpack('<IHHIi', recv_exact(16))
            body = recv_exact(length - 16)
            if status != 0 or got != rid:
                print('failed', opcode, status); sys.exit(4)
            return body

        call(1, 1, struct.pack('<II', 1, 0))
        handles = []
        for index, text in enumerate(sys.argv[2].split(',')):
            body = call(5, 10 + index, struct.pack('<QII', int(text, 0), 64, 0))
            handles.append(struct.unpack('<Q', body)[0])
        first = int(sys.argv[2].split(',')[0], 0)
        s.sendall(struct.pack('<IHHIi', 16 + 16 + 4096, 4, 0, 99, 0) + struct.pack('<QII', first, 4096, 0) + b'\xab' * 100)
        print('ready', ','.join(str(h) for h in handles), flush=True)
        while True:
            signal.pause()
        """#

    /// Connects to `argv[1]` and adds 1 to the u64 at `argv[2]` `argv[3]` times with FETCH_ADD, by address
    /// (`argv[4]` = `atomic`, ATOMIC) or through a GPC on it (`gpc`, GPC_ATOMIC), 64 requests in flight at a time.
    /// Prints `done <count>` when every reply succeeded, else `failed <status>` and exits 1.
    static let fetchAdder = #"""
        import socket, struct, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(sys.argv[1])
        gpa, count, mode = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

        \#(receiveExactly)

        def reply():
            header = recv_exact(16)
            length, status = struct.unpack_from('<I', header)[0], struct.unpack_from('<i', header, 12)[0]
            payload = recv_exact(length - 16)
            if status != 0:
                print('failed', status, flush=True); sys.exit(1)
            return payload

        s.sendall(struct.pack('<IHHIiII', 24, 1, 0, 1, 0, 1, 0))
        reply()
        if mode == 'gpc':
            s.sendall(struct.pack('<IHHIiQII', 32, 5, 0, 2, 0, gpa, 8, 0))
            handle = struct.unpack('<Q', reply())[0]
            frame = struct.pack('<IHHIiQQQIBBH', 48, 17, 0, 3, 0, handle, 1, 0, 0, 4, 8, 0)
        else:
            frame = struct.pack('<IHHIiQQQBBHI', 48, 16, 0, 3, 0, gpa, 1, 0, 4, 8, 0, 0)
        done = 0
        while done < count:
            batch = min(64, count - done)
            s.sendall(frame * batch)
            for _ in range(batch):
                reply()
            done += batch
        print('done', done, flush=True)
        """#
}
