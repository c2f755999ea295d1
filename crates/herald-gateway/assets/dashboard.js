// The dashboard: live totals, a rate chart, the top channels, tail and publish.
"use strict";

const SCOPE = "dashboard";
const $ = (id) => document.getElementById(id);
let tail = null;
let lastStats = null;
let source = null;

async function start() {
  Herald.adoptFragmentToken(SCOPE);
  let me;
  try {
    me = await Herald.api(SCOPE, "/api/whoami");
  } catch (err) {
    return showSignIn(err.status === 401 ? "" : err.message);
  }
  if (!me.operator) {
    return showSignIn("This token has no 'admin' claim: the dashboard is for operators.");
  }
  $("signin").hidden = true;
  $("main").hidden = false;
  $("publish-panel").hidden = !me.may_publish;
  streamStats();
  refreshTop();
}

function showSignIn(message) {
  if (source) source.close();
  source = null;
  $("main").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("status").textContent = "signed out";
}

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  Herald.setToken(SCOPE, $("signin-token").value.trim());
  // A link with #token=... opened in this tab signs in with that token.
window.addEventListener("hashchange", start);
start();
});

$("signin-dev").addEventListener("click", async () => {
  try {
    const minted = await Herald.api(SCOPE, "/api/dev/token", { method: "POST", body: { user: "operator", admin: true } });
    Herald.setToken(SCOPE, minted.token);
    // A link with #token=... opened in this tab signs in with that token.
window.addEventListener("hashchange", start);
start();
  } catch (err) {
    $("signin-error").textContent = err.message;
  }
});

function streamStats() {
  if (source) source.close();
  source = new EventSource(Herald.withToken(SCOPE, "/api/stats/stream"));
  source.addEventListener("stats", (event) => {
    $("status").textContent = "live";
    $("status").className = "status live";
    render(JSON.parse(event.data));
  });
  source.addEventListener("herald.close", () => {
    source.close();
    showSignIn("The token expired: sign in again.");
  });
  source.onerror = () => {
    $("status").textContent = "reconnecting…";
    $("status").className = "status";
  };
}

function render(stats) {
  lastStats = stats;
  const c = stats.connections;
  $("stat-connections").textContent = c.total;
  $("stat-connections-split").textContent = `resp ${c.resp} · ws ${c.ws} · sse ${c.sse}`;
  $("stat-channels").textContent = stats.channels;
  $("stat-shard-channels").textContent = stats.shard_channels ? `+ ${stats.shard_channels} shard` : "";
  $("stat-patterns").textContent = stats.patterns;
  $("stat-published").textContent = Herald.formatRate(stats.messages.published_per_second);
  $("stat-delivered").textContent = Herald.formatRate(stats.messages.delivered_per_second);
  $("stat-published-total").textContent = `${stats.messages.published_total} total`;
  $("stat-delivered-total").textContent = `${stats.messages.delivered_total} total`;
  const s = stats.slow_consumer_disconnects;
  $("stat-slow").textContent = s.total;
  $("stat-slow-split").textContent = `resp ${s.resp} · ws ${s.ws} · sse ${s.sse}`;
  drawChart(stats.history);
  renderBacklog(stats.backlog);
  if (!$("search").value.trim()) {
    renderTop($("order").value === "rate" ? stats.top_by_rate : stats.top_by_subscribers);
  } else {
    refreshTop();
  }
}

function drawChart(history) {
  const published = history.published_per_second;
  const delivered = history.delivered_per_second;
  const max = Math.max(1, ...published, ...delivered);
  // Fixed slots, newest at the right edge: the x axis always spans the five minutes.
  const slots = 300;
  const points = (series) => {
    const n = series.length;
    return series
      .map((value, i) => {
        const x = 600 - ((n - 1 - i) * 600) / (slots - 1);
        const y = 118 - (value / max) * 112;
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      })
      .join(" ");
  };
  $("chart-published").setAttribute("points", points(published));
  $("chart-delivered").setAttribute("points", points(delivered));
  $("chart-max").textContent = `peak ${Herald.formatRate(max)}/s`;
}

