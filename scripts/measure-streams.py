#!/usr/bin/env python3
"""Stream memory and throughput, Herald and redis-server side by side in the same run.

    .venv/bin/python scripts/measure-streams.py [--herald target/release/herald] [--rounds 2]

Starts a fresh Herald and a fresh redis-server on free 127.0.0.1 ports for every
measurement (and stops them), then prints:

- memory: RSS growth (INFO memory used_memory_rss; Herald reports its process RSS) for
  1 000 000 XADD entries of three small fields (a, b, c with 12-digit values), loaded with
  redis-benchmark -P 100;
- XADD throughput: redis-benchmark -c 8 -P 16, 1 000 000 XADDs of three fields;
- XREADGROUP + XACK throughput: 300 000 entries preloaded with IDs 1-0 ... N-0; 4
  redis-benchmark clients read them with XREADGROUP COUNT 100 as four consumers
  (entries delivered/s), then acknowledge random IDs with XACK (-P 16, acks/s); the
  figure is the combined rate 1 / (1/reads + 1/acks) in entries/s.

redis-benchmark drives the server side in C, so the figures compare the servers, not a
Python client.

Needs redis-server and redis-benchmark (Debian's redis-server, redis-tools) and redis-py.
Rounds alternate Herald and Redis; every figure is reported per round with its ratio.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import time

import redis

MEMORY_ENTRIES = 1_000_000
XADD_REQUESTS = 1_000_000
GROUP_ENTRIES = 300_000
CONSUMERS = 4
BATCH = 100


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A fresh server process on a free port; stopped on exit from the with block."""

    def __init__(self, kind, herald_bin):
        self.kind = kind
        self.port = free_port()
        if kind == "herald":
            argv = [herald_bin, "server", "--bind", "127.0.0.1", "--port", str(self.port)]
        else:
            argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no"]
        env = dict(os.environ, RUST_LOG="warn")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

    def __enter__(self):
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if redis.Redis(port=self.port).ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not start on port {self.port}")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def client(self):
        return redis.Redis(port=self.port)


def benchmark(port, requests, clients, pipeline, *command, rand=100_000_000):
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", str(requests),
         "-c", str(clients), "-P", str(pipeline), "-r", str(rand), "-q", *command],
        check=True, capture_output=True, text=True, timeout=600,
    ).stdout
    found = re.findall(r"([0-9.]+) requests per second", out.replace("\r", "\n"))
    if not found:
        raise RuntimeError(f"no figure in redis-benchmark output: {out!r}")
    return float(found[-1])


FIELDS = ["a", "__rand_int__", "b", "__rand_int__", "c", "__rand_int__"]


def memory(server):
    r = server.client()
    before = int(r.info("memory")["used_memory_rss"])
    benchmark(server.port, MEMORY_ENTRIES, 1, 100, "XADD", "mem:stream", "*", *FIELDS)
    assert r.xlen("mem:stream") == MEMORY_ENTRIES
    after = int(r.info("memory")["used_memory_rss"])
    return (after - before) / MEMORY_ENTRIES


def xadd_rate(server):
    return benchmark(server.port, XADD_REQUESTS, 8, 16, "XADD", "bench:stream", "*", *FIELDS)


def group_rate(server):
    """XREADGROUP (COUNT 100, 4 consumer names) and XACK rates, combined into entries/s."""
    r = server.client()
    pipe = r.pipeline(transaction=False)
    for i in range(1, GROUP_ENTRIES + 1):
        pipe.xadd("jobs", {"a": i, "b": i, "c": i}, id=f"{i}-0")
        if i % 10_000 == 0:
            pipe.execute()
    pipe.execute()
    r.xgroup_create("jobs", "g", id="0")
    reads = (GROUP_ENTRIES - BATCH * 10) // BATCH
    # -r 4: __rand_int__ in the consumer name picks one of four consumers per call.
    read_rate = benchmark(server.port, reads, CONSUMERS, 1, "XREADGROUP", "GROUP", "g",
                          "c__rand_int__", "COUNT", str(BATCH), "STREAMS", "jobs", ">", rand=CONSUMERS)
    delivered = r.xinfo_groups("jobs")[0]["pending"]
    assert delivered == reads * BATCH, delivered
    ack_rate = benchmark(server.port, GROUP_ENTRIES, CONSUMERS, 16, "XACK", "jobs", "g",
                         "__rand_int__-0", rand=GROUP_ENTRIES)
    print(f"  {server.kind}: XREADGROUP {read_rate * BATCH:,.0f} entries/s, XACK {ack_rate:,.0f} acks/s",
          flush=True)
    return 1 / (1 / (read_rate * BATCH) + 1 / ack_rate)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--herald", default="target/release/herald")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    measurements = [
        ("RSS bytes per entry (1M entries, 3 fields)", memory, "lower"),
        ("XADD requests/s (-c 8 -P 16)", xadd_rate, "higher"),
        ("XREADGROUP+XACK entries/s (4 consumers)", group_rate, "higher"),
    ]
    for title, measure, better in measurements:
        for round_no in range(1, args.rounds + 1):
            figures = {}
            for kind in ("herald", "redis"):
                with Server(kind, args.herald) as server:
                    figures[kind] = measure(server)
            ratio = figures["herald"] / figures["redis"]
            print(f"{title}, round {round_no}: herald {figures['herald']:,.1f}, "
                  f"redis {figures['redis']:,.1f}, ratio {ratio:.2f} ({better} is better)",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
