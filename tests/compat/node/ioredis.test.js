// ioredis compatibility tests for Herald (node's built-in test runner, no mocha).
//
//   HERALD_PORT=6400 node --test tests/compat/node/ioredis.test.js
//
// The server must already listen on 127.0.0.1:$HERALD_PORT (HERALD_PASSWORD, if set, is
// used for AUTH). Every test has a time limit and closes the connections it opened.
//
// What ioredis 6 does, and so what these tests can observe (read from its source,
// built/redis/event_handler.js, built/Redis.js, built/DataHandler.js):
// - It speaks RESP3 by default: on connect it sends HELLO 3 (pipelined with CLIENT SETINFO
//   LIB-VER / LIB-NAME, errors of those ignored), then INFO for its ready check.
//   `protocol: 2` sends no HELLO at all.
// - If HELLO 3 fails with an error containing NOPROTO, or "unknown command" plus "HELLO",
//   it downgrades the same connection to RESP2 and re-sends the handshake without HELLO.
// - In RESP2 subscriber mode it refuses every command but (p|s)(un)subscribe, ping and quit
//   client-side, before anything is sent (also through `call`). The server's own rejection
//   is therefore checked on a raw socket.
// - In RESP3 it never enters "subscriber mode": any command may run while pushes arrive.
// - After a lost connection it reconnects and re-subscribes (autoResubscribe) to the
//   channels, patterns and shard channels it had.
// - An argument-less (p)unsubscribe() resolves only on a reply whose count is 0.
// The RESP2 fallback is driven by the server itself: a small relay in this file rewrites
// ioredis's first `HELLO 3` into `HELLO 4`, so the server's own NOPROTO error reaches ioredis.
"use strict";

const { describe, it, before, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const net = require("node:net");
const Redis = require("ioredis");

const HOST = "127.0.0.1";
const PORT = Number(process.env.HERALD_PORT);
const PASSWORD = process.env.HERALD_PASSWORD || undefined;
if (!Number.isInteger(PORT) || PORT <= 0) {
  throw new Error("ioredis suite: set HERALD_PORT to the port of a running server");
}

const TEST_TIMEOUT = 20000;
const WAIT = 5000;

const RESP2_SUBSCRIBED_ERROR = (cmd) =>
  `ERR Can't execute '${cmd}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`;

// ---------------------------------------------------------------------------------------
// resources opened by a test, closed after it
const open = [];

afterEach(async () => {
  while (open.length) {
    const r = open.pop();
    try {
      await r.close();
    } catch {
      // already closed
    }
  }
});

function client(options = {}) {
  const c = new Redis({
    host: HOST,
    port: PORT,
    password: PASSWORD,
    connectTimeout: 2000,
    commandTimeout: WAIT,
    maxRetriesPerRequest: 3,
    retryStrategy: (times) => (times > 50 ? null : 100),
    ...options,
  });
  c.on("error", () => {}); // connection errors surface through rejected commands
  open.push({ close: () => c.disconnect() });
  return c;
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function once(emitter, event, what = event) {
  return withTimeout(new Promise((resolve) => emitter.once(event, (...args) => resolve(args))), WAIT, what);
}

async function waitFor(predicate, what) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function ready(c) {
  if (c.status !== "ready") await once(c, "ready", "ioredis ready");
  return c;
}

// Collects pub/sub events of a client in arrival order.
function recorder(c) {
  const events = [];
  c.on("message", (channel, message) => events.push(["message", channel, message]));
  c.on("pmessage", (pattern, channel, message) => events.push(["pmessage", pattern, channel, message]));
  c.on("smessage", (channel, message) => events.push(["smessage", channel, message]));
  return {
    events,
    async atLeast(n) {
      await waitFor(() => events.length >= n, `${n} pub/sub events (have ${JSON.stringify(events)})`);
      return events;
    },
  };
}

// ---------------------------------------------------------------------------------------
// A raw RESP connection: send commands, read replies with their RESP types.

function encode(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from("\r\n"));
  }
  return Buffer.concat(parts);
}

