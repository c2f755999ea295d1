#!/usr/bin/env python3
"""MONITOR compared with a real redis-server started here: the same commands, sent by a
client to each server while a monitor watches, must show the same monitor lines (time
stamps and client addresses aside), and the monitor's own commands must get the same
replies.

    python3 tests/compat/monitor_diff.py --herald-port 6400

Covers what MONITOR shows and hides (administrative commands, refused and queued ones,
transactions, blocking pops, redacted secrets, escaping, the database after SELECT) and
what a monitor may not do (touch the keyspace, PUBLISH). Prints "monitor-diff: N passed,
M failed" and exits non-zero on any difference. The redis-server child is always stopped.
"""

import argparse
import re
import sys

from stream_diff import Conn, against_redis

# Sent by the watched client, one at a time, each reply read before the next.
WATCHED = [
    [b"FLUSHALL"],
    [b"SET", b"k", b"v"],
    [b"GET", b"k"],
    [b"GET"],
    [b"NOSUCHCOMMAND", b"x"],
    [b"CONFIG", b"GET", b"maxclients"],
    [b"CLIENT", b"ID"],
    [b"CLIENT", b"LIST"],
    [b"GET", b'quote"back\\slash'],
    [b"GET", b"ctrl\n\r\t\x07\x08"],
    [b"GET", b"bin\x00\x92\xff"],
    [b"AUTH", b"not-set"],
    [b"HELLO", b"2", b"AUTH", b"default", b"wrong"],
    [b"SELECT", b"3"],
    [b"RPUSH", b"list", b"a", b"b"],
    [b"SELECT", b"0"],
    [b"MULTI"],
    [b"INCR", b"n"],
    [b"HSET", b"h", b"f", b"v"],
    [b"EXEC"],
    [b"MULTI"],
    [b"GET"],
    [b"EXEC"],
    [b"BLPOP", b"empty", b"0.01"],
    [b"PUBLISH", b"news", b"hello"],
    [b"EXPIRE", b"k", b"100"],
    [b"BGREWRITEAOF"],
    [b"ECHO", b"monitor-diff-end"],
]

# Sent by the monitor itself, after MONITOR.
OWN = [
    [b"GET", b"k"],
    [b"PUBLISH", b"news", b"x"],
    [b"PING"],
    [b"ECHO", b"own"],
]

LINE = re.compile(rb"^\+(\d+)\.(\d{6}) \[(\d+) ([^\]]+)\] (.*)$")


class Raw(Conn):
    def send(self, args):
        frame = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        self.sock.sendall(frame)
        return self.reply()

    def line(self):
        return self._line()


def watch(port):
    """What the monitor of the server at `port` shows, normalised, and its own replies."""
    monitor, client = Raw(port), Raw(port)
    client_addr = "%s:%d" % client.sock.getsockname()[:2]
    monitor_addr = "%s:%d" % monitor.sock.getsockname()[:2]
    assert monitor.send([b"MONITOR"]) == b"+OK\r\n"
    for args in WATCHED:
        client.send(args)
    shown = []
    while True:
        line = monitor.line()
        match = LINE.match(line)
        if not match:
            shown.append(b"not a monitor line: " + line)
            break
        _, _, db, addr, rest = match.groups()
        who = {client_addr: b"client", monitor_addr: b"monitor"}.get(addr.decode(), b"other")
        shown.append(b"[%s %s] %s" % (db, who, rest))
        if rest == b'"ECHO" "monitor-diff-end"':
            break
    own = []
    for args in OWN:
        own.append(monitor.send(args))
        if args[0] in (b"PING", b"ECHO"):
            # Shown to the monitor itself, after its reply (the others are refused).
            own.append(LINE.sub(rb"[\3 monitor] \5", monitor.line()))
    return shown, own


def compare_monitors(herald_port, redis_port):
    passed = failed = 0
    got_shown, got_own = watch(herald_port)
    want_shown, want_own = watch(redis_port)
    for name, got, want in (("shown", got_shown, want_shown), ("own", got_own, want_own)):
        for index in range(max(len(got), len(want))):
            mine = got[index] if index < len(got) else None
            theirs = want[index] if index < len(want) else None
            if mine == theirs:
                passed += 1
            else:
                failed += 1
                print(f"monitor-diff: {name} #{index}: redis {theirs!r}, herald {mine!r}")
    return passed, failed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--herald-port", type=int, required=True)
    args = parser.parse_args()
    return against_redis("monitor-diff", lambda redis_port: compare_monitors(args.herald_port, redis_port))


if __name__ == "__main__":
    sys.exit(main())
