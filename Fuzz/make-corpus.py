#!/usr/bin/env python3
"""Writes the fuzz seed corpus (Fuzz/corpus) from the golden frames (proto/vectors/*.txt).

Every input starts with the harness's control prefix (see Fuzz/Sources/GmemFuzzHarness/FuzzInput.swift):
byte 0 chooses the memory, read-only, the harness's own HELLO, EVENTS, the frame-timeout jump and
max_payload; byte 1 and the u16s after it choose the split points of the stream.

Run it whenever proto/vectors changes; the generated files are committed. `--check` exits 1 when
Fuzz/corpus differs from what the vectors produce (Fuzz/run.sh uses it).
"""
import glob
import os
import random
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "Fuzz", "corpus")


def parse_vectors(text):
    """The frames of one vector file, in order: [(name, bytes)] (format at the top of frames.txt)."""
    frames = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if raw[0] not in " \t":
            name, _, rest = line.partition(":")
            frames.append((name, bytearray()))
            line = rest
        for token in line.split():
            frames[-1][1].append(int(token, 16))
    return [(name, bytes(data)) for name, data in frames]


def prefix(memory=3, read_only=False, auto_hello=True, events=True, timeout_after=None, max_payload=0, splits=()):
    """The control prefix: see FuzzInput.swift."""
    assert len(splits) < 16
    options = memory | (4 if read_only else 0) | (8 if auto_hello else 0) | (16 if events else 0)
    options |= (32 if timeout_after is not None else 0) | (max_payload << 6)
    out = bytes([options, len(splits) | ((timeout_after or 0) & 15) << 4])
    return out + b"".join(struct.pack("<H", s) for s in splits)


def hello(features=1, ident=0xFFFFFFF0):
    return struct.pack("<IHHIi", 24, 1, 0, ident, 0) + struct.pack("<II", 1, features)


def build(frames):
    named = dict(frames)
    out = {}
    requests = [(n, b) for n, b in frames if n.startswith("request.") and n not in
                ("request.hello", "request.hello_version_2", "request.read_before_hello")]
    invalid = [(n, b) for n, b in frames if n.startswith("invalid.")]

    # One request after the harness's HELLO, on the 4 MiB memory (the vectors' addresses fit it).
    for name, data in requests + invalid:
        out["single." + name.split(".", 1)[1]] = prefix() + data

    # A whole session in the order a client would use the golden requests.
    order = ["ping", "write", "read", "gpc_activate", "gpc_read", "gpc_write", "gpc_refresh", "page_state",
             "set_attributes", "gpc_read", "discard", "stats", "gpc_deactivate", "write_partial", "page_state"]
    session = b"".join(named["request." + n] for n in order if "request." + n in named)
    full = named.get("request.hello", hello())
    out["session.plain"] = prefix(auto_hello=False) + full + session
    for memory in range(4):
        out["session.memory%d" % memory] = prefix(memory=memory) + session
    out["session.read_only"] = prefix(read_only=True) + session
    out["session.no_events"] = prefix(events=False) + session
    out["session.small_payload"] = prefix(max_payload=2) + session
    out["session.1mib_payload"] = prefix(max_payload=3) + session
    out["session.bytewise"] = prefix(splits=[1] * 15) + session
    out["session.header_split"] = prefix(splits=[8, 8, 20, 3, 13]) + session
    out["session.empty_reads"] = prefix(splits=[0, 0, 24, 0]) + session
    rng = random.Random(6)
    for index in range(4):
        splits = sorted(rng.randrange(1, 64) for _ in range(rng.randrange(1, 15)))
        out["session.random_split%d" % index] = prefix(memory=index, splits=splits) + session
    # A frame left half-sent when the clock passes the frame timeout.
    out["session.timeout"] = prefix(timeout_after=1, splits=[24, 40]) + session

    # The refused first requests, without the harness's HELLO.
    for name in ("request.hello_version_2", "request.read_before_hello"):
        if name in named:
            out["first." + name.split(".", 1)[1]] = prefix(auto_hello=False) + named[name]
    out["first.hello_bad_size"] = prefix(auto_hello=False) + struct.pack("<IHHIi", 20, 1, 0, 7, 0) + b"\x01\x00\x00\x00" + hello()
    for name, data in invalid:
        if name.startswith("invalid.length"):
            out["first." + name.split(".", 1)[1]] = prefix(auto_hello=False) + data
    return out


def main():
    check = "--check" in sys.argv[1:]
    frames = []
    for path in sorted(glob.glob(os.path.join(ROOT, "proto", "vectors", "*.txt"))):
        with open(path, encoding="ascii") as f:
            frames += parse_vectors(f.read())
    if not frames:
        sys.exit("make-corpus: no frames under proto/vectors")
    corpus = build(frames)
    existing = {n for n in os.listdir(CORPUS) if not n.startswith(".")} if os.path.isdir(CORPUS) else set()
    if check:
        stale = sorted(n for n in corpus if n not in existing or open(os.path.join(CORPUS, n), "rb").read() != corpus[n])
        if stale:
            print("make-corpus: Fuzz/corpus is out of date with proto/vectors (%s); run Fuzz/make-corpus.py" % ", ".join(stale))
            sys.exit(1)
        print("make-corpus: Fuzz/corpus matches proto/vectors (%d inputs)" % len(corpus))
        return
    os.makedirs(CORPUS, exist_ok=True)
    for name, data in corpus.items():
        with open(os.path.join(CORPUS, name), "wb") as f:
            f.write(data)
    print("make-corpus: wrote %d inputs to Fuzz/corpus from %d golden frames" % (len(corpus), len(frames)))


if __name__ == "__main__":
    main()