// Parses one RESP2/RESP3 value at `pos`; returns { value, end } or null if incomplete.
// Values: { type: '+', value: string } etc.; aggregates carry `items` (maps: flat list).
function parseValue(buf, pos) {
  const nl = buf.indexOf("\r\n", pos);
  if (nl < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString("latin1", pos + 1, nl);
  const next = nl + 2;
  switch (type) {
    case "+":
    case "-":
    case "(":
      return { value: { type, value: line }, end: next };
    case ":":
      return { value: { type, value: Number(line) }, end: next };
    case ",":
      return { value: { type, value: line }, end: next };
    case "#":
      return { value: { type, value: line === "t" }, end: next };
    case "_":
      return { value: { type, value: null }, end: next };
    case "$":
    case "=":
    case "!": {
      const len = Number(line);
      if (len < 0) return { value: { type, value: null }, end: next };
      if (buf.length < next + len + 2) return null;
      return { value: { type, value: buf.subarray(next, next + len) }, end: next + len + 2 };
    }
    case "*":
    case ">":
    case "~":
    case "%":
    case "|": {
      const n = Number(line);
      if (n < 0) return { value: { type, value: null }, end: next };
      const count = type === "%" || type === "|" ? 2 * n : n;
      const items = [];
      let p = next;
      for (let i = 0; i < count; i++) {
        const r = parseValue(buf, p);
        if (!r) return null;
        items.push(r.value);
        p = r.end;
      }
      return { value: { type, items }, end: p };
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)} in ${JSON.stringify(buf.toString("latin1"))}`);
  }
}

// Plain JS view of a parsed value: strings for bulk/simple, numbers, null, arrays.
function plain(v) {
  if (v.items) return v.items.map(plain);
  if (Buffer.isBuffer(v.value)) return v.value.toString("latin1");
  return v.value;
}

class RawConn {
  static async open() {
    const c = new RawConn();
    await c.connect();
    open.push({ close: () => c.socket.destroy() });
    if (PASSWORD) {
      assert.equal(plain(await c.command("AUTH", PASSWORD)), "OK");
    }
    return c;
  }

  connect() {
    this.buf = Buffer.alloc(0);
    this.waiters = [];
    this.closed = false;
    return withTimeout(
      new Promise((resolve, reject) => {
        this.socket = net.connect(PORT, HOST, resolve);
        this.socket.once("error", reject);
        this.socket.on("data", (d) => {
          this.buf = Buffer.concat([this.buf, d]);
          this.wake();
        });
        this.socket.on("close", () => {
          this.closed = true;
          this.wake();
        });
      }),
      WAIT,
      "raw connection",
    );
  }

  wake() {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  send(...args) {
    this.socket.write(encode(args));
  }

  sendRaw(bytes) {
    this.socket.write(bytes);
  }

  // Next reply (or push) with its RESP type.
  async read() {
    const deadline = Date.now() + WAIT;
    for (;;) {
      const r = this.buf.length ? parseValue(this.buf, 0) : null;
      if (r) {
        this.buf = this.buf.subarray(r.end);
        return r.value;
      }
      if (this.closed) throw new Error("connection closed while waiting for a reply");
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out waiting for a reply (buffered: ${JSON.stringify(this.buf.toString("latin1"))})`);
      }
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  // Asserts that the next bytes from the server are exactly `expected`.
  async expectBytes(expected, message) {
    const want = Buffer.from(expected, "latin1");
    const n = want.length;
    // stop waiting as soon as what arrived cannot be the start of `expected`
    const diverged = () => {
      const m = Math.min(n, this.buf.length);
      return !this.buf.subarray(0, m).equals(want.subarray(0, m));
    };
    try {
      await waitFor(() => this.buf.length >= n || this.closed || diverged(), `${JSON.stringify(expected)}`);
    } catch (err) {
      err.message += ` (received so far: ${JSON.stringify(this.buf.toString("latin1"))})`;
      throw err;
    }
    const out = this.buf.subarray(0, n).toString("latin1");
    this.buf = this.buf.subarray(n);
    assert.equal(out, expected, message);
  }

  async command(...args) {
    this.send(...args);
    return this.read();
  }
}

