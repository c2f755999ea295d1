// Shared by the Herald pages: the token, JSON API calls, and a reconnecting WebSocket.
// No framework, no build step: the gateway serves this file as is.
"use strict";

const Herald = (() => {
  const storageKey = (scope) => `herald.${scope}.token`;

  // A token handed over in the URL fragment (#token=...) moves into this tab's
  // sessionStorage and out of the address bar, so it is not bookmarked or shared.
  function adoptFragmentToken(scope) {
    const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (match) {
      sessionStorage.setItem(storageKey(scope), decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
  }

  function token(scope) {
    return sessionStorage.getItem(storageKey(scope));
  }

  function setToken(scope, value) {
    if (value) sessionStorage.setItem(storageKey(scope), value);
    else sessionStorage.removeItem(storageKey(scope));
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // fetch() with the token and JSON both ways; throws ApiError with the server's message.
  async function api(scope, path, { method = "GET", body, raw } = {}) {
    const headers = {};
    const bearer = token(scope);
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    let payload;
    if (raw !== undefined) {
      payload = raw;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const response = await fetch(path, { method, headers, body: payload });
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (_) {
      throw new ApiError(response.status, "bad_response", `not JSON: ${text.slice(0, 200)}`);
    }
    if (!response.ok) {
      const error = (json && json.error) || {};
      throw new ApiError(response.status, error.code || "error", error.message || response.statusText);
    }
    return json;
  }

  function withToken(scope, path) {
    const bearer = token(scope);
    if (!bearer) return path;
    return `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(bearer)}`;
  }

  // A WebSocket that reconnects (1 s, doubling to 30 s) and replays `onOpen` each time.
  function socket(scope, { onOpen, onFrame, onStatus }) {
    let ws = null;
    let delay = 1000;
    let closed = false;
    function connect() {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      ws = new WebSocket(withToken(scope, `${scheme}//${location.host}/ws`));
      ws.onopen = () => {
        delay = 1000;
        onStatus && onStatus("live");
        onOpen && onOpen(send);
      };
      ws.onmessage = (event) => {
        try {
          onFrame(JSON.parse(event.data));
        } catch (err) {
          console.error("herald: bad frame", err);
        }
      };
      ws.onclose = (event) => {
        if (closed) return;
        onStatus && onStatus(event.code === 4001 ? "token expired" : "reconnecting…");
        if (event.code === 4001) return;
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
      };
    }
    function send(frame) {
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
    }
    connect();
    return {
      send,
      close() {
        closed = true;
        if (ws) ws.close(1000);
      },
    };
  }

  // Text for a message frame's data, whatever its encoding.
  function describeData(frame) {
    if (frame.encoding === "json") return JSON.stringify(frame.data);
    if (frame.encoding === "base64") return `base64:${frame.data}`;
    return String(frame.data);
  }

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function formatRate(value) {
    if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
    if (value >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
    if (value >= 100) return value.toFixed(0);
    return value.toFixed(value >= 10 ? 1 : 2);
  }

  return { adoptFragmentToken, token, setToken, api, withToken, socket, describeData, el, formatRate, ApiError };
})();
