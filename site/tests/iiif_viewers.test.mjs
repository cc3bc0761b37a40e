// The IIIF viewers a museum embeds in its own pages, OpenSeadragon and Mirador (from npm),
// in a real browser, on a page of another origin, loading our images through the canonical
// address: every request crosses origins and is redirected to a replica, so CORS must be on
// the redirects and the answers alike. The image must render (tiles loaded, pixels not blank)
// and zoom (finer tiles requested and loaded).
//
// Needs /usr/bin/chromium and a built td (TD_BIN, default target/debug/td).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startDemo, tableReady, chromiumArgs } from "./demo.mjs";

const modules = join(dirname(fileURLToPath(import.meta.url)), "node_modules");
const IMAGE = "seahorse-valley";

let demo, browser, museum;

/// The museum's own website: another origin (its own port) serving the viewers' scripts and
/// a page embedding each.
function museumSite(canonical) {
  const info = `${canonical}/iiif/3/${IMAGE}/info.json`;
  const manifest = `${canonical}/iiif/3/${IMAGE}/manifest.json`;
  const pages = {
    "/osd.html": `<!doctype html><meta charset="utf-8"><title>OpenSeadragon</title>
<div id="v" style="width:800px;height:600px"></div>
<script src="/openseadragon.min.js"></script>
<script>
  window.loaded = 0; window.failed = [];
  window.viewer = OpenSeadragon({ id: "v", prefixUrl: "/osd-images/", drawer: "canvas",
    crossOriginPolicy: "Anonymous", tileSources: ${JSON.stringify(info)} });
  viewer.addHandler("tile-loaded", () => window.loaded++);
  viewer.addHandler("tile-load-failed", (e) => window.failed.push(e.message));
  viewer.addHandler("open-failed", (e) => window.failed.push("open: " + e.message));
</script>`,
    "/mirador.html": `<!doctype html><meta charset="utf-8"><title>Mirador</title>
<div id="m" style="position:absolute;inset:0"></div>
<script src="/mirador.min.js"></script>
<script>
  Mirador.viewer({ id: "m", windows: [{ manifestId: ${JSON.stringify(manifest)} }],
    window: { sideBarOpen: false }, workspaceControlPanel: { enabled: false } });
</script>`,
  };
  const files = {
    "/openseadragon.min.js": join(modules, "openseadragon/build/openseadragon/openseadragon.min.js"),
    "/mirador.min.js": join(modules, "mirador/dist/mirador.min.js"),
  };
  const server = createServer((req, res) => {
    const path = req.url.split("?")[0];
    if (pages[path]) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      return res.end(pages[path]);
    }
    if (files[path]) {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" });
      return res.end(readFileSync(files[path]));
    }
    if (path.startsWith("/osd-images/")) {
      try {
        const png = readFileSync(join(modules, "openseadragon/build/openseadragon/images", path.slice(12).replace(/\.\.+/g, "")));
        res.writeHead(200, { "content-type": "image/png" });
        return res.end(png);
      } catch { /* falls through to 404 */ }
    }
    res.writeHead(404);
    res.end();
  });
  return new Promise((ok) => server.listen(0, "127.0.0.1", () => ok(server)));
}

before(async () => {
  demo = await startDemo();
  await tableReady(demo.canonical, 3);
  museum = await museumSite(demo.canonical);
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: chromiumArgs });
});

after(async () => {
  await browser?.close();
  museum?.close();
  demo?.stop();
});

const museumOrigin = () => `http://127.0.0.1:${museum.address().port}`;

/// Records every IIIF request the page makes: at the canonical address (each must be a
/// redirect) and at a node (each must answer 200), and console errors.
function watch(page) {
  const seen = { canonical: [], node: [], errors: [] };
  page.on("response", (r) => {
    const url = r.url();
    if (!url.includes("/iiif/3/")) return;
    (url.startsWith(demo.canonical) ? seen.canonical : seen.node).push({ url, status: r.status() });
  });
  page.on("requestfailed", (r) => seen.errors.push(`${r.url()}: ${r.failure()?.errorText}`));
  page.on("console", (m) => { if (m.type() === "error") seen.errors.push(m.text()); });
  return seen;
}

