"""A minimal gmemd wire protocol v1 client (proto/PROTOCOL.md) and daemon inspection, for the fault campaign.

Written from the protocol document alone, independently of the Swift codec. Every frame received is checked:
length >= 16, flags REPLY or EVENT, status 0 or a negative errno >= -4095, replies in request order.
"""
import ctypes
import errno
import mmap
import os
import select
import signal
import socket
import struct
import subprocess
import tempfile
import time
from array import array

HELLO, PING, READ, WRITE, GPC_ACTIVATE, GPC_DEACTIVATE, GPC_READ, GPC_WRITE, GPC_REFRESH, SET_ATTRIBUTES, \
    DISCARD, STATS, PAGE_STATE = range(1, 14)
READV, WRITEV, ATOMIC, GPC_ATOMIC, RING_SETUP, RING_CLOSE = range(14, 20)
GPC_INVALIDATED, RING_FAILED = 0x80, 0x81
REPLY, EVENT = 1, 2
PRIVATE = 8
HEADER = struct.Struct("<IHHIi")


class ProtocolViolation(Exception):
    """The daemon sent something the protocol forbids."""


class Closed(Exception):
    """The daemon closed the connection."""


class RequestFailed(Exception):
    def __init__(self, opcode, status, payload=b""):
        super().__init__("opcode %d failed with %s" % (opcode, errname(status)))
        self.opcode, self.status, self.payload = opcode, status, payload


def errname(status):
    if status == 0:
        return "0"
    return "-" + errno.errorcode.get(-status, str(-status))


def frame(opcode, payload=b"", ident=0, flags=0, status=0):
    return HEADER.pack(16 + len(payload), opcode, flags, ident, status) + payload


