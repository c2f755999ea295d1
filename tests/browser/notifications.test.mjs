// The notification demo in headless chromium: two users in two tabs (separate browser
// contexts, so separate sessionStorage and tokens), notifications sent through the
// notification service, the unread count, mark as read, and isolation between users.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startHerald, redisCli, eventually, launchBrowser, screenshot } from "./harness.mjs";

let herald;
let alice;
let bob;

before(async () => {
  herald = await startHerald(["--gateway-dev-tokens"]);
  alice = await launchBrowser();
  bob = await launchBrowser();
});

after(async () => {
  await alice?.close();
  await bob?.close();
  await herald?.stop();
});

async function signIn(browser, user) {
  const page = await browser.newPage();
  await page.goto(herald.url + "/demo/notifications");
  await page.fill("#signin-user", user);
  await page.click("#signin-form button[type=submit]");
  await eventually(async () => (await page.locator("#who").textContent()) === `signed in as ${user}`, `${user} signed in`);
  await eventually(async () => (await page.locator("#status").textContent()) === "live", `${user}'s socket live`);
  return page;
}

// Sends through the gateway's notification service with an operator token.
async function send(body) {
  const minted = await (await fetch(`${herald.url}/api/dev/token`, { method: "POST", body: JSON.stringify({ user: "ops", admin: true }) })).json();
  const response = await fetch(`${herald.url}/api/notifications/send`, {
    method: "POST",
    headers: { Authorization: `Bearer ${minted.token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()).notification;
}

const unread = (page) => page.locator("#unread").textContent();

test("a notification arrives live, is counted, marked read, and stays private", async () => {
  const alicePage = await signIn(alice, "alice");
  const bobPage = await signIn(bob, "bob");
  assert.equal(await unread(alicePage), "0");

  const first = await send({ user: "alice", type: "warning", title: "Quota", message: "90% used", data: { used: 0.9 } });
  await eventually(async () => (await unread(alicePage)) === "1", "alice's unread count 1");
  const item = alicePage.locator(`li[data-id="${first.id}"]`);
  assert.match(await item.textContent(), /Quota/);
  assert.match(await item.getAttribute("class"), /unread/);

  // The second one comes from bob's tab, through the same service.
  await bobPage.fill("#send-user", "alice");
  await bobPage.selectOption("#send-kind", "success");
  await bobPage.fill("#send-title", "Deployed");
  await bobPage.fill("#send-message", "v2 is live");
  await bobPage.click("#send-form button[type=submit]");
  await eventually(async () => (await bobPage.locator("#send-result").textContent()) === "sent to alice", "bob sent");
  await eventually(async () => (await unread(alicePage)) === "2", "alice's unread count 2");
  const titles = await alicePage.locator("#list li .title").allTextContents();
  assert.deepEqual(titles, ["Deployed", "Quota"], "newest first");

  // The history is the notification service's list, visible over RESP.
  const stored = await redisCli(herald.respPort, "LRANGE", "user:alice:notifications", "0", "-1");
  assert.match(stored, /"title":"Deployed"/);
  assert.match(stored, /"title":"Quota"/);

  await screenshot(alicePage, "notifications.png");
  await item.locator("button.mark").click();
  await eventually(async () => (await unread(alicePage)) === "1", "alice's unread count drops to 1");
  await eventually(async () => /\bread\b/.test(await item.getAttribute("class")), "marked read");
  assert.equal(await item.locator("button.mark").count(), 0);
  // Stored as read, so a reload agrees.
  await alicePage.reload();
  await eventually(async () => (await unread(alicePage)) === "1", "unread 1 after reload");

  // Bob saw none of it, live or after a reload.
  assert.equal(await unread(bobPage), "0");
  assert.equal(await bobPage.locator("#list li").count(), 0);
  await bobPage.reload();
  await eventually(async () => (await bobPage.locator("#who").textContent()) === "signed in as bob", "bob still signed in");
  await eventually(async () => (await bobPage.locator("#list-empty").isVisible()), "bob's list empty");
  assert.equal(await unread(bobPage), "0");
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
});

test("bob's token cannot read or mark alice's notifications", async () => {
  const sent = await send({ user: "alice", title: "Secret", message: "for alice" });
  const minted = await (await fetch(`${herald.url}/api/dev/token`, { method: "POST", body: JSON.stringify({ user: "bob" }) })).json();
  const asBob = (path, init = {}) => fetch(`${herald.url}${path}`, { ...init, headers: { Authorization: `Bearer ${minted.token}` } });
  const list = await asBob("/api/notifications?user=alice");
  assert.equal(list.status, 403);
  assert.equal((await list.json()).error.code, "forbidden");
  // Marking by id works only within the caller's own history.
  const mark = await asBob(`/api/notifications/${sent.id}/read`, { method: "POST" });
  assert.equal(mark.status, 404);
  // A WebSocket subscription to alice's channel is refused too.
  const page = await bob.newPage();
  await page.goto(herald.url + "/demo/notifications");
  const refusal = await page.evaluate(
    (token) =>
      new Promise((resolve) => {
        const ws = new WebSocket(`ws://${location.host}/ws?token=${token}`);
        ws.onopen = () => ws.send(JSON.stringify({ type: "subscribe", id: 1, channels: ["notifications:user:alice"] }));
        ws.onmessage = (event) => {
          resolve(JSON.parse(event.data));
          ws.close();
        };
      }),
    minted.token,
  );
  assert.equal(refusal.type, "error");
  assert.equal(refusal.code, "forbidden");
  await page.close();
});

test("signing out forgets the token; a bad user id is refused with a reason", async () => {
  const page = await signIn(alice, "carol");
  await page.click("#signout");
  await eventually(() => page.locator("#signin").isVisible(), "sign-in shown");
  await page.reload();
  await eventually(() => page.locator("#signin").isVisible(), "still signed out after reload");
  await page.fill("#signin-user", "not a valid id!");
  await page.click("#signin-form button[type=submit]");
  await eventually(async () => /user id/.test(await page.locator("#signin-error").textContent()), "bad id refused");
  await page.close();
  assert.deepEqual(alice.errors, []);
});
