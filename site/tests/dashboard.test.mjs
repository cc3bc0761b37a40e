// The operator's dashboard (/ops/ on the canonical address) in a real browser (Debian's
// Chromium) with JavaScript off, over a demo whose nodes run their monitors: who may open it
// (a visitor is sent to sign in and back, a content provider is refused, a form without the
// session's CSRF token is refused); a failed and a missing disk drawn in their colours, checked
// on the pixels of a screenshot; real repair tickets marked done and acquitted through the
// nodes' monitors, and a stale form's mark refused with the monitor's reason; a phone's width
// and paper.
//
// Needs /usr/bin/chromium and a built td (TD_BIN, default target/debug/td).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import { chromium } from "playwright-core";
import { startDemo, tableReady, chromiumArgs, td } from "./demo.mjs";

// What site/src/dashboard.rs colours each state.
const COLOURS = { healthy: [0x2e, 0x7d, 0x32], failed: [0xc6, 0x28, 0x28], missing: [0x37, 0x47, 0x4f] };
const desk = { viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1, javaScriptEnabled: false };
const phone = { viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true, javaScriptEnabled: false };
const operator = { name: "olga", password: "an operator's long password" };

let demo, browser, context;
before(async () => {
  // Tickets after 2 s of a fault rather than 30, so that the test sees real ones.
  demo = await startDemo({ monitors: true, repair: ["ticket_grace_seconds = 2"] });
  assert.ok(demo.account, "td demo --prepare printed no `demo account: NAME PASSWORD` line");
  await tableReady(demo.canonical, 3);
  const added = spawnSync(td, ["user", "add", "--config", demo.config, "--role", "operator",
    "--password-stdin", operator.name], { input: `${operator.password}\n` });
  assert.equal(added.status, 0, `td user add --role operator: ${added.stderr}`);
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: chromiumArgs });
  context = await browser.newContext(desk);
});

after(async () => {
  await browser?.close();
  demo?.stop();
});

/// Decodes an 8-bit RGB or RGBA PNG (what Chromium's screenshots are): { width, height, at(x, y) → [r, g, b] }.
function decodePng(png) {
  assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], "a PNG");
  let pos = 8;
  let header;
  const data = [];
  while (pos < png.length) {
    const length = png.readUInt32BE(pos);
    const type = png.toString("ascii", pos + 4, pos + 8);
    const body = png.subarray(pos + 8, pos + 8 + length);
    if (type === "IHDR") {
      header = { width: body.readUInt32BE(0), height: body.readUInt32BE(4), depth: body[8], colour: body[9], interlace: body[12] };
    } else if (type === "IDAT") {
      data.push(body);
    } else if (type === "IEND") {
      break;
    }
    pos += 12 + length;
  }
  const { width, height, depth, colour, interlace } = header;
  assert.ok(depth === 8 && (colour === 2 || colour === 6) && interlace === 0, `a plain 8-bit RGB(A) PNG: ${JSON.stringify(header)}`);
  const channels = colour === 6 ? 4 : 3;
  const stride = width * channels;
  const raw = inflateSync(Buffer.concat(data));
  const out = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? out[y * stride + x - channels] : 0;
      const b = y > 0 ? out[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? out[(y - 1) * stride + x - channels] : 0;
      let v;
      switch (filter) {
        case 0: v = line[x]; break;
        case 1: v = line[x] + a; break;
        case 2: v = line[x] + b; break;
        case 3: v = line[x] + ((a + b) >> 1); break;
        case 4: {
          const p = a + b - c;
          const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
          v = line[x] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
          break;
        }
        default: assert.fail(`PNG filter ${filter}`);
      }
      out[y * stride + x] = v & 0xff;
    }
  }
  const at = (x, y) => [...out.subarray(y * stride + x * channels, y * stride + x * channels + 3)];
  return { width, height, at };
}

/// The screenshot of `locator` as pixels, and how many of them are within 6 of `rgb` in every
/// channel, in all and in its middle (2 px in from every side: edges may be blended).
async function colourOf(locator, rgb) {
  const { width, height, at } = decodePng(await locator.screenshot());
  assert.ok(width >= 8 && height >= 8, `a swatch of ${width}×${height} px`);
  const close = (p) => p.every((v, i) => Math.abs(v - rgb[i]) <= 6);
  let all = 0, inner = 0, innerTotal = 0;
  const off = [];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const ok = close(at(x, y));
      if (ok) all++;
      if (x >= 2 && y >= 2 && x < width - 2 && y < height - 2) {
        innerTotal++;
        if (ok) inner++;
        else if (off.length < 3) off.push(at(x, y));
      }
    }
  }
  return { share: all / (width * height), inner: inner / innerTotal, off, size: `${width}×${height}` };
}

/// Signs in on `page` (showing the sign-in form); the answer of the page it lands on.
async function signIn(page, account) {
  await page.fill("form#signin input[name=name]", account.name);
  await page.fill("form#signin input[name=password]", account.password);
  const [response] = await Promise.all([page.waitForNavigation(), page.click("form#signin button[type=submit]")]);
  return response;
}

