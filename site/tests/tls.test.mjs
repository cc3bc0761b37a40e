// HTTPS in a real browser: `td demo --tls` serves every address over TLS with certificates of
// the demo's own CA. Chromium is told to trust exactly the demo's keys (their SPKI hashes);
// the gallery and the viewer then load over https through the canonical address, redirected
// to an https node whose tiles all arrive, and a browser not told so refuses the same page.
//
// Needs /usr/bin/chromium and a built td (TD_BIN, default target/debug/td).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { createHash, X509Certificate } from "node:crypto";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startDemo, chromiumArgs } from "./demo.mjs";

let demo, trusting, doubting;

/// The base64 SHA-256 of a certificate's public key, as Chromium's SPKI list wants it.
function spki(pemFile) {
  const der = new X509Certificate(readFileSync(pemFile)).publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(der).digest("base64");
}

before(async () => {
  demo = await startDemo({ tls: true });
  assert.match(demo.canonical, /^https:\/\//, "the demo's canonical address is https");
  const dir = join(demo.data, "tls");
  const keys = readdirSync(dir).filter((f) => f.endsWith(".pem")).map((f) => spki(join(dir, f)));
  trusting = await chromium.launch({ executablePath: "/usr/bin/chromium",
    args: [...chromiumArgs, `--ignore-certificate-errors-spki-list=${keys.join(",")}`] });
  doubting = await chromium.launch({ executablePath: "/usr/bin/chromium", args: chromiumArgs });
});

after(async () => {
  await trusting?.close();
  await doubting?.close();
  demo?.stop();
});

test("over https: the gallery and the viewer through the canonical address, tiles from an https node", async () => {
  const page = await trusting.newPage();
  // The frontend's table is ready once it knows all three images (asked over https too).
  const deadline = Date.now() + 30_000;
  for (;;) {
    const h = await page.goto(`${demo.canonical}/health`).then((r) => r.json(), () => ({}));
    if (h.status === "ok" && h.images === 3) break;
    assert.ok(Date.now() < deadline, `frontend not ready: ${JSON.stringify(h)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const tiles = [];
  page.on("response", (r) => { if (r.url().includes("/tiles/")) tiles.push([r.url(), r.status()]); });
  const first = await page.goto(`${demo.canonical}/`);
  assert.equal(first.status(), 200);
  assert.ok((await first.allHeaders())["strict-transport-security"], "HSTS on the gallery");
  await page.goto(`${demo.canonical}/images/seahorse-valley`);
  assert.match(page.url(), /^https:\/\/[^/]+\/view\/seahorse-valley/, `redirected to an https node: ${page.url()}`);
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll("#viewer .layer img")];
    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, null, { timeout: 30_000 });
  assert.ok(tiles.length > 0 && tiles.every(([u, s]) => u.startsWith("https://") && s === 200),
    `every tile over https: ${JSON.stringify(tiles.slice(0, 3))}`);
  await page.close();
});

test("a browser that does not trust the demo's CA refuses it", async () => {
  const page = await doubting.newPage();
  await assert.rejects(page.goto(`${demo.canonical}/`), /ERR_CERT/);
  await page.close();
});

test("plain http to the canonical address is sent on to https", async () => {
  const plain = demo.canonical.replace(/^https:/, "http:");
  const r = await fetch(`${plain}/images/zone-plate`, { redirect: "manual" });
  assert.ok([301, 308].includes(r.status), `${r.status}`);
  assert.match(r.headers.get("location"), /^https:\/\//);
});