class Conn:
    """One connection. `call` sends a request and returns (status, payload); `pipeline` sends many at once."""

    def __init__(self, path, hello=True, events=False, timeout=15.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.sock.connect(path)
        self.buffer = bytearray()
        self.fds = []  # descriptors that came with received bytes (RING_SETUP's reply)
        self.next_id = 1
        self.events = []
        self.hello = None
        if hello:
            status, payload = self.call(HELLO, struct.pack("<II", 1, 1 if events else 0))
            if status != 0:
                raise RequestFailed(HELLO, status, payload)
            fields = struct.unpack("<IIIIQQIIII", payload)
            self.hello = dict(zip(("version", "features", "page_size", "folio_size", "region_size", "region_id",
                                   "max_payload", "max_gpcs", "region_flags", "reserved"), fields))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, opcode, payload=b""):
        ident = self.next_id
        self.next_id = (self.next_id + 1) & 0xFFFFFFFF or 1
        self.sock.sendall(frame(opcode, payload, ident))
        return ident

    def _fill(self, count):
        while len(self.buffer) < count:
            # recvmsg, not recv: a plain read of RING_SETUP's reply would discard its descriptors.
            data, ancillary, _, _ = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(8 * 4))
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    self.fds += array("i", payload[:len(payload) - len(payload) % 4])
            if not data:
                raise Closed("the daemon closed the connection")
            self.buffer += data

    def recv_frame(self):
        self._fill(16)
        length, opcode, flags, ident, status = HEADER.unpack_from(self.buffer)
        if length < 16 or (self.hello and length > 16 + self.hello["max_payload"]) or length > 16 + (64 << 20):
            raise ProtocolViolation("a frame of length %d" % length)
        if flags not in (REPLY, EVENT):
            raise ProtocolViolation("frame flags %d" % flags)
        if status != 0 and not -4095 <= status <= -1:
            raise ProtocolViolation("status %d" % status)
        self._fill(length)
        payload = bytes(self.buffer[16:length])
        del self.buffer[:length]
        return opcode, flags, ident, status, payload

    def recv_reply(self, opcode, ident):
        while True:
            op, flags, rid, status, payload = self.recv_frame()
            if flags == EVENT:
                if op not in (GPC_INVALIDATED, RING_FAILED) or rid != 0 or status != 0 or len(payload) != 16:
                    raise ProtocolViolation("a malformed event (opcode %d, id %d, %d bytes)" % (op, rid, len(payload)))
                self.events.append(struct.unpack("<QII", payload))
                continue
            if op != opcode or rid != ident:
                raise ProtocolViolation("reply (opcode %d, id %d) to request (opcode %d, id %d)" % (op, rid, opcode, ident))
            return status, payload

    def call(self, opcode, payload=b""):
        return self.recv_reply(opcode, self.send(opcode, payload))

    def pipeline(self, requests, batch=256):
        """Sends requests (opcode, payload) in batches without waiting; returns [(status, payload)] in order."""
        results = []
        for start in range(0, len(requests), batch):
            chunk = requests[start:start + batch]
            ids = []
            data = bytearray()
            for opcode, payload in chunk:
                ident = self.next_id
                self.next_id = (self.next_id + 1) & 0xFFFFFFFF or 1
                ids.append((opcode, ident))
                data += frame(opcode, payload, ident)
            self._send_while_reading(bytes(data))
            for opcode, ident in ids:
                results.append(self.recv_reply(opcode, ident))
        return results

    def _send_while_reading(self, data):
        """Sends data while buffering whatever the daemon answers: the daemon stops reading while its replies
        wait to be read (backpressure), so a client that only sends would deadlock with it."""
        view = memoryview(data)
        sent = 0
        deadline = time.monotonic() + self.timeout
        self.sock.setblocking(False)
        try:
            while sent < len(view):
                remaining = deadline - time.monotonic()
                readable, writable, _ = select.select([self.sock], [self.sock], [], max(0.0, remaining))
                if not readable and not writable:
                    raise TimeoutError("the daemon neither reads nor answers")
                if readable:
                    chunk = self.sock.recv(1 << 20)
                    if not chunk:
                        raise Closed("the daemon closed the connection")
                    self.buffer += chunk
                if writable:
                    try:
                        sent += self.sock.send(view[sent:sent + (1 << 20)])
                    except BlockingIOError:
                        pass
                    deadline = time.monotonic() + self.timeout
        finally:
            self.sock.settimeout(self.timeout)

    def ok(self, opcode, payload=b""):
        status, reply = self.call(opcode, payload)
        if status != 0:
            raise RequestFailed(opcode, status, reply)
        return reply

    # Operations (section 5)
    def ping(self, data=b""):
        return self.ok(PING, data)

    def read(self, gpa, length):
        return self.ok(READ, struct.pack("<QII", gpa, length, 0))

    def write(self, gpa, data):
        self.ok(WRITE, struct.pack("<QII", gpa, len(data), 0) + data)

    def activate(self, gpa, length):
        return struct.unpack("<Q", self.ok(GPC_ACTIVATE, struct.pack("<QII", gpa, length, 0)))[0]

    def deactivate(self, handle):
        self.ok(GPC_DEACTIVATE, struct.pack("<Q", handle))

    def set_attributes(self, gpa, size, private):
        self.ok(SET_ATTRIBUTES, struct.pack("<QQQ", gpa, size, PRIVATE if private else 0))

    def discard(self, gpa, size):
        self.ok(DISCARD, struct.pack("<QQ", gpa, size))

    def stats(self):
        payload = self.ok(STATS)
        values, offset = {}, 0
        while offset < len(payload):
            n = payload[offset]
            name = payload[offset + 1:offset + 1 + n].decode("ascii")
            values[name] = struct.unpack_from("<Q", payload, offset + 1 + n)[0]
            offset += 1 + n + 8
        return values

    def page_states(self, first_page, count):
        """array of u32 per page: refcount | state << 16 (bit 16 PRIVATE, bit 17 ACCESSIBLE)."""
        page_size = self.hello["page_size"]
        per_request = self.hello["max_payload"] // 4
        requests = []
        page = first_page
        while page < first_page + count:
            n = min(per_request, first_page + count - page)
            requests.append((PAGE_STATE, struct.pack("<QII", page * page_size, n, 0)))
            page += n
        states = array("I")
        for status, payload in self.pipeline(requests, batch=8):
            if status != 0:
                raise RequestFailed(PAGE_STATE, status)
            states.frombytes(payload)
        return states


    def ring(self, entries=64, data_size=1 << 20):
        """RING_SETUP, and the ring mapped (section 10)."""
        status, payload = self.call(RING_SETUP, struct.pack("<IIQ", entries, 0, data_size))
        if status != 0:
            raise RequestFailed(RING_SETUP, status, payload)
        ring_id, entries, data_size, mmap_size = struct.unpack("<IIQQ", payload)
        if len(self.fds) < 3:
            raise ProtocolViolation("RING_SETUP's reply came with %d descriptors" % len(self.fds))
        fds, self.fds = self.fds[:3], self.fds[3:]
        return Ring(ring_id, entries, data_size, mmap_size, fds)


