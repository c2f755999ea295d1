// The dashboard in headless chromium, against a real Herald fed by redis-cli.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startHerald, redisCli, redisCliProcess, eventually, launchBrowser, screenshot, mintToken } from "./harness.mjs";

let herald;
let browser;

before(async () => {
  herald = await startHerald();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await herald?.stop();
});

const cell = (page, channel, column) => page.locator(`#top-rows tr[data-channel="${channel}"] td.${column}`);

test("shows a channel created by redis-cli subscribers with its subscriber count", async () => {
  const first = redisCliProcess(herald.respPort, "SUBSCRIBE", "news");
  const second = redisCliProcess(herald.respPort, "SUBSCRIBE", "news", "weather");
  try {
    await first.waitFor("news");
    await second.waitFor("weather");
    const page = await browser.newPage();
    await page.goto(herald.url + "/");
    await eventually(async () => (await cell(page, "news", "subscribers").textContent()) === "2", "news with 2 subscribers");
    assert.equal(await cell(page, "weather", "subscribers").textContent(), "1");
    await eventually(async () => (await page.locator("#stat-channels").textContent()) === "2", "2 channels");
    // 2 redis-cli subscribers, plus the gateway's own connection for the notification history.
    const connections = Number(await page.locator("#stat-connections").textContent());
    assert.ok(connections >= 2, `connections ${connections}`);
    // The search box narrows the table.
    await page.fill("#search", "weat");
    await eventually(async () => (await page.locator("#top-rows tr").count()) === 1, "search narrows to one row");
    assert.equal(await page.locator("#top-rows tr").getAttribute("data-channel"), "weather");
    await page.fill("#search", "");
    // A subscriber leaving is seen too.
    second.stop();
    await eventually(async () => (await cell(page, "news", "subscribers").textContent()) === "1", "news back to 1 subscriber");
    await page.close();
  } finally {
    first.stop();
    second.stop();
  }
  assert.deepEqual(browser.errors, []);
});

test("the message rate rises while a publisher runs, in the table, the totals and the chart", async () => {
  const subscriber = redisCliProcess(herald.respPort, "SUBSCRIBE", "ticks");
  // Bystanders, so the table (and the screenshot) has more than one row.
  const bystanders = redisCliProcess(herald.respPort, "SUBSCRIBE", "orders:eu", "orders:us", "chat:lobby");
  await subscriber.waitFor("ticks");
  await bystanders.waitFor("chat:lobby");
  const page = await browser.newPage();
  await page.goto(herald.url + "/");
  await eventually(async () => (await cell(page, "ticks", "rate").textContent()) === "0.00", "ticks listed, idle");
  // About 100 publishes a second for up to 8 seconds.
  const publisher = redisCliProcess(herald.respPort, "-r", "800", "-i", "0.01", "PUBLISH", "ticks", "tick");
  try {
    await eventually(async () => Number(await cell(page, "ticks", "rate").textContent()) >= 20, "ticks rate >= 20/s", 8000);
    assert.ok(Number(await page.locator("#stat-published").textContent()) > 0);
    assert.ok(Number(await page.locator("#stat-delivered").textContent()) > 0);
    const points = await page.locator("#chart-published").getAttribute("points");
    const heights = points.trim().split(" ").map((point) => Number(point.split(",")[1]));
    assert.ok(Math.min(...heights) < 100, `the chart rose: ${points}`);
    // By rate, ticks is the top channel.
    await page.selectOption("#order", "rate");
    await eventually(async () => (await page.locator("#top-rows tr").first().getAttribute("data-channel")) === "ticks", "ticks first by rate");
    await screenshot(page, "dashboard.png");
  } finally {
    publisher.stop();
    subscriber.stop();
    bystanders.stop();
    await page.close();
  }
  assert.deepEqual(browser.errors, []);
});

test("tailing a pattern shows messages published over RESP", async () => {
  const page = await browser.newPage();
  await page.goto(herald.url + "/");
  await page.fill("#tail-input", "orders:*");
  await page.click("#tail-form button[type=submit]");
  await eventually(async () => (await page.locator("#tail-status").textContent()) === "tailing orders:*", "tail live");
  // The subscription is in place once the server counts the pattern.
  await eventually(async () => (await redisCli(herald.respPort, "PUBSUB", "NUMPAT")).trim() === "1", "NUMPAT 1");
  assert.equal((await redisCli(herald.respPort, "PUBLISH", "orders:eu:7", '{"id":7}')).trim(), "1");
  await redisCli(herald.respPort, "PUBLISH", "billing:1", "not for the tail");
  await redisCli(herald.respPort, "PUBLISH", "orders:us:8", "plain text");
  await eventually(async () => (await page.locator("#tail-log li").count()) === 2, "two tailed messages");
  const lines = await page.locator("#tail-log li").allTextContents();
  assert.match(lines[0], /orders:us:8 plain text/);
  assert.match(lines[1], /orders:eu:7 \{"id":7\}/);
  await page.click("#tail-stop");
  await eventually(async () => (await redisCli(herald.respPort, "PUBSUB", "NUMPAT")).trim() === "0", "NUMPAT back to 0");
  await page.close();
  assert.deepEqual(browser.errors, []);
});