// A TCP relay between ioredis and the server that rewrites the client's first
// `HELLO 3` into `HELLO 4`, so that the server's own NOPROTO error for an unsupported
// version reaches ioredis and drives its RESP2 fallback.
async function helloDowngradingProxy() {
  const stats = { rewritten: 0, hellos: 0, connections: 0 };
  const sockets = new Set();
  const server = net.createServer((down) => {
    stats.connections++;
    const up = net.connect(PORT, HOST);
    sockets.add(down);
    sockets.add(up);
    let pending = Buffer.alloc(0);
    let first = true;
    // `HELLO 3`, or `HELLO 3 AUTH user pass` when a password is set
    const hello3 = /^(\*[0-9]+\r\n\$5\r\nhello\r\n\$1\r\n)3\r\n/i;
    down.on("data", (d) => {
      stats.hellos += (d.toString("latin1").match(/\$5\r\nhello\r\n/gi) || []).length;
      if (!first) return up.write(d);
      pending = Buffer.concat([pending, d]);
      if (pending.length < 24) return; // the length of `*2 $5 hello $1 3` in RESP
      first = false;
      let text = pending.toString("latin1");
      if (hello3.test(text)) {
        text = text.replace(hello3, "$14\r\n");
        stats.rewritten++;
      }
      up.write(Buffer.from(text, "latin1"));
    });
    up.on("data", (d) => down.write(d));
    const closeBoth = () => {
      down.destroy();
      up.destroy();
    };
    down.on("close", closeBoth);
    up.on("close", closeBoth);
    down.on("error", closeBoth);
    up.on("error", closeBoth);
  });
  await withTimeout(new Promise((resolve) => server.listen(0, HOST, resolve)), WAIT, "proxy listen");
  open.push({
    close: () =>
      new Promise((resolve) => {
        sockets.forEach((s) => s.destroy());
        server.close(() => resolve());
      }),
  });
  return { port: server.address().port, stats };
}

// ---------------------------------------------------------------------------------------

// Fail fast (instead of every test timing out) when nothing answers on the port.
before(async () => {
  const c = await RawConn.open();
  assert.deepEqual(await c.command("PING"), { type: "+", value: "PONG" }, `PING to ${HOST}:${PORT}`);
  c.socket.destroy();
});

