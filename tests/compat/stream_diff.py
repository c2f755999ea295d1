#!/usr/bin/env python3
"""Stream commands sent byte for byte to Herald and to a real redis-server started here;
every reply must be identical, byte for byte, in RESP2 and then in RESP3.

    python3 tests/compat/stream_diff.py --herald-port 6400

The commands use explicit IDs and avoid replies that carry clocks (idle times, delivery
times, auto IDs), so the two servers must agree exactly. Where Herald follows Redis 7.2 or
7.4 rather than the 7.0.15 on this machine, the command is left out and listed in
DELIBERATE with the reason. Prints "stream-diff: N passed, M failed" and exits non-zero on
any difference. The redis-server child is always stopped.
"""

import argparse
import socket
import subprocess
import sys
import time

# Left out on purpose: Herald's reply differs from Redis 7.0.15 by design.
DELIBERATE = {
    "XREAD STREAMS s +": "'+' (last entry) is Redis 7.4's; 7.0 says invalid ID",
    "XREAD STREAMS s nope 0": "7.2's text: Unbalanced 'xread' list ... (7.0: Unbalanced XREAD list)",
    "HELLO 3": "Herald reports Redis 7.2.4",
}

PROLOGUE = [
    'FLUSHALL',
    'XADD s 1-1 a 1',
    'XADD s 1-2 a 2 b 3',
    'XADD s 2-0 a 4',
    'XADD s MAXLEN',
    'XADD s MAXLEN 5',
    'XADD s MAXLEN ~ 5 LIMIT 0 3-0 a 1',
    'XADD s MINID 5 LIMIT 3 4-0 a b',
    'XADD s LIMIT 3 MAXLEN 5 5-0 a b',
    'XADD s NOMKSTREAM NOMKSTREAM 6-0 a b',
    'XADD s MAXLEN = 1 LIMIT 5 7-0 a b',
    'XADD s MAXLEN 1 MINID 1 8-0 a b',
    'XADD s foo 9-0 a b',
    'XADD s 10-0',
    'XADD s 18446744073709551615-18446744073709551615 a b',
    'XADD s 18446744073709551615-* a b',
    'XRANGE s - +',
    'XRANGE s - + COUNT 0',
    'XRANGE s - + COUNT -1',
    'XRANGE s - + COUNT',
    'XRANGE s + -',
    'XRANGE s (1-1 (2-0',
    'XRANGE s (- +',
    'XRANGE s - (+',
    'XRANGE s 1 1',
    'XREVRANGE s 1 -',
    'XREVRANGE s (2 -',
    'XLEN s',
    'XLEN nope',
    'XDEL s 1-1 1-1 99-0',
    'XDEL s bad',
    'XTRIM s MAXLEN 2',
    'XTRIM s MAXLEN ~ 0',
    'XTRIM s MINID = 2',
    'XTRIM s MINID ~ 2 LIMIT 1',
    'XTRIM s',
    'XTRIM s MAXLEN -1',
    'XTRIM s LIMIT 5',
    'XTRIM nope MAXLEN 0',
    'XSETID s 1-0',
    'XSETID s 18446744073709551615-18446744073709551615',
    'XSETID nope 1-0',
    'XSETID s 19446744073709551615-1',
    'XSETID s 5 ENTRIESADDED',
    'XINFO STREAM nope',
    'XINFO STREAM s FULL COUNT',
    'XINFO STREAM s FOO',
    'XINFO HELP',
    'XINFO FOO',
    'XINFO GROUPS nope',
    'XGROUP HELP',
    'XGROUP FOO',
    'XGROUP CREATE s g $',
    'XGROUP CREATE s g $',
    'XGROUP CREATE s g2 0 MKSTREAM ENTRIESREAD 3',
    'XGROUP CREATE s g3 0 FOO',
    'XGROUP CREATE s g4 -',
    'XGROUP CREATE s g4 +',
    'XGROUP CREATE nope g 0',
    'XGROUP CREATE nope2 g 0 MKSTREAM',
    'XGROUP SETID s g 0-0 ENTRIESREAD -1',
    'XGROUP SETID s g 0 MKSTREAM',
    'XGROUP SETID nope g 0',
    'XGROUP DESTROY s nog',
    'XGROUP DESTROY nope g',
    'XGROUP CREATECONSUMER s g alice',
    'XGROUP CREATECONSUMER s g alice',
    'XGROUP DELCONSUMER s g bob',
    'XINFO GROUPS s',
    'XREAD STREAMS s 0',
    'XREAD COUNT 1 STREAMS s 0',
    'XREAD STREAMS s $',
    'XREAD STREAMS s >',
    'XREAD STREAMS s',
    'XREAD STREAMS s nope 0 0',
    'XREAD BLOCK abc STREAMS s 0',
    'XREAD BLOCK -5 STREAMS s 0',
    'XREAD GROUP g c STREAMS s 0',
    'XREAD NOACK STREAMS s 0',
    'XREAD COUNT abc STREAMS s 0',
    'XREAD FOO STREAMS s 0',
    'XREADGROUP GROUP g alice STREAMS s >',
    'XREADGROUP GROUP g alice STREAMS s >',
    'XREADGROUP GROUP g alice STREAMS s 0',
    'XREADGROUP GROUP g alice STREAMS s $',
    'XREADGROUP GROUP g alice STREAMS s -',
    'XREADGROUP GROUP nog alice STREAMS s >',
    'XREADGROUP GROUP g alice STREAMS nope >',
    'XREADGROUP STREAMS s >',
    'XREADGROUP GROUP g alice STREAMS s',
    'XPENDING s g',
    'XPENDING s g - +',
    'XPENDING s g IDLE 0 - +',
    'XPENDING s g IDLE abc - + 10',
    'XPENDING s g - + abc',
    'XPENDING s g (- + 10',
    'XPENDING s nog',
    'XACK s g 1-2 1-2',
    'XACK s nog 1-2',
    'XACK s g bad',
    'XCLAIM s g bob 0 2-0 JUSTID',
    'XCLAIM s g bob abc 2-0',
    'XCLAIM s g bob 0 2-0 FOO',
    'XCLAIM s g bob 0 2-0 IDLE abc',
    'XCLAIM s g bob 0 2-0 TIME abc',
    'XCLAIM s g bob 0 2-0 RETRYCOUNT abc',
    'XCLAIM s g bob 0 2-0 LASTID abc',
    'XCLAIM s g bob 0 2-0 JUSTID LASTID 99-0',
    'XCLAIM s nog bob 0 2-0',
    'XCLAIM s g bob 0 99-0 FORCE JUSTID',
    'XAUTOCLAIM s g carol 0 0 JUSTID',
    'XAUTOCLAIM s g carol 0 0 COUNT 0',
    'XAUTOCLAIM s g carol abc 0',
    'XAUTOCLAIM s g carol 0 abc',
    'XAUTOCLAIM s g carol 0 0 FOO',
    'XAUTOCLAIM s g carol 0 (18446744073709551615-18446744073709551615',
    'XAUTOCLAIM s nog carol 0 0',
    'XINFO GROUPS s',
    'XGROUP DELCONSUMER s g alice',
    'XGROUP DESTROY s g',
    'XINFO GROUPS s',
    'SET str x',
    'XADD str * a b',
    'XLEN str',
    'XRANGE str - +',
    'XREAD STREAMS str 0',
    'XGROUP CREATE str g 0',
    'XACK str g 1-0',
    'XPENDING str g',
    'TYPE s',
    'XRANGE s - + COUNT 1',
    'XREAD STREAMS s 0',
    'XINFO GROUPS nope2',
    'XPENDING nope2 g',
]