/// The dashboard's slots: disk id → state.
const slotStates = (page) => page.$$eval(".slot", (slots) => Object.fromEntries(slots.map((s) => [s.dataset.disk, s.dataset.state])));

/// Reloads the dashboard on `page` until `ready(page)` is true (up to `ms`); its last answer.
async function dashboardUntil(page, ready, what, ms = 60_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const response = await page.goto(`${demo.canonical}/ops/`);
    assert.equal(response.status(), 200, await response.text());
    if (await ready(page)) return response;
    assert.ok(Date.now() < deadline, `the dashboard never showed ${what}: ${await page.innerText("main")}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const ticketOf = (page, disk) => page.locator("article.ticket", { has: page.locator(".part", { hasText: disk }) });

test("a visitor is sent to sign in and back, a content provider is refused, an operator sees every disk", { timeout: 120_000 }, async () => {
  const page = await context.newPage();
  await page.goto(`${demo.canonical}/ops/`);
  assert.match(page.url(), /\/portal\/\?next=%2Fops%2F$/, "sent to the sign-in page");
  assert.equal(await page.innerText("h1"), "Sign in to the operator's dashboard");
  const landed = await signIn(page, operator);
  assert.equal(landed.status(), 200, await landed.text());
  assert.equal(page.url(), `${demo.canonical}/ops/`, "and back to the dashboard");
  assert.equal(landed.headers()["cache-control"], "no-store");
  assert.match(await page.innerText("h1"), /^Operations: Tertiary Disk demo$/);
  const all = ["node-a-disk1", "node-a-disk2", "node-b-disk1", "node-b-disk2", "node-c-disk1", "node-c-disk2"];
  await dashboardUntil(page, async (p) => {
    const states = await slotStates(p);
    return all.every((d) => states[d] === "healthy");
  }, "every disk healthy");
  // Racks → nodes → enclosures → slots, each slot saying its state in words.
  assert.deepEqual(await page.$$eval(".rack", (r) => r.map((x) => x.dataset.rack)), ["demo"]);
  assert.deepEqual(await page.$$eval(".rack .node", (n) => n.map((x) => `${x.dataset.node}:${x.dataset.answering}`)),
    ["node-a:true", "node-b:true", "node-c:true"]);
  assert.deepEqual(await page.$$eval(".node[data-node=node-b] .enclosure", (e) => e.map((x) => x.dataset.enclosure)), ["node-b-front"]);
  assert.equal(await page.innerText(".slot[data-disk=node-b-disk1] .slot-state"), "healthy");
  assert.match(await page.innerText(".slot[data-disk=node-b-disk1]"), /Slot 1[\s\S]*DEMO-B1/);
  assert.equal(await page.locator(".legend li").count(), 7, "a legend in words");
  assert.equal(await page.innerText("#count-images"), "3");
  assert.match(await page.innerText("#workers"), /node-a backend: \d+ workers/);
  assert.match(await page.innerText("#workers"), /node-a monitor: \d+ workers/);
  assert.match(await page.innerText("#events"), /started|catalog_rebuilt/, "the last events");

  // A form posted without the session's CSRF token is refused (the operator's own cookies).
  const forged = await context.request.post(`${demo.canonical}/ops/tickets/node-a.m1`, {
    form: { mark: "done" }, headers: { origin: demo.canonical }, maxRedirects: 0 });
  assert.equal(forged.status(), 403, await forged.text());
  assert.match(await forged.text(), /CSRF/);

  // A content provider signed in is refused with a plain page.
  const provider = await browser.newContext(desk);
  const theirs = await provider.newPage();
  await theirs.goto(`${demo.canonical}/portal/`);
  assert.equal((await signIn(theirs, demo.account)).status(), 200);
  const refused = await theirs.goto(`${demo.canonical}/ops/`);
  assert.equal(refused.status(), 403);
  assert.equal(refused.headers()["cache-control"], "no-store");
  assert.equal(await theirs.innerText("h1"), "Operators only");
  assert.equal(await theirs.locator(".slot").count(), 0, "nothing of the cluster shown");
  await provider.close();
  await page.close();
});

test("a failed disk's slot is drawn failed and a missing one missing, on the screenshot's pixels", { timeout: 120_000 }, async () => {
  const page = await context.newPage();
  await page.goto(`${demo.canonical}/ops/`);
  // node-c's second disk fails: a file where its folder was (every probe gets ENOTDIR, an I/O
  // error). node-b's first disk vanishes: its folder moved away.
  renameSync(join(demo.data, "node-c", "disk2"), join(demo.data, "node-c", "disk2.away"));
  writeFileSync(join(demo.data, "node-c", "disk2"), "not a disk\n");
  renameSync(join(demo.data, "node-b", "disk1"), join(demo.data, "node-b", "disk1.away"));
  await dashboardUntil(page, async (p) => {
    const s = await slotStates(p);
    return s["node-c-disk2"] === "failed" && s["node-b-disk1"] === "missing";
  }, "node-c-disk2 failed and node-b-disk1 missing", 30_000);
  assert.equal(await page.innerText(".slot[data-disk=node-c-disk2] .slot-state"), "failed");
  assert.equal(await page.innerText(".slot[data-disk=node-b-disk1] .slot-state"), "missing");
  assert.match(await page.innerText(".slot[data-disk=node-c-disk2] .slot-detail"), /Not a directory/);
  // Drawn so, not only said so: the swatch of each slot, as Chromium painted it.
  for (const [disk, state] of [["node-c-disk2", "failed"], ["node-b-disk1", "missing"], ["node-a-disk1", "healthy"]]) {
    const swatch = page.locator(`.slot[data-disk=${disk}] .swatch`);
    const seen = await colourOf(swatch, COLOURS[state]);
    assert.ok(seen.inner === 1 && seen.share > 0.9,
      `${disk} is painted ${state} (${COLOURS[state]}): ${JSON.stringify(seen)}`);
    for (const other of Object.keys(COLOURS).filter((s) => s !== state)) {
      const not = await colourOf(swatch, COLOURS[other]);
      assert.equal(not.inner, 0, `${disk} is not painted ${other}`);
    }
  }
  // The whole slot too: most of its border and band are the failed colour.
  const slot = await colourOf(page.locator(".slot[data-disk=node-c-disk2]"), COLOURS.failed);
  assert.ok(slot.share > 0.15, `the failed slot is mostly drawn red: ${JSON.stringify(slot)}`);
  await page.close();
});

test("real tickets are marked done and acquitted through the monitors; a stale form's mark is refused with the reason", { timeout: 180_000 }, async () => {
  const page = await context.newPage();
  // One ticket for each disk broken above, after the 2 s grace.
  await dashboardUntil(page, async (p) =>
    (await ticketOf(p, "node-b-disk1").count()) === 1 && (await ticketOf(p, "node-c-disk2").count()) === 1,
  "a ticket for node-b-disk1 and one for node-c-disk2", 90_000);
  const b = ticketOf(page, "node-b-disk1");
  assert.equal(await b.getAttribute("data-state"), "open");
  assert.match(await b.locator(".label").innerText(), /rack demo, node node-b, enclosure node-b-front, slot 1, serial DEMO-B1/);
  const bId = await b.getAttribute("data-ticket");
  const cId = await ticketOf(page, "node-c-disk2").getAttribute("data-ticket");
  assert.match(bId, /^node-b\./);
  assert.match(cId, /^node-c\./);
  // A second tab keeps the page as it is now: its acquit form for node-c's ticket goes stale.
  const stale = await context.newPage();
  await stale.goto(`${demo.canonical}/ops/`);

  // Done: the part was swapped. The node has not seen a new disk: the ticket stays, done.
  let [response] = await Promise.all([page.waitForNavigation(), b.locator("button.done").click()]);
  assert.equal(response.status(), 200);
  assert.equal(page.url(), `${demo.canonical}/ops/?marked=${bId}&state=done`);
  assert.equal(await page.innerText("#notice"), `Ticket ${bId} is done now.`);
  const done = page.locator(`article.ticket[data-ticket="${bId}"]`);
  assert.equal(await done.getAttribute("data-state"), "done");
  assert.equal(await done.locator("button.done").count(), 0, "done once");
  assert.equal(await done.locator("button.acquit").count(), 1, "still acquittable");

  // Acquit: a false alarm. The ticket leaves the list.
  [response] = await Promise.all([page.waitForNavigation(),
    page.locator(`article.ticket[data-ticket="${cId}"] button.acquit`).click()]);
  assert.equal(response.status(), 200);
  assert.equal(await page.innerText("#notice"), `Ticket ${cId} is acquitted now.`);
  assert.equal(await page.locator(`article.ticket[data-ticket="${cId}"]`).count(), 0);

  // The stale tab acquits it again: the monitor refuses, and the page says why.
  [response] = await Promise.all([stale.waitForNavigation(),
    stale.locator(`article.ticket[data-ticket="${cId}"] button.acquit`).click()]);
  assert.equal(response.status(), 409, await response.text());
  const error = await stale.innerText("#error");
  assert.ok(error.startsWith(`the monitor of node-c refused to mark ticket ${cId}: `) && error.includes(cId) &&
    /acquitted/i.test(error), `the monitor's reason: ${error}`);
  await stale.close();
  await page.close();
});

test("the dashboard fits a phone and prints without its buttons", { timeout: 120_000 }, async () => {
  const small = await browser.newContext(phone);
  const page = await small.newPage();
  await page.goto(`${demo.canonical}/ops/`);
  assert.equal((await signIn(page, operator)).status(), 200);
  assert.ok(await page.locator(".slot[data-state=failed]").count() >= 1, "the page as full as it gets");
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 375, `no sideways scrolling at 375 px (${width})`);
  await page.emulateMedia({ media: "print" });
  assert.equal(await page.locator(".marks").first().evaluate((m) => getComputedStyle(m).display), "none",
    "no buttons on paper");
  const pdf = await page.pdf({ format: "A4" });
  assert.equal(pdf.subarray(0, 5).toString(), "%PDF-");
  await small.close();
});