for (const protocol of [2, 3]) {
  describe(`ioredis protocol ${protocol}`, () => {
    it("subscribe/psubscribe/unsubscribe resolve to the subscription count", { timeout: TEST_TIMEOUT }, async () => {
      const sub = await ready(client({ protocol }));
      assert.equal(await sub.subscribe("a", "b"), 2);
      assert.equal(await sub.subscribe("a"), 2, "repeated channel does not change the count");
      assert.equal(await sub.psubscribe("p.*"), 3, "count = channels + patterns");
      assert.equal(await sub.psubscribe("p.*", "q.*"), 4);
      assert.equal(await sub.unsubscribe("a"), 3);
      assert.equal(await sub.unsubscribe("never-subscribed"), 3, "unknown channel keeps the count");
      assert.equal(await sub.punsubscribe("p.*"), 2);
      assert.equal(await sub.unsubscribe("b"), 1);
      // ioredis resolves an argument-less (P)UNSUBSCRIBE only on a reply whose count is 0,
      // so those are used only where they drop the last subscription.
      assert.equal(await sub.punsubscribe(), 0, "PUNSUBSCRIBE without arguments drops all patterns");
      assert.equal(await sub.ping(), "PONG", "PING after the last unsubscribe is plain again");
      assert.equal(await sub.subscribe("x", "y", "z"), 3);
      assert.equal(await sub.unsubscribe(), 0, "UNSUBSCRIBE without arguments drops all channels");
      assert.equal(await sub.ping(), "PONG");
    });

    it("message then pmessage for one client matching twice; PUBLISH counts deliveries", { timeout: TEST_TIMEOUT }, async () => {
      const sub = await ready(client({ protocol }));
      const pub = await ready(client({ protocol }));
      const rec = recorder(sub);
      assert.equal(await sub.subscribe("news.tech"), 1);
      assert.equal(await sub.psubscribe("news.*"), 2);
      assert.equal(await pub.publish("news.tech", "hi"), 2);
      assert.equal(await pub.publish("news.sport", "goal"), 1);
      assert.equal(await pub.publish("newsxtech", "no"), 0, "'.' in the pattern is literal");
      assert.equal(await pub.publish("other", "no"), 0);
      assert.deepEqual(await rec.atLeast(3), [
        ["message", "news.tech", "hi"],
        ["pmessage", "news.*", "news.tech", "hi"],
        ["pmessage", "news.*", "news.sport", "goal"],
      ]);
    });

    it("binary-safe channel names and payloads (messageBuffer)", { timeout: TEST_TIMEOUT }, async () => {
      const sub = await ready(client({ protocol }));
      const pub = await ready(client({ protocol }));
      const channel = Buffer.from([0x63, 0x00, 0x0d, 0x0a, 0xff]);
      const payload = Buffer.concat([Buffer.from("\r\n$-1\r\n*3\r\n\0"), Buffer.alloc(70000, 0xab)]);
      const got = [];
      sub.on("messageBuffer", (ch, msg) => got.push([ch, msg]));
      assert.equal(await sub.subscribe(channel), 1);
      assert.equal(await pub.publish(channel, payload), 1);
      assert.equal(await pub.publish(channel, Buffer.alloc(0)), 1);
      await waitFor(() => got.length >= 2, "two binary messages");
      assert.ok(got[0][0].equals(channel), "channel name survives unchanged");
      assert.ok(got[0][1].equals(payload), "payload survives unchanged");
      assert.equal(got[1][1].length, 0, "empty payload");
    });

    it("PING while subscribed", { timeout: TEST_TIMEOUT }, async () => {
      const sub = await ready(client({ protocol }));
      await sub.subscribe("ping-chan");
      if (protocol === 2) {
        assert.deepEqual(await sub.ping(), ["pong", ""], "RESP2 subscribed PING is [pong, '']");
        assert.deepEqual(await sub.ping("hello"), ["pong", "hello"]);
      } else {
        assert.equal(await sub.ping(), "PONG");
        assert.equal(await sub.ping("hello"), "hello");
      }
    });

    it("shard channels: ssubscribe, spublish, smessage, separate namespace", { timeout: TEST_TIMEOUT }, async () => {
      const sub = await ready(client({ protocol }));
      const pub = await ready(client({ protocol }));
      const rec = recorder(sub);
      assert.equal(await sub.ssubscribe("s1"), 1);
      assert.equal(await sub.ssubscribe("s2"), 2, "shard count counts shard channels only");
      assert.equal(await pub.publish("s1", "wrong namespace"), 0);
      assert.equal(await pub.spublish("s1", "right"), 1);
      assert.deepEqual(await pub.pubsub("SHARDNUMSUB", "s1", "nope"), ["s1", 1, "nope", 0]);
      assert.deepEqual(await pub.pubsub("NUMSUB", "s1"), ["s1", 0]);
      assert.deepEqual((await pub.pubsub("SHARDCHANNELS")).sort(), ["s1", "s2"]);
      assert.deepEqual(await rec.atLeast(1), [["smessage", "s1", "right"]]);
      assert.equal(await sub.sunsubscribe("s1"), 1);
      assert.equal(await sub.sunsubscribe(), 0);
    });

    it("PUBSUB CHANNELS / NUMSUB / NUMPAT", { timeout: TEST_TIMEOUT }, async () => {
      const s1 = await ready(client({ protocol }));
      const s2 = await ready(client({ protocol }));
      const admin = await ready(client({ protocol }));
      await s1.subscribe("chan:a", "chan:b");
      await s2.subscribe("chan:a");
      await s1.psubscribe("pat:*");
      await s2.psubscribe("pat:*", "other:*");
      assert.deepEqual((await admin.pubsub("CHANNELS")).sort(), ["chan:a", "chan:b"]);
      assert.deepEqual((await admin.pubsub("CHANNELS", "*:a")).sort(), ["chan:a"]);
      assert.deepEqual(await admin.pubsub("NUMSUB", "chan:a", "chan:b", "chan:c"), ["chan:a", 2, "chan:b", 1, "chan:c", 0]);
      assert.deepEqual(await admin.pubsub("NUMSUB"), []);
      assert.equal(await admin.pubsub("NUMPAT"), 2, "distinct patterns across clients");
      assert.equal(await admin.publish("chan:a", "x"), 2);
      s2.disconnect();
      await waitFor(async () => (await admin.pubsub("NUMPAT")) === 1, "NUMPAT 1 after a subscriber left");
      assert.deepEqual(await admin.pubsub("NUMSUB", "chan:a"), ["chan:a", 1]);
    });

    for (const how of ["ID", "TYPE pubsub"]) {
      it(`auto-resubscribe after CLIENT KILL ${how}`, { timeout: TEST_TIMEOUT }, async () => {
        const sub = await ready(client({ protocol }));
        const admin = await ready(client({ protocol }));
        const rec = recorder(sub);
        const id = await sub.client("ID");
        assert.equal(typeof id, "number");
        assert.equal(await sub.subscribe("rs.chan"), 1);
        assert.equal(await sub.psubscribe("rs.*"), 2);
        assert.equal(await sub.ssubscribe("rs.shard"), 1);
        assert.equal(await admin.publish("rs.chan", "before"), 2);
        await rec.atLeast(2);

        const closed = once(sub, "close", "subscriber connection close");
        const readyAgain = closed.then(() => once(sub, "ready", "subscriber ready again"));
        const killed = how === "ID" ? await admin.client("KILL", "ID", id) : await admin.client("KILL", "TYPE", "pubsub");
        assert.equal(killed, 1, "exactly one client killed");
        await readyAgain;

        // Re-subscription happens right after "ready"; wait until the server has it back.
        await waitFor(async () => {
          const [, n] = await admin.pubsub("NUMSUB", "rs.chan");
          const [, s] = await admin.pubsub("SHARDNUMSUB", "rs.shard");
          return n === 1 && s === 1 && (await admin.pubsub("NUMPAT")) === 1;
        }, "subscriptions restored on the server");
        assert.equal(await admin.publish("rs.chan", "after"), 2);
        assert.equal(await admin.spublish("rs.shard", "after-shard"), 1);
        const events = await rec.atLeast(5);
        assert.deepEqual(events.slice(2), [
          ["message", "rs.chan", "after"],
          ["pmessage", "rs.*", "rs.chan", "after"],
          ["smessage", "rs.shard", "after-shard"],
        ]);
        if (protocol === 3) {
          const newId = await sub.client("ID");
          assert.notEqual(newId, id, "a new connection after the kill");
        }
      });
    }
  });
}

