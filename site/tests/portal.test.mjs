// The upload portal on the canonical address in a real browser (Debian's Chromium), on a phone
// with JavaScript: sign-in and its cookie, the API's refusals, an original uploaded in chunks
// and followed through its stages to the gallery and the viewer, a file that is not an image
// failing with a plain reason, and the lock after repeated wrong passwords.
//
// Needs /usr/bin/chromium and a built td (TD_BIN, default target/debug/td) whose
// `td demo --prepare` prints `demo account: NAME PASSWORD`.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { chromium } from "playwright-core";
import { startDemo, tableReady, answers, chromiumArgs } from "./demo.mjs";

const phone = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };

let demo, browser, context, files;
before(async () => {
  demo = await startDemo();
  assert.ok(demo.account, "td demo --prepare printed no `demo account: NAME PASSWORD` line");
  // Uploads go to a backend the frontend knows to be up.
  await tableReady(demo.canonical, 3);
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: chromiumArgs });
  context = await browser.newContext(phone);
  files = mkdtempSync(join(tmpdir(), "td-portal-"));
});

after(async () => {
  await browser?.close();
  demo?.stop();
  if (files) rmSync(files, { recursive: true, force: true });
});

/// CRC-32 (IEEE) as PNG chunks carry it.
function crc32(bytes) {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/// An 8-bit RGB PNG of `width`×`height` whose pixel (x, y) is `rgb(x, y)`.
function png(width, height, rgb) {
  const row = 1 + 3 * width; // each scanline starts with its filter type, 0 (none)
  const raw = Buffer.alloc(row * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw.set(rgb(x, y), y * row + 1 + 3 * x);
  }
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const frame = Buffer.alloc(8 + data.length + 4);
    frame.writeUInt32BE(data.length, 0);
    body.copy(frame, 4);
    frame.writeUInt32BE(crc32(body), 4 + body.length);
    return frame;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // depth 8, truecolour, deflate, no filter variant, no interlace
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

const titles = (page) => page.$$eval(".gallery li strong", (s) => s.map((x) => x.textContent));

/// Submits the sign-in form on `page` (already showing it); the navigation's answer.
async function submitSignIn(page, name, password) {
  await page.fill("form#signin input[name=name]", name);
  await page.fill("form#signin input[name=password]", password);
  const [response] = await Promise.all([page.waitForNavigation(),
    page.click("form#signin button[type=submit]")]);
  return response;
}

/// Opens the upload page on `page`, signing in first if the context has no session yet.
async function uploadPage(page) {
  await page.goto(`${demo.canonical}/portal/`);
  if (await page.locator("form#signin").count()) {
    const response = await submitSignIn(page, demo.account.name, demo.account.password);
    assert.equal(response.status(), 200, `sign-in with the demo account: ${await response.text()}`);
  }
  await page.waitForSelector("form#upload");
}

/// Chooses `path` on the upload page, fills the details, clicks #send and waits until the
/// file's row has settled: durable, or an error. Returns what the row and the chunks' answers
/// showed.
async function send(page, path, details) {
  const chunks = [];
  page.on("response", (r) => {
    const m = r.request().method();
    if (m !== "GET" && m !== "HEAD" && r.url().startsWith(`${demo.canonical}/portal/api/uploads/`)) {
      chunks.push(r.status());
    }
  });
  // How many chunks the page had on their way at once, at most: counted in the page, from a
  // chunk's send to its answer's arrival (before the page's own handlers run).
  await page.evaluate(() => {
    const count = (window.chunksOnWay = { now: 0, most: 0 });
    const { open, send } = XMLHttpRequest.prototype;
    XMLHttpRequest.prototype.open = function (method, ...rest) {
      this.isChunk = method === "PATCH";
      return open.call(this, method, ...rest);
    };
    XMLHttpRequest.prototype.send = function (...body) {
      if (this.isChunk) {
        count.most = Math.max(count.most, ++count.now);
        this.addEventListener("readystatechange", () => this.readyState === 4 && count.now--);
      }
      return send.apply(this, body);
    };
  });
  await page.setInputFiles("#file", path);
  for (const [id, value] of Object.entries(details)) await page.fill(`#${id}`, value);
  await page.click("#send");
  // Settled: durable, or an error (which the row words as "failed: …"); "uploading", "received;
  // …" and the like are on the way.
  const state = await page.waitForFunction(() => {
    const span = document.querySelector("#progress li .state");
    const s = span?.textContent ?? "";
    return (s === "durable on two nodes" || /^failed\b/.test(s) || span?.classList.contains("error")) && s;
  }, null, { timeout: 60_000, polling: 100 });
  const rows = await page.locator("#progress li").count();
  const bar = await page.$eval("#progress li progress", (p) => ({ value: p.value, max: p.max }));
  const most = await page.evaluate(() => window.chunksOnWay.most);
  return { state: await state.jsonValue(), rows, bar, chunks, most };
}

/// The signed-in account's upload titled `title`, from the JSON API.
async function uploadTitled(page, title) {
  const r = await page.request.get(`${demo.canonical}/portal/api/uploads`);
  assert.equal(r.status(), 200, await r.text());
  const list = await r.json();
  assert.ok(Array.isArray(list), `the API answers a list: ${JSON.stringify(list)}`);
  const u = list.find((x) => x.title === title);
  assert.ok(u, `no upload titled ${JSON.stringify(title)} in ${JSON.stringify(list)}`);
  return u;
}

/// What the status page's row of upload `id` shows (null if it has none).
const rowOf = (id) => {
  const li = [...document.querySelectorAll("#uploads li.upload")].find((l) => l.dataset.id === id);
  if (!li) return null;
  const text = (sel) => li.querySelector(sel)?.textContent ?? null;
  return { stage: li.dataset.stage, title: text(".title"), words: text(".stage"), waiting: text(".waiting"),
    error: text(".error"), view: li.querySelector("a.view")?.getAttribute("href") ?? null,
    bold: li.querySelectorAll("b").length };
};

/// Waits on the status page (which follows itself) until upload `id` is published or has
/// failed; what its row shows then.
async function settledStage(page, id) {
  try {
    const handle = await page.waitForFunction(`(() => {
      const row = (${rowOf})(${JSON.stringify(id)});
      return (row?.stage === "published" || row?.stage === "failed") && row;
    })()`, null, { timeout: 60_000, polling: 200 });
    return await handle.jsonValue();
  } catch (e) {
    const row = await page.evaluate(rowOf, id).catch(() => "unknown");
    assert.fail(`upload ${id} neither published nor failed in 60 s; its row: ${JSON.stringify(row)} (${e.message})`);
  }
}

/// Reloads the gallery until `title` is listed, for up to `ms`; its titles then.
async function untilInGallery(page, title, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    await page.goto(`${demo.canonical}/`);
    const shown = await titles(page);
    if (shown.includes(title)) return shown;
    assert.ok(Date.now() < deadline, `${JSON.stringify(title)} not in the gallery: ${JSON.stringify(shown)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test("sign-in: a wrong password is refused, the session cookie is HttpOnly and SameSite=Strict, the API wants a session and a CSRF token", { timeout: 120_000 }, async () => {
  await context.clearCookies();
  const page = await context.newPage();
  const first = await page.goto(`${demo.canonical}/portal/`);
  assert.equal(first.status(), 200);
  for (const sel of ["input[name=name]", "input[name=password]", "button[type=submit]"]) {
    assert.equal(await page.locator(`form#signin ${sel}`).count(), 1, `the sign-in form has ${sel}`);
  }

  const wrong = await submitSignIn(page, demo.account.name, `${demo.account.password}-wrong`);
  assert.equal(wrong.status(), 401);
  assert.match(await page.locator(".error").textContent(), /wrong name or password/);
  const noSession = async (c) => !(await c.cookies(demo.canonical)).some((x) => x.name === "td_session");
  assert.ok(await noSession(context), "no session after a wrong password");

  const right = await submitSignIn(page, demo.account.name, demo.account.password);
  assert.equal(right.status(), 200);
  const session = (await context.cookies(demo.canonical)).find((c) => c.name === "td_session");
  assert.ok(session, "signing in sets td_session");
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, "Strict");
  assert.ok(!(await page.evaluate(() => document.cookie)).includes("td_session"), "scripts cannot read it");

  // The upload page, now that the session is there.
  assert.equal(await page.$eval("input#file", (i) => i.type === "file" && i.multiple), true);
  for (const sel of ["input#title", "input#artist", "input#date", "textarea#description",
    "input#keywords", "input#rights", "button#send"]) {
    assert.equal(await page.locator(`form#upload ${sel}`).count(), 1, `the upload form has ${sel}`);
  }
  assert.equal(await page.locator("form#signout button[type=submit]").count(), 1, "one can sign out");
  assert.equal(await page.getAttribute("a#status-link", "href"), "/portal/uploads");
  const csrf = await page.getAttribute('meta[name="csrf-token"]', "content");
  assert.ok(csrf, "the page carries a CSRF token");

  const anonymous = await fetch(`${demo.canonical}/portal/api/uploads`);
  assert.equal(anonymous.status, 401, "no session, no list");
  const listed = await context.request.get(`${demo.canonical}/portal/api/uploads`);
  assert.equal(listed.status(), 200, "the session's cookie is enough to read");
  assert.ok(Array.isArray(await listed.json()));
  const forged = await context.request.post(`${demo.canonical}/portal/api/uploads`, {
    data: { filename: "forged.png", length: 100, meta: { title: "Forged" } },
  });
  assert.equal(forged.status(), 403, `a change without the CSRF header: ${await forged.text()}`);
  await page.close();
});

