// The viewer in a real browser (Debian's Chromium): with JavaScript it pans and zooms and,
// when the backend serving the page dies mid-visit, keeps loading tiles from the other
// replica, which the page learnt from the node's catalog; without JavaScript it is a grid of
// tiles with zoom links that reload the page through the canonical address.
//
// Needs /usr/bin/chromium and a built td (TD_BIN, default target/debug/td).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startDemo, tableReady, chromiumArgs } from "./demo.mjs";

let demo, browser;
before(async () => {
  demo = await startDemo();
  await tableReady(demo.canonical, 3);
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: chromiumArgs });
});

after(async () => {
  await browser?.close();
  demo?.stop();
});

/// The demo role serving `url`.
function roleOf(url) {
  const origin = new URL(url).origin;
  const name = Object.keys(demo.roles).find((n) => demo.roles[n].origin === origin);
  assert.ok(name, `no demo role at ${origin}`);
  return name;
}

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
  // The canonical address redirects to one of the two nodes holding the image.
  await page.goto(`${demo.canonical}/images/seahorse-valley`);
  const a = demo.roles[roleOf(page.url())];
  const replicas = JSON.parse(await page.$eval("#viewer", (v) => v.dataset.replicas));
  assert.equal(replicas.length, 2, `the page knows both replicas: ${replicas}`);
  const b = demo.roles[roleOf(replicas[1])];
  assert.notEqual(a, b);
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

/// Waits until the canonical frontend counts as up only backends that answer (the test before
/// killed one; a frontend notices within about a second, and sends nobody there after).
async function frontendSeesDeadBackends() {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const health = await (await fetch(`${demo.canonical}/health`)).json();
    const alive = await Promise.all(health.backends.filter((b) => b.up).map((b) =>
      fetch(`${b.origin}/health`).then(() => true, () => false)));
    if (alive.every((a) => a)) return;
    assert.ok(Date.now() < deadline, `the frontend still counts a dead backend up: ${JSON.stringify(health.backends)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("without JavaScript: a grid of tiles, and zoom is a link that reloads", async () => {
  await frontendSeesDeadBackends();
  const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const tiles = [];
  page.on("response", (r) => { if (r.url().includes("/tiles/")) tiles.push(r.status()); });
  await page.goto(`${demo.canonical}/images/zone-plate`, { waitUntil: "load" });
  assert.match(roleOf(page.url()), /^node-/, "redirected to a node holding it");
  const shown = await page.locator(".grid img").count();
  assert.ok(shown > 0, "tiles are plain <img> elements");
  assert.equal(tiles.length, shown, "every tile of the grid was fetched");
  assert.ok(tiles.every((s) => s === 200), `all tiles answered 200: ${tiles}`);
  const before = await page.locator("p.muted").first().textContent();
  const navigations = [];
  page.on("request", (r) => { if (r.isNavigationRequest()) navigations.push(r.url()); });
  await Promise.all([page.waitForNavigation(), page.getByText("Zoom in").click()]);
  const after = await page.locator("p.muted").first().textContent();
  assert.notEqual(after, before, "the zoom link loaded another level");
  assert.match(page.url(), /\/view\/zone-plate\?level=/);
  assert.ok(navigations.some((u) => u.startsWith(`${demo.canonical}/images/zone-plate?level=`)),
    `the click went through the canonical address: ${navigations}`);
  await context.close();
});
