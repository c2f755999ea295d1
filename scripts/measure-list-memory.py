#!/usr/bin/env python3
"""RSS cost of one million 16-byte list elements, Herald and redis-server side by side.

    .venv/bin/python scripts/measure-list-memory.py HERALD_PORT REDIS_PORT

Both servers must be fresh (empty). Prints bytes per element for each and the ratio.
RSS comes from INFO memory used_memory_rss (Herald reports its process RSS there).
"""

import sys

import redis

ELEMENTS = 1_000_000
VALUE = b"x" * 16


def per_element(port):
    r = redis.Redis(port=port)
    before = int(r.info("memory")["used_memory_rss"])
    pipe = r.pipeline(transaction=False)
    for i in range(ELEMENTS):
        pipe.rpush("memory:list", VALUE)
        if i % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()
    assert r.llen("memory:list") == ELEMENTS
    after = int(r.info("memory")["used_memory_rss"])
    r.delete("memory:list")
    return (after - before) / ELEMENTS


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    herald, real = per_element(int(sys.argv[1])), per_element(int(sys.argv[2]))
    print(f"herald {herald:.1f} B/element, redis {real:.1f} B/element, ratio {herald / real:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