describe("RESP2 subscribed context", () => {
  it("ioredis refuses non-subscriber commands client-side (nothing reaches the server)", { timeout: TEST_TIMEOUT }, async () => {
    const sub = await ready(client({ protocol: 2 }));
    await sub.subscribe("ctx");
    assert.equal(sub.mode, "subscriber");
    await assert.rejects(sub.get("k"), /Connection in subscriber mode, only subscriber commands may be used/);
    await assert.rejects(sub.call("GET", "k"), /Connection in subscriber mode/);
    assert.equal(await sub.unsubscribe(), 0);
    assert.equal(sub.mode, "normal");
    assert.equal(await sub.echo("back to normal"), "back to normal");
  });

  it("the server refuses commands outside the allow-list with Redis's exact text (raw socket)", { timeout: TEST_TIMEOUT }, async () => {
    const c = await RawConn.open();
    c.send("SUBSCRIBE", "ctx");
    await c.expectBytes("*3\r\n$9\r\nsubscribe\r\n$3\r\nctx\r\n:1\r\n");
    c.send("PUBLISH", "ctx", "x");
    const expected = `-${RESP2_SUBSCRIBED_ERROR("publish")}\r\n`;
    await c.expectBytes(expected);
    // the command's name in lower case whatever the client sent; subcommands as container|sub
    assert.deepEqual(await c.command("EcHo", "x"), { type: "-", value: RESP2_SUBSCRIBED_ERROR("echo") });
    assert.deepEqual(await c.command("HELLO", "3"), { type: "-", value: RESP2_SUBSCRIBED_ERROR("hello") });
    assert.deepEqual(await c.command("CLIENT", "ID"), { type: "-", value: RESP2_SUBSCRIBED_ERROR("client|id") });
    assert.deepEqual(await c.command("PUBSUB", "NUMSUB"), { type: "-", value: RESP2_SUBSCRIBED_ERROR("pubsub|numsub") });
    // arity and unknown-command errors come before the context check, as in Redis
    assert.deepEqual(await c.command("ECHO"), { type: "-", value: "ERR wrong number of arguments for 'echo' command" });
    assert.deepEqual(await c.command("NOSUCH", "a"), { type: "-", value: "ERR unknown command 'NOSUCH', with args beginning with: 'a' " });
    assert.deepEqual(await c.command("CLIENT", "NOSUCH"), { type: "-", value: "ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP." });
    // the connection stays usable and subscribed
    c.send("PING");
    await c.expectBytes("*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    c.send("PING", "hi");
    await c.expectBytes("*2\r\n$4\r\npong\r\n$2\r\nhi\r\n");
    assert.deepEqual(plain(await c.command("PSUBSCRIBE", "p*")), ["psubscribe", "p*", 2]);
    c.send("RESET");
    await c.expectBytes("+RESET\r\n", "RESET is allowed while subscribed, also with patterns");
    if (PASSWORD) {
      // RESET also goes back to the default user, which needs the password again
      assert.deepEqual(await c.command("ECHO", "x"), { type: "-", value: "NOAUTH Authentication required." });
      assert.deepEqual(await c.command("AUTH", PASSWORD), { type: "+", value: "OK" });
    }
    assert.deepEqual(await c.command("ECHO", "x"), { type: "$", value: Buffer.from("x") }, "after RESET ordinary commands work again");
    assert.deepEqual(plain(await c.command("PUBSUB", "NUMSUB", "ctx")), ["ctx", 0], "RESET dropped the subscription");
  });

  it("UNSUBSCRIBE with nothing subscribed: one reply with a null channel and count 0", { timeout: TEST_TIMEOUT }, async () => {
    const c = await RawConn.open();
    c.send("UNSUBSCRIBE");
    await c.expectBytes("*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
    c.send("PING");
    await c.expectBytes("+PONG\r\n");
  });
});

describe("RESP3", () => {
  it("ioredis runs ordinary commands while subscribed", { timeout: TEST_TIMEOUT }, async () => {
    const sub = await ready(client({ protocol: 3 }));
    const rec = recorder(sub);
    assert.equal(await sub.subscribe("r3"), 1);
    assert.equal(sub.mode, "normal", "no subscriber mode in RESP3");
    assert.equal(await sub.ping(), "PONG");
    assert.equal(await sub.echo("still here"), "still here");
    assert.equal(typeof (await sub.client("ID")), "number");
    assert.deepEqual(await sub.pubsub("NUMSUB", "r3"), ["r3", 1]);
    assert.equal(await sub.publish("r3", "to myself"), 1);
    assert.deepEqual(await rec.atLeast(1), [["message", "r3", "to myself"]]);
    assert.equal(await sub.unsubscribe("r3"), 0);
  });

  it("raw HELLO 3: map reply, push frames, commands allowed while subscribed", { timeout: TEST_TIMEOUT }, async () => {
    const c = await RawConn.open();
    const hello = await c.command("HELLO", "3");
    assert.equal(hello.type, "%", "HELLO 3 replies with a map");
    const fields = plain(hello);
    const map = {};
    for (let i = 0; i < fields.length; i += 2) map[fields[i]] = fields[i + 1];
    assert.equal(map.proto, 3);
    for (const key of ["server", "version", "id", "mode", "role", "modules"]) {
      assert.ok(key in map, `HELLO reply has ${key}`);
    }
    const sub = await c.command("SUBSCRIBE", "r3raw");
    assert.equal(sub.type, ">", "subscribe confirmation is a push");
    assert.deepEqual(plain(sub), ["subscribe", "r3raw", 1]);
    assert.deepEqual(await c.command("CLIENT", "GETNAME"), { type: "_", value: null }, "RESP3 null");
    assert.deepEqual(await c.command("ECHO", "x"), { type: "$", value: Buffer.from("x") });
    assert.deepEqual(await c.command("PING"), { type: "+", value: "PONG" });

    const other = await RawConn.open();
    assert.deepEqual(plain(await other.command("PUBLISH", "r3raw", "pushed")), 1);
    const msg = await c.read();
    assert.equal(msg.type, ">");
    assert.deepEqual(plain(msg), ["message", "r3raw", "pushed"]);

    const unsub = await c.command("UNSUBSCRIBE");
    assert.equal(unsub.type, ">");
    assert.deepEqual(plain(unsub), ["unsubscribe", "r3raw", 0]);
  });
});

describe("RESP3 negotiation and the RESP2 fallback", () => {
  it("HELLO with an unsupported version fails with Redis's exact NOPROTO error", { timeout: TEST_TIMEOUT }, async () => {
    const c = await RawConn.open();
    c.send("HELLO", "4");
    const expected = "-NOPROTO unsupported protocol version\r\n";
    await c.expectBytes(expected);
    c.send("PING");
    await c.expectBytes("+PONG\r\n", "connection stays in RESP2 and usable");
  });

  it("ioredis with default options negotiates RESP3 (HELLO 3)", { timeout: TEST_TIMEOUT }, async () => {
    const c = await ready(client());
    await c.subscribe("neg");
    assert.equal(c.mode, "normal", "RESP3 was negotiated: no subscriber mode");
    assert.equal(await c.ping(), "PONG");
  });

  it("ioredis falls back to RESP2 when the server refuses HELLO with NOPROTO", { timeout: TEST_TIMEOUT }, async () => {
    const proxy = await helloDowngradingProxy();
    const sub = await ready(client({ port: proxy.port })); // default: protocol 3
    assert.equal(proxy.stats.rewritten, 1, "the proxy saw HELLO 3 and sent HELLO 4 instead");
    assert.equal(proxy.stats.hellos, 1, "no second HELLO after the fallback");
    assert.equal(proxy.stats.connections, 1, "the fallback happens on the same connection");
    const pub = await ready(client({ protocol: 2 }));
    const rec = recorder(sub);
    assert.equal(await sub.subscribe("fallback"), 1);
    assert.equal(sub.mode, "subscriber", "RESP2 semantics after the fallback");
    assert.deepEqual(await sub.ping(), ["pong", ""], "server answers PING in RESP2 subscribed form");
    assert.equal(await pub.publish("fallback", "over resp2"), 1);
    assert.deepEqual(await rec.atLeast(1), [["message", "fallback", "over resp2"]]);
    assert.equal(await sub.unsubscribe(), 0);
    assert.equal(sub.mode, "normal");
    assert.equal(await sub.echo("plain RESP2"), "plain RESP2");
    assert.equal(await sub.client("GETNAME"), null);
  });
});
