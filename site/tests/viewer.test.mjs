// The viewer in a real browser (Debian's Chromium): with JavaScript it pans and zooms and,
// when the backend serving the page dies mid-visit, keeps loading tiles from the other
// replica, which the page learnt from the node's catalog; without JavaScript it is a grid of
// tiles with zoom links that reload the page.
//
// Needs /usr/bin/chromium and a built td (TD_BIN, default target/debug/td).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const td = process.env.TD_BIN || resolve(here, "../../target/debug/td");
const data = mkdtempSync(join(tmpdir(), "td-viewer-"));
const servers = [];
let browser;

/// Runs `td args` and resolves to its output once `pattern` matches it (rejects on exit or
/// after `ms`).
function waitFor(args, pattern, ms, keep) {
  return new Promise((ok, fail) => {
    const child = spawn(td, args, { stdio: ["ignore", "pipe", "pipe"] });
    if (keep) servers.push(child);
    let out = "";
    const timer = setTimeout(() => fail(new Error(`td ${args[0]} timed out:\n${out}`)), ms);
    const read = (chunk) => {
      out += chunk;
      const m = out.match(pattern);
      if (m) { clearTimeout(timer); ok({ child, match: m }); }
    };
    child.stdout.on("data", read);
    child.stderr.on("data", read);
    // After a match this is a no-op; before one, the command failed.
    child.on("close", (code) => fail(new Error(`td ${args[0]} exited (${code}):\n${out}`)));
  });
}

/// The demo prepares two nodes that both hold every sample; each runs as its own `td backend`
/// process, so one can be killed mid-visit.
let a, b;
before(async () => {
  assert.ok(existsSync(td), `td binary not found at ${td}: build it first (cargo build -p td)`);
  const prepared = await waitFor(["demo", "--data", data, "--listen", "127.0.0.1:0", "--prepare"],
    /node-b http:\/\/\S+\/.*\n/, 300_000, false);
  assert.match(prepared.match.input, /node-a http:/);
  const config = join(data, "cluster.toml");
  const start = async (node) => {
    const { child, match } = await waitFor(["backend", "--config", config, "--node", node],
      /listening on (http:\/\/[^/\s]+)\//, 60_000, true);
    return { child, origin: match[1] };
  };
  a = await start("node-a");
  b = await start("node-b");
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  for (const s of servers) s.kill("SIGKILL");
  rmSync(data, { recursive: true, force: true });
});

/// Waits until the viewer shows tiles and every one of them has loaded.
async function allTilesLoaded(page) {
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll("#viewer .layer img")];
    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, null, { timeout: 30_000 });
  return page.$$eval("#viewer .layer img", (imgs) => imgs.map((i) => i.src));
}

test("with JavaScript: zoom loads new tiles, and a dead backend's tiles come from the other replica", async () => {
  const page = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await page.goto(`${a.origin}/view/seahorse-valley`);
  const first = await allTilesLoaded(page);
  assert.ok(first.every((s) => s.startsWith(a.origin)), "tiles come from the page's own backend first");
  const box = await page.$eval("#viewer", (v) => [v.getBoundingClientRect().width, document.documentElement.scrollWidth]);
  assert.ok(box[0] <= 390 && box[1] <= 390, `the viewer fits a phone's width (${box})`);
  const levelOf = (src) => +src.split("/tiles/")[1].split("/")[1];

  await page.focus("#viewer");
  await page.keyboard.press("+");
  const zoomed = await allTilesLoaded(page);
  assert.ok(Math.min(...zoomed.map(levelOf)) < Math.min(...first.map(levelOf)), "zooming in shows a finer level");

  a.child.kill("SIGKILL"); // the backend dies mid-visit
  await page.keyboard.press("+");
  await page.keyboard.press("ArrowRight");
  const after = await allTilesLoaded(page);
  const fromB = after.filter((s) => s.startsWith(b.origin));
  assert.ok(fromB.length > 0, "tiles requested after the failure come from the other replica");
  const failed = await page.$$eval("#viewer .layer img.failed", (x) => x.length);
  assert.equal(failed, 0, "no tile is left missing");
  await page.close();
});

test("without JavaScript: a grid of tiles, and zoom is a link that reloads", async () => {
  const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const tiles = [];
  page.on("response", (r) => { if (r.url().includes("/tiles/")) tiles.push(r.status()); });
  await page.goto(`${b.origin}/view/zone-plate`, { waitUntil: "load" });
  const shown = await page.locator(".grid img").count();
  assert.ok(shown > 0, "tiles are plain <img> elements");
  assert.equal(tiles.length, shown, "every tile of the grid was fetched");
  assert.ok(tiles.every((s) => s === 200), `all tiles answered 200: ${tiles}`);
  const before = await page.locator("p.muted").first().textContent();
  await Promise.all([page.waitForNavigation(), page.getByText("Zoom in").click()]);
  const after = await page.locator("p.muted").first().textContent();
  assert.notEqual(after, before, "the zoom link loaded another level");
  assert.match(page.url(), /level=/);
  await context.close();
});