test("an original uploaded in chunks becomes durable, is published, and shows in the gallery and the viewer", { timeout: 120_000 }, async () => {
  const title = 'Study <b>in</b> "Grey" & Co';
  const path = join(files, "study.png");
  const image = png(600, 400, (x, y) => [Math.round((255 * x) / 599), Math.round((255 * y) / 399), 128]);
  writeFileSync(path, image);
  const page = await context.newPage();
  await uploadPage(page);
  const sent = await send(page, path, {
    title, artist: "A. Tester", date: "2024", description: "A grey gradient, made by the test.",
    keywords: "gradient, grey, test", rights: "CC0",
  });
  assert.equal(sent.state, "durable on two nodes");
  assert.equal(sent.rows, 1, "one row per chosen file");
  assert.deepEqual(sent.bar, { value: image.length, max: image.length }, "the bar is full at the file's size");
  assert.ok(sent.chunks.length > 0 && sent.chunks.every((s) => s >= 200 && s < 300),
    `every chunk was taken: ${sent.chunks}`);

  const upload = await uploadTitled(page, title);
  await Promise.all([page.waitForNavigation(), page.click("a#status-link")]);
  assert.match(page.url(), /\/portal\/uploads$/);
  const legend = await page.$$eval("ol.stages li", (l) => l.map((x) => x.textContent));
  assert.ok(legend.some((l) => /durable/.test(l)) && legend.some((l) => /published/.test(l)), `the legend: ${legend}`);
  const row = await settledStage(page, upload.id);
  assert.equal(row.stage, "published", `the upload failed: ${row.error}`);
  assert.equal(row.title, title, "the title is shown as the text it is");
  assert.equal(row.bold, 0, "no markup from the title became an element");
  assert.equal(await page.locator("li.upload b").count(), 0);
  assert.match(row.words, /published/);
  assert.match(row.view, /^\/images\/[^/]+$/);
  const raw = await (await page.request.get(`${demo.canonical}/portal/uploads`)).text();
  assert.ok(!raw.includes("<b>in</b>"), "the server's page escapes the title too");
  // The account's day so far, against its quotas: the upload's bytes and its tiled pixels.
  const quota = raw.match(/<p class="muted" id="quota">([^<]*)<\/p>/)?.[1] ?? "";
  const tiled = quota.match(/In the last 24 hours: \d+\.\d\d GB sent and (\d+\.\d) megapixels tiled/);
  assert.ok(tiled && +tiled[1] > 0, `the upload's pixels count: ${quota}`);
  assert.match(quota, /up to \d+ GB and \d+ megapixels a day/, quota);

  const link = page.locator(`#uploads li.upload[data-id=${JSON.stringify(upload.id)}] a.view`);
  const [viewer] = await Promise.all([page.waitForNavigation({ url: /\/view\// }), link.click()]);
  assert.equal(viewer.status(), 200);
  const name = decodeURIComponent(row.view.slice("/images/".length));
  assert.equal(decodeURIComponent(new URL(page.url()).pathname), `/view/${name}`);
  assert.equal(await page.locator("h1").textContent(), title);
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll("#viewer .layer img")];
    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, null, { timeout: 30_000 });

  const shown = await untilInGallery(page, title);
  assert.equal(shown.filter((t) => t === title).length, 1, `listed once: ${JSON.stringify(shown)}`);
  const entry = page.locator(".gallery li strong").filter({ hasText: title });
  await Promise.all([page.waitForNavigation({ url: /\/view\// }), entry.click()]);
  assert.equal(decodeURIComponent(new URL(page.url()).pathname), `/view/${name}`);
  await page.close();
});

test("a file that is not an image is sent in chunks two at a time, kept, then fails with a plain reason and never reaches the gallery", { timeout: 120_000 }, async () => {
  const title = "Notes, not a picture";
  const path = join(files, "notes.png");
  // Over two of the page's 8 MiB chunks: the third is sent while the second is on its way.
  const content = "this is not an image\n".repeat(1_000_000);
  writeFileSync(path, content);
  const imagesBefore = (await (await answers(`${demo.canonical}/health`)).json()).images;
  const page = await context.newPage();
  await uploadPage(page);
  const sent = await send(page, path, { title });
  // Tiling may fail before the page has asked again whether the upload is durable: then the row
  // already says why.
  assert.ok(sent.state === "durable on two nodes" || /failed.*not a JPEG, PNG or TIFF image/.test(sent.state),
    `the upload was acknowledged: ${sent.state}`);
  assert.deepEqual(sent.bar, { value: content.length, max: content.length });
  assert.ok(sent.chunks.length >= 3 && sent.chunks.every((s) => s >= 200 && s < 300),
    `every chunk was taken: ${sent.chunks}`);
  assert.equal(sent.most, 2, "two chunks on their way at once, never more");

  const upload = await uploadTitled(page, title);
  await page.goto(`${demo.canonical}/portal/uploads`);
  const row = await settledStage(page, upload.id);
  assert.equal(row.stage, "failed");
  assert.match(row.error ?? "", /not a JPEG, PNG or TIFF image/);
  assert.equal(row.view, null, "nothing to view");

  // Absence needs a window: the frontend asks the backends every second, so three seconds of
  // gallery pages would have shown an image the backends had taken.
  const until = Date.now() + 3_000;
  while (Date.now() < until) {
    await page.goto(`${demo.canonical}/`);
    const shown = await titles(page);
    assert.ok(!shown.includes(title), `a failed upload is in the gallery: ${JSON.stringify(shown)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const imagesAfter = (await (await answers(`${demo.canonical}/health`)).json()).images;
  assert.equal(imagesAfter, imagesBefore, "the frontend's table did not grow");
  await page.close();
});

test("the portal's pages fit a phone", { timeout: 120_000 }, async () => {
  const stranger = await browser.newContext(phone);
  const signin = await stranger.newPage();
  await signin.goto(`${demo.canonical}/portal/`);
  await signin.waitForSelector("form#signin");
  const widths = { signin: await signin.evaluate(() => document.documentElement.scrollWidth) };
  await stranger.close();
  const page = await context.newPage();
  await uploadPage(page);
  widths.upload = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.goto(`${demo.canonical}/portal/uploads`);
  await page.waitForSelector("ul#uploads");
  widths.uploads = await page.evaluate(() => document.documentElement.scrollWidth);
  for (const [which, width] of Object.entries(widths)) {
    assert.ok(width <= 390, `no sideways scrolling on the ${which} page (${width})`);
  }
  await page.close();
});

// Last: it locks the demo account for the limiter's window.
test("repeated wrong passwords lock the account, even against the right one", { timeout: 120_000 }, async () => {
  const attempt = (password) => fetch(`${demo.canonical}/portal/login`, {
    method: "POST",
    redirect: "manual",
    headers: { origin: demo.canonical, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ name: demo.account.name, password }).toString(),
  });
  const tries = [];
  for (let i = 0; i < 6; i++) {
    const r = await attempt(`${demo.account.password}-guess-${i}`);
    tries.push({ status: r.status, text: await r.text() });
  }
  const statuses = tries.map((a) => a.status);
  const locked = statuses.indexOf(429);
  assert.equal(statuses[0], 401, `the account was not locked before: ${statuses}`);
  assert.ok(locked > 0, `no attempt was refused as too many: ${statuses}`);
  assert.ok(statuses.slice(0, locked).every((s) => s === 401), `refused as wrong until locked: ${statuses}`);
  assert.ok(statuses.slice(locked).every((s) => s === 429), `locked stays locked: ${statuses}`);
  assert.match(tries[locked].text, /Too many/);

  // In the browser, the right password now gets the same refusal.
  const stranger = await browser.newContext(phone);
  const page = await stranger.newPage();
  await page.goto(`${demo.canonical}/portal/`);
  const right = await submitSignIn(page, demo.account.name, demo.account.password);
  assert.equal(right.status(), 429);
  assert.match(await page.locator("body").textContent(), /Too many/);
  assert.ok(!(await stranger.cookies(demo.canonical)).some((c) => c.name === "td_session"), "no session while locked");
  await stranger.close();
});

test("the owner withdraws an image: refused without the confirmation, then gone from the gallery and the redirects", { timeout: 180_000 }, async () => {
  const title = "To be withdrawn";
  const path = join(files, "withdrawn.png");
  writeFileSync(path, png(300, 200, (x, y) => [x % 256, 255 - (y % 256), 40]));
  const page = await context.newPage();
  await uploadPage(page);
  const sent = await send(page, path, { title });
  assert.equal(sent.state, "durable on two nodes");
  const upload = await uploadTitled(page, title);
  await page.goto(`${demo.canonical}/portal/uploads`);
  const row = await settledStage(page, upload.id);
  assert.equal(row.stage, "published", `the upload failed: ${row.error}`);
  const id = decodeURIComponent(row.view.slice("/images/".length));
  await untilInGallery(page, title);

  await page.goto(`${demo.canonical}/portal/images/${encodeURIComponent(id)}/edit`);
  const form = page.locator("form#withdraw");
  assert.equal(await form.count(), 1, "the edit page offers to withdraw the image");
  // The browser insists on the box; the server does too, whatever sends the form.
  const csrf = await form.locator("input[name=csrf]").inputValue();
  const unconfirmed = await page.request.post(`${demo.canonical}/portal/images/${encodeURIComponent(id)}/delete`, {
    form: { csrf }, headers: { origin: demo.canonical },
  });
  assert.equal(unconfirmed.status(), 400);
  assert.match(await unconfirmed.text(), /Tick the box/);
  await untilInGallery(page, title, 2_000);

  await page.goto(`${demo.canonical}/portal/images/${encodeURIComponent(id)}/edit`);
  await page.check("form#withdraw input[name=confirm]");
  await Promise.all([page.waitForNavigation(), page.click("form#withdraw button[type=submit]")]);
  assert.match(page.url(), /\/portal\/uploads\?withdrawn=/);
  assert.match(await page.locator("body").textContent(), /was withdrawn/);
  // Gone from the gallery and from the redirects within a few seconds.
  const deadline = Date.now() + 20_000;
  for (;;) {
    await page.goto(`${demo.canonical}/`);
    const shown = await titles(page);
    const redirect = await page.request.get(`${demo.canonical}/images/${encodeURIComponent(id)}`, { maxRedirects: 0 });
    if (!shown.includes(title) && redirect.status() === 404) break;
    assert.ok(Date.now() < deadline, `still shown or redirected (${redirect.status()}): ${JSON.stringify(shown)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  // The provider's list says it was withdrawn, with no View link that would answer 404.
  const listed = Date.now() + 20_000;
  for (;;) {
    await page.goto(`${demo.canonical}/portal/uploads`);
    const item = page.locator("li.upload", { hasText: title });
    if ((await item.getAttribute("data-stage")) === "withdrawn") {
      assert.match(await item.locator(".stage").textContent(), /withdrawn/);
      assert.equal(await item.locator("a.view").count(), 0, "no link to a withdrawn image");
      break;
    }
    assert.ok(Date.now() < listed, `the upload list says ${await item.getAttribute("data-stage")}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  await page.close();
});
