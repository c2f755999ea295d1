"""The notification-service flow of the keyspace issue, written with redis-py, run against
Herald and against a real redis-server started here; every observed result must agree.

    .venv/bin/python tests/compat/notification_flow.py --herald-port 6400

Prints "notification-flow: N passed, M failed" (one check per observed value) and exits
non-zero on any difference. The redis-server child is always stopped.
"""

import argparse
import json
import socket
import subprocess
import sys
import time

import redis


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
            if redis.Redis(port=port, socket_timeout=1).ping():
                return child, port
        except redis.ConnectionError:
            time.sleep(0.05)
    child.kill()
    raise SystemExit("notification-flow: redis-server did not start")


def flow(port):
    """Runs the flow and returns everything a client could observe, in order."""
    r = redis.Redis(port=port, decode_responses=True, socket_timeout=5)
    r.flushall()
    observed = {}
    listener = r.pubsub()
    listener.subscribe("notifications:user:1")
    listener.get_message(timeout=1)  # the subscribe confirmation
    receivers = []
    for i in range(130):
        for user in (1, 2):
            note = json.dumps({"id": i, "user": user, "read": False})
            pipe = r.pipeline(transaction=True)
            pipe.lpush(f"notifications:history:{user}", note)
            pipe.ltrim(f"notifications:history:{user}", 0, 99)
            pipe.publish(f"notifications:user:{user}", note)
            pushed, trimmed, delivered = pipe.execute()
            receivers.append((pushed, trimmed, delivered))
    observed["pipeline results"] = receivers[-4:]
    observed["receivers"] = sorted({item[2] for item in receivers})
    messages = []
    while True:
        message = listener.get_message(timeout=0.5)
        if message is None:
            break
        messages.append(json.loads(message["data"])["id"])
    observed["user 1 live messages"] = messages
    observed["history length"] = r.llen("notifications:history:1")
    recent = r.lrange("notifications:history:1", 0, 19)
    observed["last 20 ids"] = [json.loads(n)["id"] for n in recent]
    marked = json.loads(recent[3])
    marked["read"] = True
    observed["lset"] = r.lset("notifications:history:1", 3, json.dumps(marked))
    history = r.lrange("notifications:history:1", 0, -1)
    observed["unread"] = sum(1 for n in history if not json.loads(n)["read"])
    observed["user 2 untouched unread"] = sum(
        1 for n in r.lrange("notifications:history:2", 0, -1) if not json.loads(n)["read"]
    )
    observed["lrem read"] = r.lrem("notifications:history:1", 0, json.dumps(marked))
    observed["expire"] = r.expire("notifications:history:1", 3600)
    observed["ttl"] = r.ttl("notifications:history:1")
    observed["counter"] = [r.hincrby("notifications:unread", "1", -1) for _ in range(2)]
    observed["hgetall"] = r.hgetall("notifications:unread")
    observed["type"] = [r.type("notifications:history:1"), r.type("notifications:unread")]
    listener.close()
    r.close()
    return observed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--herald-port", type=int, required=True)
    args = parser.parse_args()
    child, redis_port = start_redis()
    try:
        expected = flow(redis_port)
        got = flow(args.herald_port)
    finally:
        child.terminate()
        child.wait(timeout=10)
    passed = failed = 0
    for name, value in expected.items():
        if got.get(name) == value:
            passed += 1
        else:
            failed += 1
            print(f"notification-flow: {name}: redis {value!r}, herald {got.get(name)!r}")
    print(f"notification-flow: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
