// The viewer in a real browser (Debian's Chromium): with JavaScript it pans and zooms and,
// when the backend serving the page dies mid-visit, keeps loading tiles from the other
// replica; without JavaScript it is a grid of tiles with zoom links that reload the page.
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

/// Starts `td demo` on a free loopback port and resolves to its origin once it serves.
function startNode(extra) {
  return new Promise((ok, fail) => {
    const child = spawn(td, ["demo", "--data", data, "--listen", "127.0.0.1:0", ...extra], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    servers.push(child);
    let out = "";
    const timer = setTimeout(() => fail(new Error("td demo did not start:\n" + out)), 300_000);
    const read = (chunk) => {
      out += chunk;
      const m = out.match(/Open (http:\/\/[^/\s]+)\//);
      if (m) { clearTimeout(timer); ok({ child, origin: m[1] }); }
    };
    child.stdout.on("data", read);
    child.stderr.on("data", read);
    child.on("exit", (code) => fail(new Error(`td demo exited (${code}):\n${out}`)));
  });
}

let a, b;
before(async () => {
  assert.ok(existsSync(td), `td binary not found at ${td}: build it first (cargo build -p td)`);
  b = await startNode([]); // first: renders and tiles the samples into the shared data dir
  a = await startNode(["--replica", b.origin]); // A offers B as the other replica
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
