// What the browser tests share: a Herald server on ephemeral ports, redis-cli helpers,
// and Debian's chromium driven by playwright-core. Every process started here is killed
// when the test file ends (also on failure), and every wait is bounded.
import { spawn, execFile } from "node:child_process";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const HERALD_BIN = process.env.HERALD_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, "target"), "debug/herald");
export const CHROMIUM = process.env.HERALD_CHROMIUM || "/usr/bin/chromium";
export const SCREENSHOT_DIR = process.env.HERALD_SCREENSHOT_DIR || path.join(ROOT, ".cache/screenshots");
const START_TIMEOUT_MS = 15000;

const children = new Set();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

function track(child) {
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}

// Starts `herald server` with `args` on ephemeral ports; resolves with its ports once
// both the RESP and the HTTP listener are up.
export function startHerald(args = []) {
  const child = track(
    spawn(HERALD_BIN, ["server", "--port", "0", "--http-port", "0", ...args], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, RUST_LOG: "info", NO_COLOR: "1" },
    }),
  );
  let log = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`herald did not start within ${START_TIMEOUT_MS} ms; log:\n${log}`));
    }, START_TIMEOUT_MS);
    let respPort = null;
    let httpPort = null;
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      log += chunk;
      // Whole lines only: a chunk may end in the middle of a port number.
      const lines = log.slice(0, log.lastIndexOf("\n") + 1);
      respPort ??= /ready to accept connections addr=\S*:(\d+)\s/.exec(lines)?.[1] ?? null;
      httpPort ??= /http_addr=\S*:(\d+)\s/.exec(lines)?.[1] ?? null;
      if (respPort && httpPort) {
        clearTimeout(timer);
        resolve({
          respPort: Number(respPort),
          httpPort: Number(httpPort),
          url: `http://127.0.0.1:${httpPort}`,
          log: () => log,
          async stop() {
            if (child.exitCode !== null) return;
            const exited = new Promise((done) => child.once("exit", done));
            child.kill("SIGTERM");
            const timeout = setTimeout(() => child.kill("SIGKILL"), 5000);
            await exited;
            clearTimeout(timeout);
          },
        });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`herald exited with ${code} before it was ready; log:\n${log}`));
    });
  });
}

// One redis-cli command; resolves with its stdout.
export function redisCli(port, ...args) {
  return new Promise((resolve, reject) => {
    execFile("redis-cli", ["-p", String(port), ...args], { timeout: 10000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli ${args.join(" ")}: ${err.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}

// A long-running redis-cli (SUBSCRIBE, a repeated PUBLISH...), killed by `stop()`.
export function redisCliProcess(port, ...args) {
  const child = track(spawn("redis-cli", ["-p", String(port), ...args], { stdio: ["ignore", "pipe", "pipe"] }));
  let output = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk) => (output += chunk));
  return {
    output: () => output,
    async waitFor(text, timeoutMs = 10000) {
      const deadline = Date.now() + timeoutMs;
      while (!output.includes(text)) {
        if (Date.now() > deadline) throw new Error(`redis-cli never printed '${text}'; got:\n${output}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop() {
      child.kill("SIGKILL");
    },
  };
}

// Polls `check` until it returns a truthy value.
export async function eventually(check, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Debian's chromium, headless, with a fresh profile removed by `close()`.
export async function launchBrowser() {
  const profile = mkdtempSync(path.join(tmpdir(), "herald-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 30000,
  });
  context.setDefaultTimeout(10000);
  const errors = [];
  context.on("weberror", (error) => errors.push(String(error.error())));
  return {
    context,
    // Uncaught exceptions in the pages so far: every test asserts there were none.
    // (Console errors are not counted: a refused request logs one by design.)
    errors,
    newPage: () => context.newPage(),
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, name), fullPage: true });
}

// `herald token` with `args`, signed with `secret`.
export function mintToken(secret, ...args) {
  return new Promise((resolve, reject) => {
    execFile(HERALD_BIN, ["token", "--secret", secret, ...args], { timeout: 10000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`herald token: ${err.message} ${stderr}`));
      else resolve(stdout.trim());
    });
  });
}
