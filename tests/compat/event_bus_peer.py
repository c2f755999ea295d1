"""A Python EventBus written with redis-py, using Herald's event envelope; the peer of
crates/herald-client/tests/interop.rs, which starts it:

    .venv/bin/python tests/compat/event_bus_peer.py --port 6400 [--prefix events:]

It subscribes to the event type `rust.ping` and to the pattern `rust.*`, prints READY,
then answers every `rust.ping` with a `python.pong` whose data echoes what it got, and
on `rust.done` emits `python.bye` and exits. Each received envelope is checked (exactly
the keys type/timestamp/data, type equal to the channel's suffix, timestamp ISO-8601 in
UTC); it prints "event-bus-peer: N passed, M failed" and exits 1 on any failure or when
nothing arrives within --timeout seconds.
"""

import argparse
import json
import sys
import time
from datetime import datetime, timedelta, timezone

import redis


class EventBus:
    """The same envelope and channel names as herald_client::EventBus."""

    def __init__(self, client, prefix="events:"):
        self.client = client
        self.prefix = prefix
        self.pubsub = client.pubsub()

    def emit(self, event_type, data):
        envelope = {
            "type": event_type,
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "data": data,
        }
        return self.client.publish(self.prefix + event_type, json.dumps(envelope))

    def listen(self, event_types, patterns):
        for event_type in event_types:
            self.pubsub.subscribe(self.prefix + event_type)
        for pattern in patterns:
            self.pubsub.psubscribe(self.prefix + pattern)
        # Wait for the confirmations so that nothing published after READY is missed.
        expected = len(event_types) + len(patterns)
        confirmed = 0
        deadline = time.monotonic() + 5
        while confirmed < expected and time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.1)
            if message and message["type"] in ("subscribe", "psubscribe"):
                confirmed += 1
        return confirmed == expected

    def next_event(self, timeout):
        """(event_type_from_channel, via_pattern, envelope) or None."""
        message = self.pubsub.get_message(timeout=timeout)
        if message is None or message["type"] not in ("message", "pmessage"):
            return None
        channel = message["channel"].decode()
        return channel[len(self.prefix):], message["type"] == "pmessage", json.loads(message["data"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", default="events:")
    parser.add_argument("--timeout", type=float, default=20)
    args = parser.parse_args()
    client = redis.Redis(port=args.port, socket_timeout=10)
    bus = EventBus(client, args.prefix)
    if not bus.listen(["rust.ping", "rust.done"], ["rust.*"]):
        print("event-bus-peer: subscriptions were not confirmed")
        return 1
    print("READY", flush=True)
    passed = failed = 0

    def check(name, ok):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"event-bus-peer: FAILED {name}", flush=True)

    deadline = time.monotonic() + args.timeout
    done = False
    while not done and time.monotonic() < deadline:
        received = bus.next_event(timeout=0.2)
        if received is None:
            continue
        channel_type, via_pattern, envelope = received
        check("envelope keys", sorted(envelope) == ["data", "timestamp", "type"])
        check("type matches the channel", envelope.get("type") == channel_type)
        stamp = datetime.fromisoformat(envelope["timestamp"].replace("Z", "+00:00"))
        check("timestamp is UTC", stamp.utcoffset() == timedelta(0))
        check("timestamp is recent", abs(datetime.now(timezone.utc) - stamp) < timedelta(minutes=5))
        print(f"received {channel_type} via {'pattern' if via_pattern else 'channel'}: {envelope}", flush=True)
        if via_pattern:
            continue
        if channel_type == "rust.ping":
            bus.emit("python.pong", {"echo": envelope["data"], "seen_type": envelope["type"]})
        elif channel_type == "rust.done":
            bus.emit("python.bye", {"pongs": passed})
            done = True
    check("rust.done arrived", done)
    print(f"event-bus-peer: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