TRIM_BLOCKS = [
    'XTRIM t MAXLEN ~ 120',
    'XLEN t',
    'XTRIM t MAXLEN ~ 10 LIMIT 50',
    'XLEN t',
    'XTRIM t MAXLEN ~ 10 LIMIT 100',
    'XLEN t',
    'XTRIM t MINID ~ 230',
    'XLEN t',
    'XTRIM t MINID 230',
    'XRANGE t - + COUNT 2',
    'XDEL t 230-0 231-0',
    'XINFO STREAM t',
    'XLEN t',
]

GROUPS = [
    'XLEN t',
    'XGROUP CREATE t g 0',
    'XREADGROUP GROUP g a COUNT 2 STREAMS t 0',
    'XREADGROUP GROUP g a COUNT 2 STREAMS t >',
    'XREADGROUP GROUP g b COUNT 1 NOACK STREAMS t >',
    'XINFO GROUPS t',
    'XCLAIM t g c 0 397-0 398-0 JUSTID',
    'XCLAIM t g c 0 397-0 FORCE RETRYCOUNT 5 JUSTID',
    'XCLAIM t g c 0 1-0 FORCE JUSTID',
    'XADD t 500-0 x y',
    'XCLAIM t g c 0 500-0 FORCE JUSTID',
    'XDEL t 500-0',
    'XREADGROUP GROUP g c STREAMS t 0',
    'XAUTOCLAIM t g d 0 0 COUNT 1 JUSTID',
    'XAUTOCLAIM t g d 0 0 COUNT 5 JUSTID',
    'XINFO CONSUMERS t nope',
    'XGROUP DELCONSUMER t g c',
    'XINFO GROUPS t',
    'XSETID t 999-0 ENTRIESADDED 9999 MAXDELETEDID 998-0',
    'XINFO GROUPS t',
    'XADD e 1-0 a b',
    'XDEL e 1-0',
    'XINFO STREAM e',
    'XREVRANGE e + -',
    'XGROUP CREATE e g $',
    'XINFO GROUPS e',
    'XADD e 2-0 a b',
    'XINFO GROUPS e',
    'XREADGROUP GROUP g x STREAMS e >',
    'XINFO GROUPS e',
]


