// The route map (`config-pusher serve` /ui) in a real headless Chromium: the page loads without
// console errors, draws the examples' canary with its 90/10 weights, follows a YAML edit within
// 2 s, and asks for the token when serve has one. A screenshot goes to
// target/browser/route-map.png (the README's picture comes from here).
//
// Run by `make test-browser` (part of `make test`), which builds config-pusher, installs
// Debian's chromium and playwright-core (driver only, no browser download).
// CHROMIUM overrides the browser path.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const PUSHER = path.join(ROOT, "target/debug/config-pusher");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const OUT = path.join(ROOT, "target/browser");
const children = [];

after(() => { for (const c of children) c.kill("SIGKILL"); });

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function until(what, deadlineMs, check) {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try { if (await check()) return; } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`timed out after ${deadlineMs} ms: ${what}`);
    await new Promise(r => setTimeout(r, 50));
  }
}

/** `config-pusher serve` on a copy of examples/, ready; its folder and base URL. */
async function serve(extraArgs = []) {
  assert.ok(fs.existsSync(PUSHER), `${PUSHER} is missing: make test-browser builds it`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gammaroute-ui-"));
  fs.cpSync(path.join(ROOT, "examples"), path.join(dir, "routes"), { recursive: true });
  const port = await freePort();
  const child = spawn(PUSHER, ["serve", "--from", path.join(dir, "routes"), "--listen", `127.0.0.1:${port}`, ...extraArgs],
    { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
  children.push(child);
  let stderr = "";
  child.stderr.on("data", d => { stderr += d; });
  const base = `http://127.0.0.1:${port}`;
  await until(`serve ready (${stderr})`, 20000, async () => (await fetch(base + "/readyz")).ok);
  return { dir, base, child };
}

async function browser() {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (make test-browser does)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
}

/** A page that records console errors and uncaught exceptions. */
async function openPage(b, url) {
  const page = await b.newPage({ viewport: { width: 1280, height: 1400 } });
  const errors = [];
  page.on("console", m => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", e => errors.push(String(e)));
  await page.goto(url);
  return { page, errors };
}

/** The shares drawn for the canary route's backends, e.g. {"demo/web-v1:80": "90%"}. */
async function canaryShares(page) {
  return page.$$eval('section[data-role="gateway/demo/gateway"] [data-route="demo/shop"] .backend',
    rows => Object.fromEntries(rows.map(r => [r.dataset.backend, r.dataset.share])));
}

test("the route map shows the canary, follows a YAML edit within 2 s, without console errors", async () => {
  const { dir, base } = await serve();
  const b = await browser();
  try {
    const { page, errors } = await openPage(b, base + "/ui");
    await page.waitForSelector('[data-route="demo/shop"] .backend', { timeout: 10000 });
    assert.deepEqual(await canaryShares(page), { "demo/web-v1:80": "90%", "demo/web-v2:80": "10%" });
    // Status problems in place: the broken route's BackendNotFound is drawn next to it.
    const broken = await page.textContent('section[data-role="gateway/demo/gateway"] [data-route="demo/broken"]');
    assert.match(broken, /ResolvedRefs=False BackendNotFound/);
    // Mesh roles, with producer and consumer routes.
    assert.match(await page.textContent('section[data-role="mesh/frontend"]'), /consumer routes of frontend/);

    fs.mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: path.join(OUT, "route-map.png"), fullPage: true });

    // A live edit: 90/10 becomes 50/50; the page follows within 2 s of the save.
    const file = path.join(dir, "routes", "10-canary.yaml");
    const yaml = fs.readFileSync(file, "utf8").replace("weight: 90", "weight: 50").replace("weight: 10", "weight: 50");
    fs.writeFileSync(file, yaml);
    const saved = Date.now();
    await until("the page shows 50/50", 2000, async () => {
      const s = await canaryShares(page);
      return s["demo/web-v1:80"] === "50%" && s["demo/web-v2:80"] === "50%";
    });
    console.log(`route map updated ${Date.now() - saved} ms after the save`);
    assert.deepEqual(errors, [], "no console errors");
  } finally {
    await b.close();
  }
});

test("with --token-file the page asks for the token, and a wrong one is refused", async () => {
  const tokenFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "gammaroute-token-")), "token");
  fs.writeFileSync(tokenFile, "s3cret\n");
  const { base } = await serve(["--token-file", tokenFile]);
  assert.equal((await fetch(base + "/v1/map")).status, 401, "/v1/map is behind the token");
  const b = await browser();
  try {
    const { page } = await openPage(b, base + "/ui");
    await page.waitForSelector("#auth", { state: "visible", timeout: 10000 });
    assert.equal(await page.locator("[data-route]").count(), 0, "no data without the token");
    await page.fill("#token", "wrong");
    await page.click("#auth button");
    await page.waitForSelector("#authError:has-text('refused')", { timeout: 5000 });
    await page.fill("#token", "s3cret");
    await page.click("#auth button");
    await page.waitForSelector('[data-route="demo/shop"] .backend', { timeout: 10000 });
    assert.deepEqual(await canaryShares(page), { "demo/web-v1:80": "90%", "demo/web-v2:80": "10%" });
  } finally {
    await b.close();
  }
});

test("render --graph writes the same map with its data inside, for a browser without a server", async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "gammaroute-graph-"));
  const r = spawn(PUSHER, ["render", "--from", path.join(ROOT, "examples"), "--out", out, "--graph"], { stdio: "ignore" });
  const code = await new Promise(resolve => r.on("exit", resolve));
  assert.equal(code, 0, "render --graph succeeds");
  const b = await browser();
  try {
    const { page, errors } = await openPage(b, "file://" + path.join(out, "route-map.html"));
    await page.waitForSelector('[data-route="demo/shop"] .backend', { timeout: 10000 });
    assert.deepEqual(await canaryShares(page), { "demo/web-v1:80": "90%", "demo/web-v2:80": "10%" });
    assert.match(await page.textContent("#state"), /snapshot/);
    assert.deepEqual(errors, [], "no console errors");
  } finally {
    await b.close();
  }
});
