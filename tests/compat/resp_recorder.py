#!/usr/bin/env python3
"""Recording TCP proxy for RESP: logs every command a client sends to a server.

Not part of `scripts/test`; a tool for finding out which commands (and which
subcommands and options) a client or a test suite really sends, including
commands the server rejects (unknown, wrong context), which MONITOR never shows.

    python3 tests/compat/resp_recorder.py --listen 0 --target 127.0.0.1:6400 --log cmds.jsonl
    # prints "LISTENING <port>" on stdout; point the client at that port.

Each log line is JSON: {"conn": N, "argv": [...]} with arguments decoded as
latin-1 and cut to 80 characters. Connection close on either side closes the
other side, so server-side kills (CLIENT KILL) reach the client.
Summarise a log with --summarise cmds.jsonl.
"""

import argparse
import asyncio
import collections
import json
import sys

MAX_ARG = 80


class RequestParser:
    """Incremental parser for client requests (multibulk and inline)."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            cmd = self._one()
            if cmd is None:
                return out
            if cmd:
                out.append(cmd)

    def _one(self):
        b = self.buf
        if not b:
            return None
        if b[0:1] == b"*":
            nl = b.find(b"\r\n")
            if nl < 0:
                return None
            n = int(b[1:nl])
            pos = nl + 2
            argv = []
            for _ in range(max(n, 0)):
                nl = b.find(b"\r\n", pos)
                if nl < 0:
                    return None
                if b[pos:pos + 1] != b"$":
                    raise ValueError("bad multibulk")
                ln = int(b[pos + 1:nl])
                start = nl + 2
                if len(b) < start + ln + 2:
                    return None
                argv.append(bytes(b[start:start + ln]))
                pos = start + ln + 2
            del b[:pos]
            return argv
        nl = b.find(b"\n")
        if nl < 0:
            return None
        line = bytes(b[:nl]).rstrip(b"\r")
        del b[:nl + 1]
        return line.split()


async def pipe(reader, writer, on_data=None):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if on_data:
                on_data(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def serve(args):
    host, port = args.target.rsplit(":", 1)
    log = open(args.log, "a", buffering=1)
    counter = [0]

    async def handle(creader, cwriter):
        counter[0] += 1
        conn = counter[0]
        try:
            sreader, swriter = await asyncio.open_connection(host, int(port))
        except OSError:
            cwriter.close()
            return
        parser = RequestParser()

        def record(data):
            try:
                for argv in parser.feed(data):
                    enc = [a.decode("latin-1")[:MAX_ARG] for a in argv]
                    log.write(json.dumps({"conn": conn, "argv": enc}) + "\n")
            except ValueError:
                log.write(json.dumps({"conn": conn, "argv": ["<unparsable>"]}) + "\n")

        await asyncio.gather(
            pipe(creader, swriter, record), pipe(sreader, cwriter)
        )

    server = await asyncio.start_server(handle, "127.0.0.1", args.listen)
    print("LISTENING", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


CONTAINERS = {
    "CLIENT", "CONFIG", "PUBSUB", "COMMAND", "FUNCTION", "DEBUG", "MODULE",
    "ACL", "OBJECT", "MEMORY", "SCRIPT", "CLUSTER", "XINFO", "XGROUP",
    "LATENCY", "SLOWLOG", "MONITOR",
}


def summarise(path):
    sigs = collections.Counter()
    examples = {}
    for line in open(path):
        argv = json.loads(line)["argv"]
        if not argv:
            continue
        name = argv[0].upper()
        sig = name
        if name in CONTAINERS and len(argv) > 1:
            sig = f"{name} {argv[1].upper()}"
        sigs[sig] += 1
        examples.setdefault(sig, set())
        if len(examples[sig]) < 6:
            shown = " ".join(a.encode("unicode_escape").decode("ascii") for a in argv)
            examples[sig].add(shown[:160])
    for sig, n in sorted(sigs.items()):
        print(f"{n:6d}  {sig}")
        for ex in sorted(examples[sig]):
            print(f"          e.g. {ex}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", type=int, default=0)
    ap.add_argument("--target")
    ap.add_argument("--log")
    ap.add_argument("--summarise", metavar="LOG")
    args = ap.parse_args()
    if args.summarise:
        summarise(args.summarise)
        return
    if not (args.target and args.log):
        ap.error("--target and --log are required")
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