function formatBytes(bytes) {
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MB`;
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(1)} KB`;
  return `${bytes} B`;
}

function renderBacklog(rows) {
  $("backlog-rows").replaceChildren(
    ...rows.map((row) =>
      Herald.el(
        "tr",
        { "data-client": String(row.client) },
        Herald.el("td", { text: row.transport }),
        Herald.el("td", { class: "channel", text: row.name ? `${row.client} (${row.name})` : String(row.client) }),
        Herald.el("td", { class: "channel", text: row.peer || "" }),
        Herald.el("td", { class: "num queued", text: formatBytes(row.queued_bytes) }),
      ),
    ),
  );
  $("backlog-empty").hidden = rows.length > 0;
}

let topRequest = 0;
async function refreshTop() {
  const search = $("search").value.trim();
  if (!search && lastStats) {
    renderTop($("order").value === "rate" ? lastStats.top_by_rate : lastStats.top_by_subscribers);
    return;
  }
  const request = ++topRequest;
  const query = new URLSearchParams({ by: $("order").value, limit: "20" });
  if (search) query.set("search", search);
  try {
    const answer = await Herald.api(SCOPE, `/api/top-channels?${query}`);
    if (request === topRequest) renderTop(answer.channels);
  } catch (err) {
    $("top-empty").textContent = err.message;
    $("top-empty").hidden = false;
  }
}

function renderTop(rows) {
  const body = $("top-rows");
  body.replaceChildren(
    ...rows.map((row) =>
      Herald.el(
        "tr",
        { "data-channel": row.channel },
        Herald.el("td", { class: "channel", text: row.channel }),
        Herald.el("td", { class: "num subscribers", text: String(row.subscribers) }),
        Herald.el("td", { class: "num rate", text: Herald.formatRate(row.rate) }),
        Herald.el("td", { class: "num published", text: String(row.published) }),
      ),
    ),
  );
  $("top-empty").textContent = $("search").value.trim() ? "No channel matches." : "No channel has a subscriber.";
  $("top-empty").hidden = rows.length > 0;
}

$("search").addEventListener("input", refreshTop);
$("order").addEventListener("change", refreshTop);

// Tail: one WebSocket per tailed name; a name with glob characters is a pattern.
$("tail-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("tail-input").value.trim();
  if (!name) return;
  stopTail();
  const isPattern = /[*?[]/.test(name);
  $("tail-log").replaceChildren();
  tail = Herald.socket(SCOPE, {
    onOpen: (send) =>
      send({ type: "subscribe", id: 1, ...(isPattern ? { patterns: [name] } : { channels: [name] }) }),
    onStatus: (status) => ($("tail-status").textContent = status === "live" ? `tailing ${name}` : status),
    onFrame: (frame) => {
      if (frame.type === "error") $("tail-status").textContent = frame.message;
      if (frame.type !== "message") return;
      const time = new Date().toLocaleTimeString();
      const item = Herald.el(
        "li",
        { class: "tail-message" },
        Herald.el("span", { class: "dim", text: `${time} ` }),
        Herald.el("span", { class: "tail-channel", text: frame.channel }),
        Herald.el("span", { class: "tail-data", text: ` ${Herald.describeData(frame)}` }),
      );
      const log = $("tail-log");
      log.prepend(item);
      while (log.children.length > 200) log.lastChild.remove();
    },
  });
});

function stopTail() {
  if (tail) tail.close();
  tail = null;
  $("tail-status").textContent = "";
}
$("tail-stop").addEventListener("click", stopTail);

$("publish-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const channel = $("publish-channel").value.trim();
  if (!channel) return;
  try {
    const answer = await Herald.api(SCOPE, `/api/publish/${encodeURIComponent(channel)}`, {
      method: "POST",
      raw: $("publish-payload").value,
    });
    $("publish-result").textContent = `delivered to ${answer.receivers} receiver${answer.receivers === 1 ? "" : "s"}`;
  } catch (err) {
    $("publish-result").textContent = err.message;
  }
});

// A link with #token=... opened in this tab signs in with that token.
window.addEventListener("hashchange", start);
start();