/// Scale of a IIIF tile request (region width over output width): smaller is finer.
function scaleOf(url) {
  const m = url.match(/\/iiif\/3\/[^/]+\/(\d+),(\d+),(\d+),(\d+)\/(\d+),(\d*)\//);
  return m ? +m[3] / +m[5] : undefined;
}

const tileScales = (seen) => seen.node.map((r) => scaleOf(r.url)).filter((s) => s !== undefined);

/// How far from blank a screenshot of `locator` is: the standard deviation of its grey
/// levels, measured in the browser on a page of its own.
async function contrast(locator) {
  const png = (await locator.screenshot()).toString("base64");
  const page = await browser.newPage();
  try {
    return await page.evaluate(async (data) => {
      const img = new Image();
      img.src = `data:image/png;base64,${data}`;
      await img.decode();
      const c = document.createElement("canvas");
      [c.width, c.height] = [img.width, img.height];
      const g = c.getContext("2d");
      g.drawImage(img, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      let sum = 0, sq = 0, n = 0;
      for (let i = 0; i < d.length; i += 4) {
        const v = (d[i] + d[i + 1] + d[i + 2]) / 3;
        sum += v; sq += v * v; n++;
      }
      return Math.sqrt(sq / n - (sum / n) ** 2);
    }, png);
  } finally {
    await page.close();
  }
}

/// Every IIIF request at the canonical address was a redirect, and every one at a node a
/// success: nothing was dropped by the browser for want of CORS.
function allCrossed(seen, what) {
  assert.ok(seen.canonical.length > 0, `${what}: requests went to the canonical address`);
  assert.ok(seen.canonical.every((r) => r.status === 302), `${what}: ${JSON.stringify(seen.canonical.filter((r) => r.status !== 302))}`);
  assert.ok(seen.node.every((r) => r.status === 200), `${what}: ${JSON.stringify(seen.node.filter((r) => r.status !== 200))}`);
  const cors = seen.errors.filter((e) => /CORS|Access-Control|ERR_FAILED/i.test(e));
  assert.deepEqual(cors, [], `${what}: nothing blocked by the browser`);
}

test("OpenSeadragon on another website renders and zooms an image through the canonical address", async () => {
  const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
  const seen = watch(page);
  await page.goto(`${museumOrigin()}/osd.html`);
  const settled = () => page.waitForFunction(() => {
    const item = window.viewer.world.getItemAt(0);
    return (item && item.getFullyLoaded() && window.loaded > 0) || window.failed.length > 0;
  }, null, { timeout: 60_000 });
  await settled();
  assert.deepEqual(await page.evaluate(() => window.failed), [], "no tile failed");
  allCrossed(seen, "OpenSeadragon");
  const first = tileScales(seen);
  assert.ok(first.length > 0, "tiles were requested as IIIF regions");
  // Its canvas is readable (the tiles came with CORS) and not blank.
  const spread = await page.evaluate(() => {
    const c = window.viewer.drawer.canvas;
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let lo = 255, hi = 0;
    for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i + 1]); hi = Math.max(hi, d[i + 1]); }
    return hi - lo;
  });
  assert.ok(spread > 50, `the image shows (green from ${spread})`);

  const before = seen.node.length;
  await page.evaluate(() => window.viewer.viewport.zoomBy(8).applyConstraints());
  await page.waitForFunction((n) => window.loaded > n, before, { timeout: 30_000 });
  await settled();
  assert.deepEqual(await page.evaluate(() => window.failed), [], "no tile failed after zooming");
  allCrossed(seen, "OpenSeadragon zoomed");
  const zoomed = tileScales(seen).slice(first.length);
  assert.ok(zoomed.length > 0 && Math.min(...zoomed) < Math.min(...first),
    `zooming in asked for finer tiles (${Math.min(...first)} → ${Math.min(...zoomed)})`);
  await page.close();
});

test("Mirador on another website opens the manifest through the canonical address, renders and zooms", async () => {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  const seen = watch(page);
  await page.goto(`${museumOrigin()}/mirador.html`);
  const osd = page.locator(".openseadragon-canvas").first();
  await osd.waitFor({ timeout: 60_000 });
  // Tiles of the image arrive (info.json, then tiles, each redirected from the canonical
  // address to a replica).
  const tilesLoaded = async (n) => {
    const deadline = Date.now() + 60_000;
    while (tileScales(seen).length <= n) {
      assert.ok(Date.now() < deadline, `no tiles after ${n}: ${JSON.stringify(seen)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await tilesLoaded(0);
  await page.waitForLoadState("networkidle");
  allCrossed(seen, "Mirador");
  assert.ok(seen.node.some((r) => r.url.endsWith("/manifest.json")), "the manifest came from a replica");
  assert.ok(seen.node.some((r) => r.url.endsWith("/info.json")), "the image service came from a replica");
  const title = await page.locator("body").innerText();
  assert.match(title, /Seahorse/i, "Mirador shows the manifest's label");
  assert.ok(await contrast(osd) > 10, "the image shows (not a blank canvas)");

  const first = tileScales(seen);
  const box = await osd.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  for (let i = 0; i < 6; i++) await page.mouse.wheel(0, -400);
  await tilesLoaded(first.length);
  await page.waitForLoadState("networkidle");
  allCrossed(seen, "Mirador zoomed");
  const zoomed = tileScales(seen).slice(first.length);
  assert.ok(Math.min(...zoomed) < Math.min(...first),
    `zooming in asked for finer tiles (${Math.min(...first)} → ${Math.min(...zoomed)})`);
  assert.ok(await contrast(osd) > 10, "the zoomed image shows");
  await page.close();
});