class Ring:
    """The client side of a ring. It always rings the submit doorbell (allowed: an extra doorbell is harmless), so
    it needs no full barrier, which Python cannot issue; index words are written with one 4-byte store each."""

    SQ_TAIL, SQ_HEAD, CQ_TAIL, CQ_HEAD = 64, 128, 192, 256

    def __init__(self, ring_id, entries, data_size, mmap_size, fds):
        self.ring_id, self.entries, self.data_size = ring_id, entries, data_size
        self.memfd, self.submit_bell, self.complete_bell = fds
        self.map = mmap.mmap(self.memfd, mmap_size)
        self.sq = 4096
        self.cq = self.sq + -(-entries * 64 // 4096) * 4096
        self.data = self.cq + -(-entries * 32 // 4096) * 4096
        self.tail = 0
        self.head = 0

    def _word(self, offset):
        return ctypes.c_uint32.from_buffer(self.map, offset)

    def submit(self, entries):
        """entries: [(cookie, opcode, length, addr, data, aux)]."""
        for cookie, opcode, length, addr, data, aux in entries:
            slot = self.sq + (self.tail % self.entries) * 64
            self.map[slot:slot + 64] = struct.pack("<QHHIQQQQQBB6x", cookie, opcode, 0, length, addr, data, aux, 0, 0, 0, 0)
            self.tail = (self.tail + 1) & 0xFFFFFFFF
        self._word(self.SQ_TAIL).value = self.tail
        os.write(self.submit_bell, struct.pack("<Q", 1))

    def completions(self):
        """Every completion available now: [(cookie, status, length)]."""
        tail = self._word(self.CQ_TAIL).value
        done = []
        while self.head != tail:
            slot = self.cq + (self.head % self.entries) * 32
            cookie, status, length = struct.unpack_from("<QiI", self.map, slot)
            done.append((cookie, status, length))
            self.head = (self.head + 1) & 0xFFFFFFFF
        self._word(self.CQ_HEAD).value = self.head
        return done

    def wait(self, count, timeout=5.0):
        done = []
        deadline = time.monotonic() + timeout
        while len(done) < count:
            done += self.completions()
            if time.monotonic() > deadline:
                raise TimeoutError("ring %d: %d of %d completions" % (self.ring_id, len(done), count))
            if len(done) < count:
                time.sleep(0.0005)
        return done

    def close(self):
        self.map.close()
        for fd in (self.memfd, self.submit_bell, self.complete_bell):
            os.close(fd)


class Daemon:
    """A gmemd process on a socket in a private directory."""

    def __init__(self, binary, *args, name="gmemd"):
        self.directory = tempfile.mkdtemp(prefix="gmem-campaign-")
        self.socket = os.path.join(self.directory, "gmemd.sock")
        self.log_path = os.path.join(self.directory, name + ".log")
        self.log = open(self.log_path, "wb")
        self.args = [binary, "--socket", self.socket, "--log-level", "notice"] + [str(a) for a in args]
        self.process = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("gmemd exited with status %s at start: %s" % (self.process.returncode, self.output()))
            try:
                with Conn(self.socket, timeout=5) as conn:
                    self.hello = conn.hello
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise RuntimeError("gmemd did not serve within 30 s")
                time.sleep(0.02)

    def connect(self, **kw):
        return Conn(self.socket, **kw)

    def alive(self):
        return self.process.poll() is None

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def stop(self):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return None
        return self.process.returncode

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def memory_status(self):
        """VmRSS and RssShmem of the daemon, in KiB."""
        values = {}
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssShmem", "RssAnon"):
                    values[key] = int(rest.split()[0])
        return values

    def guest_mapping(self):
        """[(first_page, end_page, accessible)] of the /memfd:gmemd-guest mapping, from /proc/PID/maps."""
        page_size = self.hello["page_size"]
        runs = []
        with open("/proc/%d/maps" % self.pid) as f:
            for line in f:
                if "/memfd:gmemd-guest" not in line:
                    continue
                fields = line.split()
                start, end = (int(x, 16) for x in fields[0].split("-"))
                perms, offset = fields[1], int(fields[2], 16)
                if perms[:3] not in ("rw-", "---"):
                    raise ProtocolViolation("the guest mapping has protections %s" % perms)
                runs.append((offset // page_size, (offset + end - start) // page_size, perms[:3] == "rw-"))
        runs.sort()
        return runs


def check_invariant(daemon, conn, first_page=0, count=None, expect_unreferenced=False):
    """Compares PAGE_STATE with /proc/PID/maps and checks private => (accessible <=> count > 0),
    shared => accessible, for pages [first_page, first_page + count). Returns a list of problems (empty if fine).
    Call it at quiescence (no request in flight on any connection)."""
    if count is None:
        count = daemon.hello["region_size"] // daemon.hello["page_size"]
    states = conn.page_states(first_page, count)
    runs = daemon.guest_mapping()
    problems = []
    covered = 0
    for start, end, accessible in runs:
        lo, hi = max(start, first_page), min(end, first_page + count)
        if lo >= hi:
            continue
        covered += hi - lo
        want = 1 if accessible else 0
        for index in range(lo - first_page, hi - first_page):
            value = states[index]
            refcount, state = value & 0xFFFF, (value >> 16) & 0xFF
            private, reported = state & 1, (state >> 1) & 1
            if reported != want:
                problems.append("page %d: PAGE_STATE says %s, /proc/PID/maps says %s" % (
                    first_page + index, "accessible" if reported else "inaccessible", "rw-" if want else "---"))
            elif private and bool(reported) != (refcount > 0):
                problems.append("page %d: private, refcount %d, accessible %d" % (first_page + index, refcount, reported))
            elif not private and not reported:
                problems.append("page %d: shared but inaccessible" % (first_page + index))
            elif expect_unreferenced and refcount != 0:
                problems.append("page %d: refcount %d with no user left" % (first_page + index, refcount))
            if len(problems) >= 8:
                return problems
    if covered != count:
        problems.append("/proc/PID/maps covers %d of the %d pages checked" % (covered, count))
    return problems


def wait_until(predicate, timeout=5.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
