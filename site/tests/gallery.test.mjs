// The gallery and search of the canonical address in a real browser (Debian's Chromium), on a
// phone and without JavaScript: every link is a plain link through the frontend. Then the
// frontend holding the canonical address is killed, and the other one takes it over.
//
// Needs /usr/bin/chromium and a built td (TD_BIN, default target/debug/td).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startDemo, tableReady, answers, chromiumArgs } from "./demo.mjs";

let demo, browser, context;
before(async () => {
  demo = await startDemo();
  await tableReady(demo.canonical, 3);
  await tableReady(demo.roles["fe-2"].origin, 3);
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: chromiumArgs });
  context = await browser.newContext({
    javaScriptEnabled: false, viewport: { width: 390, height: 844 }, isMobile: true,
  });
});

after(async () => {
  await browser?.close();
  demo?.stop();
});

const titles = (page) => page.$$eval(".gallery li strong", (s) => s.map((x) => x.textContent));

test("the gallery lists every image with its thumbnail and fits a phone", async () => {
  const page = await context.newPage();
  const response = await page.goto(`${demo.canonical}/`, { waitUntil: "load" });
  assert.equal(response.status(), 200);
  assert.deepEqual(await titles(page), ["Dendrite", "Seahorse Valley", "Zone Plate"]);
  const thumbs = await page.$$eval(".gallery img", (imgs) => imgs.map((i) => i.complete && i.naturalWidth > 0));
  assert.deepEqual(thumbs, [true, true, true], "every thumbnail came through its redirect");
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `no sideways scrolling on a phone (${width})`);
  await Promise.all([page.waitForNavigation(), page.getByText("Zone Plate").click()]);
  assert.match(page.url(), /^http:\/\/127\.0\.0\.1:\d+\/view\/zone-plate$/);
  assert.equal(await page.locator("h1").textContent(), "Zone Plate");
  await page.close();
});

test("search by words, artist and years, from the form", async () => {
  const page = await context.newPage();
  await page.goto(`${demo.canonical}/`);
  await page.fill("input[name=q]", "fractal");
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  assert.match(page.url(), /\/search\?q=fractal/);
  assert.deepEqual(await titles(page), ["Dendrite", "Seahorse Valley"]);
  assert.match(await page.locator(".result-count").textContent(), /^2 images/);

  await page.fill("input[name=q]", "");
  await page.fill("input[name=artist]", "fresnel");
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  assert.deepEqual(await titles(page), ["Zone Plate"]);

  await page.goto(`${demo.canonical}/search?from=1900&to=1999`);
  assert.deepEqual(await titles(page), ["Dendrite", "Seahorse Valley"]);
  assert.equal(await page.inputValue("input[name=from]"), "1900", "the form keeps what was asked");

  await page.goto(`${demo.canonical}/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E`);
  assert.equal(await page.inputValue("input[name=q]"), "<script>alert(1)</script>", "shown as text");
  assert.match(await page.locator(".gallery").textContent(), /No images/);
  await page.close();
});

test("a search shows the titles holding its words first, or sorts by title on request", async () => {
  const page = await context.newPage();
  // "se" begins "Seahorse" in a title, and "set" in Dendrite's artist.
  await page.goto(`${demo.canonical}/search?q=se`);
  assert.deepEqual(await titles(page), ["Seahorse Valley", "Dendrite"]);
  assert.match(await page.locator(".sort-order").textContent(), /^Best matches first/);
  await Promise.all([page.waitForNavigation(), page.getByText("Sort by title").click()]);
  assert.match(page.url(), /\/search\?q=se&sort=title&page=1$/);
  assert.deepEqual(await titles(page), ["Dendrite", "Seahorse Valley"]);
  await Promise.all([page.waitForNavigation(), page.getByText("Best matches first").click()]);
  assert.deepEqual(await titles(page), ["Seahorse Valley", "Dendrite"]);
  // Without words the order is the title's, and there is nothing to choose.
  await page.goto(`${demo.canonical}/search?from=1900&to=1999`);
  assert.equal(await page.locator(".sort-order").count(), 0);
  await page.close();
});

test("an unknown image gets a clear page, not a hang", async () => {
  const page = await context.newPage();
  const response = await page.goto(`${demo.canonical}/images/no-such-thing`);
  assert.equal(response.status(), 404);
  assert.equal(await page.locator("h1").textContent(), "No such image");
  await page.close();
});

test("killing the frontend that holds the canonical address: the other takes it over", async () => {
  const before = await (await answers(`${demo.canonical}/health`)).json();
  assert.equal(before.frontend, "fe-1");
  const killed = Date.now();
  demo.roles["fe-1"].child.kill("SIGKILL");
  let after;
  for (;;) {
    try {
      after = await (await fetch(`${demo.canonical}/health`)).json();
      if (after.frontend === "fe-2") break;
    } catch {
      // refused while nobody holds it
    }
    assert.ok(Date.now() - killed < 10_000, "fe-2 did not take over");
    await new Promise((r) => setTimeout(r, 20));
  }
  console.log(`canonical address answered by fe-2 ${Date.now() - killed} ms after fe-1 was killed`);
  const page = await context.newPage();
  const response = await page.goto(`${demo.canonical}/images/dendrite-julia`);
  assert.equal(response.status(), 200);
  assert.equal(await page.locator("h1").textContent(), "Dendrite");
  await page.close();
});
