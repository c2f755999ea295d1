// The notification demo: sign in as a user, see the history and an unread count, mark as
// read, and watch new notifications arrive over the WebSocket.
"use strict";

const SCOPE = "demo";
const $ = (id) => document.getElementById(id);
let live = null;
let user = null;

async function start() {
  Herald.adoptFragmentToken(SCOPE);
  if (!Herald.token(SCOPE)) return signedOut("");
  let me;
  try {
    me = await Herald.api(SCOPE, "/api/whoami");
  } catch (err) {
    return signedOut(err.message);
  }
  if (!me.user) return signedOut("This token names no user.");
  user = me.user;
  $("signin").hidden = true;
  $("main").hidden = false;
  $("who").textContent = `signed in as ${user}`;
  $("bell").hidden = false;
  $("signout").hidden = false;
  await refresh();
  live = Herald.socket(SCOPE, {
    onOpen: (send) => {
      send({ type: "subscribe", id: 1, channels: [`notifications:user:${user}`, "notifications:broadcast"] });
      refresh();
    },
    onStatus: (status) => {
      $("status").textContent = status;
      $("status").className = status === "live" ? "status live" : "status";
    },
    onFrame: (frame) => {
      if (frame.type === "message") refresh(frame.channel === "notifications:broadcast" ? frame.data : null);
    },
  });
}

function signedOut(message) {
  if (live) live.close();
  live = null;
  user = null;
  $("main").hidden = true;
  $("signin").hidden = false;
  $("bell").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
  $("status").textContent = "signed out";
  $("status").className = "status";
  $("signin-error").textContent = message;
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const id = $("signin-user").value.trim();
  if (!id) return;
  try {
    const minted = await Herald.api(SCOPE, "/api/dev/token", { method: "POST", body: { user: id } });
    Herald.setToken(SCOPE, minted.token);
    start();
  } catch (err) {
    $("signin-error").textContent = err.message;
  }
});

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  Herald.setToken(SCOPE, $("signin-token").value.trim());
  start();
});

$("signout").addEventListener("click", () => {
  Herald.setToken(SCOPE, null);
  signedOut("");
});

// Broadcasts are not stored per user: they are shown as they arrive, above the history.
const broadcasts = [];

let refreshing = 0;
async function refresh(broadcast) {
  if (broadcast) broadcasts.unshift(broadcast);
  const request = ++refreshing;
  let answer;
  try {
    answer = await Herald.api(SCOPE, "/api/notifications?limit=50");
  } catch (err) {
    $("signin-error").textContent = err.message;
    return;
  }
  if (request !== refreshing) return;
  $("unread").textContent = String(answer.unread);
  $("unread").className = answer.unread ? "badge" : "badge zero";
  const items = [
    ...broadcasts.map((n) => item(n, true)),
    ...answer.notifications.map((n) => item(n, false)),
  ];
  $("list").replaceChildren(...items);
  $("list-empty").hidden = items.length > 0;
}

function item(notification, isBroadcast) {
  const node = Herald.el(
    "li",
    { class: `notification ${notification.type} ${notification.read ? "read" : "unread"}`, "data-id": notification.id },
    Herald.el("span", { class: "kind", text: isBroadcast ? "broadcast" : notification.type }),
    Herald.el("strong", { class: "title", text: notification.title }),
    Herald.el("span", { class: "message", text: ` ${notification.message}` }),
    Herald.el("time", { class: "dim", text: ` ${new Date(notification.timestamp).toLocaleTimeString()}` }),
  );
  if (!isBroadcast && !notification.read) {
    const button = Herald.el("button", { type: "button", class: "mark", text: "Mark as read" });
    button.addEventListener("click", () => markRead(notification.id));
    node.append(button);
  }
  return node;
}

async function markRead(id) {
  try {
    const answer = await Herald.api(SCOPE, `/api/notifications/${encodeURIComponent(id)}/read`, { method: "POST" });
    $("unread").textContent = String(answer.unread);
    await refresh();
  } catch (err) {
    $("signin-error").textContent = err.message;
  }
}

$("send-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const to = $("send-user").value.trim();
  try {
    await Herald.api(SCOPE, "/api/notifications/send", {
      method: "POST",
      body: {
        user: to || null,
        type: $("send-kind").value,
        title: $("send-title").value.trim() || "Hello",
        message: $("send-message").value,
      },
    });
    $("send-result").textContent = to ? `sent to ${to}` : "broadcast sent";
  } catch (err) {
    $("send-result").textContent = err.message;
  }
});

start();
