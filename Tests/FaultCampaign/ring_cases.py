"""The fault campaign's ring cases (PROTOCOL.md section 10): clients killed with rings full of entries in flight,
and a client that stops consuming its completions."""
import os
import signal
import struct
import time

from gmemwire import READ, WRITE, GPC_READ, PING, Closed, RequestFailed, wait_until

PAGE = 4096


def _rings_gone(conn):
    return conn.stats().get("rings_active", 0) == 0


def case_ring_killed_clients(case, child_process):
    """Children set up rings, fill them with READs, WRITEs and GPC_READs on shared hot private pages, and are
    SIGKILLed at a random moment, mid-submission included. Every reference their rings and GPCs held goes."""
    daemon = case.start("--size", "16M", "--max-rings", "4")
    rounds = 10 if case.quick else 30
    hot = [20, 21, 22, 23]
    with daemon.connect() as observer:
        for round_number in range(rounds):
            case.iterations += 1
            pids = []
            for child in range(3):
                seed = case.rng.randrange(1 << 30)

                def body(seed=seed):
                    import random
                    rng = random.Random(seed)
                    with daemon.connect() as conn:
                        handle = conn.activate(hot[0] * PAGE, 64)
                        rings = [conn.ring(entries=64, data_size=1 << 20) for _ in range(rng.randrange(1, 4))]
                        while True:
                            for ring in rings:
                                entries = []
                                for slot in range(64):
                                    page = rng.choice(hot)
                                    kind = rng.randrange(3)
                                    if kind == 0:
                                        entries.append((slot, READ, 512, page * PAGE, slot * 4096, 0))
                                    elif kind == 1:
                                        entries.append((slot, WRITE, 8, page * PAGE + 2048, slot * 4096, 0))
                                    else:
                                        entries.append((slot, GPC_READ, 8, handle, slot * 4096, 0))
                                ring.submit(entries[:64 - (ring.tail - ring.head)])
                                ring.completions()
                pids.append(child_process(body))
            time.sleep(case.rng.uniform(0.01, 0.15))
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            for pid in pids:
                os.waitpid(pid, 0)
            if not wait_until(lambda: _rings_gone(observer), timeout=10):
                stats = observer.stats()
                return case.fail("round %d: %d rings still served 10 s after their clients died (%d connections open)"
                                 % (round_number, stats["rings_active"], stats["connections"]))
            if not case.expect(wait_until(lambda: observer.stats()["gpc_active"] == 0, timeout=10),
                               "round %d: GPCs left after their clients died" % round_number):
                return
            if round_number % 5 == 4:
                case.check_serves(daemon, "after round %d" % round_number)
    stats = case.check_serves(daemon, "after every round")
    if stats:
        case.notes.append("%d rounds, reads %d, writes %d, restores %d" % (
            rounds, stats["reads"], stats["writes"], stats["restores"]))


def case_ring_stalled_consumer(case, child_process):
    """A client fills its completion queue and stops consuming: its ring stalls, and only it. Another client's
    ring and the socket keep answering promptly; once the first client consumes again, its entries finish."""
    daemon = case.start("--size", "16M")
    with daemon.connect() as stalled, daemon.connect() as other:
        ring = stalled.ring(entries=8, data_size=1 << 16)
        # 8 completions fill the queue; 8 more entries wait behind them.
        ring.submit([(i, PING, 0, 0, 0, 0) for i in range(8)])
        wait_until(lambda: ring._word(ring.CQ_TAIL).value == 8, timeout=5)
        ring.submit([(8 + i, READ, 64, 30 * PAGE, i * 64, 0) for i in range(8)])
        other_ring = other.ring(entries=8, data_size=1 << 16)
        worst = 0.0
        for i in range(200):
            case.iterations += 1
            started = time.monotonic()
            other_ring.submit([(i, PING, 0, 0, 0, 0)])
            other_ring.wait(1)
            other.ping(b"x")
            worst = max(worst, time.monotonic() - started)
        case.expect(worst < 0.5, "another client waited %.3f s while one ring stalled" % worst)
        case.expect(ring._word(ring.CQ_TAIL).value == 8, "the stalled ring's queue overflowed")
        done = ring.wait(16)
        case.expect([c[0] for c in done] == list(range(16)), "the stalled entries completed out of order: %s" % done)
        case.expect(all(c[1] == 0 for c in done), "stalled entries failed: %s" % done)
        case.notes.append("worst round trip of the other client while one ring stalled: %.1f ms" % (worst * 1000))
        ring.close()
        other_ring.close()
    with daemon.connect() as observer:
        case.expect(wait_until(lambda: _rings_gone(observer), timeout=10), "rings left after their clients closed")
    case.check_serves(daemon, "afterwards")