test("the publish form reaches a redis-cli subscriber", async () => {
  const subscriber = redisCliProcess(herald.respPort, "SUBSCRIBE", "chat");
  try {
    await subscriber.waitFor("chat");
    const page = await browser.newPage();
    await page.goto(herald.url + "/");
    assert.equal(await page.locator("#publish-panel").isVisible(), true);
    await page.fill("#publish-channel", "chat");
    await page.fill("#publish-payload", "hello from the dashboard");
    await page.click("#publish-form button[type=submit]");
    await eventually(async () => (await page.locator("#publish-result").textContent()) === "delivered to 1 receiver", "publish result");
    await subscriber.waitFor("hello from the dashboard");
    await page.close();
  } finally {
    subscriber.stop();
  }
  assert.deepEqual(browser.errors, []);
});

test("with authentication the dashboard wants an admin token", async () => {
  const secret = "browser-test-secret";
  const secured = await startHerald(["--gateway-jwt-secret", secret]);
  try {
    const page = await browser.newPage();
    await page.goto(secured.url + "/");
    await eventually(() => page.locator("#signin").isVisible(), "sign-in shown");
    assert.equal(await page.locator("#main").isVisible(), false);
    // A user token is refused with a reason; no data is shown.
    const user = await mintToken(secret, "--sub", "alice");
    await page.fill("#signin-token", user);
    await page.click("#signin-form button[type=submit]");
    await eventually(async () => /admin/.test(await page.locator("#signin-error").textContent()), "no-admin message");
    assert.equal(await page.locator("#main").isVisible(), false);
    // Development sign-in is off on this server.
    await page.click("#signin-dev");
    await eventually(async () => /--gateway-dev-tokens/.test(await page.locator("#signin-error").textContent()), "dev sign-in off");
    // An admin token in the URL fragment signs in and leaves the address bar.
    const admin = await mintToken(secret, "--sub", "ops", "--admin");
    await page.goto(`${secured.url}/#token=${admin}`);
    await eventually(() => page.locator("#main").isVisible(), "dashboard shown");
    await eventually(async () => (await page.locator("#status").textContent()) === "live", "stats stream live");
    assert.equal(new URL(page.url()).hash, "");
    // The admin token grants no publishing, so the form stays hidden.
    assert.equal(await page.locator("#publish-panel").isVisible(), false);
    await page.close();
  } finally {
    await secured.stop();
  }
  assert.deepEqual(browser.errors, []);
});

test("a subscriber that stops reading shows among the slowest subscribers", async () => {
  const net = await import("node:net");
  const page = await browser.newPage();
  await page.goto(herald.url + "/");
  await eventually(() => page.locator("#backlog-empty").isVisible(), "empty backlog");
  await redisCli(herald.respPort, "CONFIG", "SET", "client-output-buffer-limit", "pubsub 256mb 0 0");
  const stalled = net.connect(herald.respPort, "127.0.0.1");
  await new Promise((resolve) => stalled.once("connect", resolve));
  stalled.write("*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$7\r\nstalled\r\n*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nbulk\r\n");
  stalled.pause(); // never reads again
  try {
    await eventually(async () => /bulk 1/.test((await redisCli(herald.respPort, "PUBSUB", "NUMSUB", "bulk")).replace(/\s+/g, " ")), "subscribed");
    const publisher = net.connect(herald.respPort, "127.0.0.1");
    await new Promise((resolve) => publisher.once("connect", resolve));
    const payload = "x".repeat(1 << 20);
    const command = `*3\r\n$7\r\nPUBLISH\r\n$4\r\nbulk\r\n$${payload.length}\r\n${payload}\r\n`;
    for (let i = 0; i < 40; i++) publisher.write(command);
    const row = page.locator("#backlog-rows tr").first();
    await eventually(async () => (await page.locator("#backlog-rows tr").count()) > 0, "a backlog row");
    const cells = await row.locator("td").allTextContents();
    assert.equal(cells[0], "resp");
    assert.match(cells[1], /\(stalled\)$/);
    await eventually(async () => /MB$/.test(await row.locator("td.queued").textContent()), "megabytes queued");
    publisher.destroy();
  } finally {
    stalled.destroy();
    await redisCli(herald.respPort, "CONFIG", "SET", "client-output-buffer-limit", "pubsub 32mb 8mb 60");
  }
  await eventually(() => page.locator("#backlog-empty").isVisible(), "backlog empty again once the client is gone");
  await page.close();
  assert.deepEqual(browser.errors, []);
});