def commands():
    yield from PROLOGUE
    yield "FLUSHALL"
    for i in range(1, 251):
        yield f"XADD t {i}-0 f v{i}"
    yield from TRIM_BLOCKS
    for i in range(251, 400):
        yield f"XADD t MAXLEN ~ 50 {i}-0 f v{i}"
    yield from GROUPS


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_redis():
    port = free_port()
    child = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.sendall(b"PING\r\n")
                if probe.recv(16).startswith(b"+PONG"):
                    return child, port
        except OSError:
            time.sleep(0.05)
    child.kill()
    raise SystemExit("redis-server (for the comparison) did not start")


class Conn:
    """A raw RESP connection that reads exactly one reply per command."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in b"$=!" and rest != b"-1":
            return line + b"\r\n" + self._exact(int(rest)) + b"\r\n"
        if kind in b"*~>" and rest != b"-1":
            return line + b"\r\n" + b"".join(self.reply() for _ in range(int(rest)))
        if kind == b"%":
            return line + b"\r\n" + b"".join(self.reply() for _ in range(2 * int(rest)))
        return line + b"\r\n"

    def run(self, command):
        parts = command.split(" ")
        frame = b"*%d\r\n" % len(parts) + b"".join(
            b"$%d\r\n%s\r\n" % (len(p), p.encode()) for p in parts
        )
        self.sock.sendall(frame)
        return self.reply()


def against_redis(name, compare):
    """Runs `compare(redis_port)` -> (passed, failed) with a redis-server started for it
    (always stopped after), prints "<name>: N passed, M failed" and returns the exit code."""
    child, redis_port = start_redis()
    try:
        passed, failed = compare(redis_port)
    finally:
        child.terminate()
        child.wait(timeout=10)
    print(f"{name}: {passed} passed, {failed} failed")
    return 1 if failed else 0


def compare_streams(herald_port, redis_port):
    passed = failed = 0
    for protocol in (2, 3):
        herald, real = Conn(herald_port), Conn(redis_port)
        if protocol == 3:
            herald.run("HELLO 3")
            real.run("HELLO 3")
        for command in commands():
            if command in DELIBERATE:
                continue
            got, want = herald.run(command), real.run(command)
            if got == want:
                passed += 1
            else:
                failed += 1
                print(f"stream-diff: RESP{protocol} {command!r}: redis {want[:400]!r}, herald {got[:400]!r}")
    return passed, failed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--herald-port", type=int, required=True)
    args = parser.parse_args()
    return against_redis("stream-diff", lambda redis_port: compare_streams(args.herald_port, redis_port))


if __name__ == "__main__":
    sys.exit(main())
