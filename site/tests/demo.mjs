// The demo cluster for browser tests: `td demo --prepare` writes the data and configuration,
// then every role (two frontends, three nodes) runs as its own `td` process, so a test can
// kill any one of them.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const here = dirname(fileURLToPath(import.meta.url));
export const td = process.env.TD_BIN || resolve(here, "../../target/debug/td");

/// Runs `td args`; resolves once `pattern` matches its output (rejects if it exits first or
/// after `ms`). `closed` resolves once it has exited and its output is all read.
function waitFor(args, pattern, ms) {
  return new Promise((ok, fail) => {
    const child = spawn(td, args, { stdio: ["ignore", "pipe", "pipe"] });
    const closed = new Promise((r) => child.on("close", r));
    let out = "";
    const timer = setTimeout(() => fail(new Error(`td ${args.join(" ")} timed out:\n${out}`)), ms);
    const read = (chunk) => {
      out += chunk;
      const m = out.match(pattern);
      if (m) { clearTimeout(timer); ok({ child, match: m, out: () => out, closed }); }
    };
    child.stdout.on("data", read);
    child.stderr.on("data", read);
    // After a match this is a no-op; before one, the command failed.
    child.on("close", (code) => fail(new Error(`td ${args.join(" ")} exited (${code}):\n${out}`)));
  });
}

/// Prepares a demo in a fresh folder and starts every role. Returns
/// { canonical, roles, account, data, config, stop }, where roles[name] = { origin, child },
/// account = { name, password } of the demo's portal account (undefined if the demo made
/// none), data the demo's folder and config its cluster.toml.
///
/// Options: `monitors` also starts each node's monitor (watching its backend, `NODE-monitor`
/// in roles); `repair` adds lines to the configuration's [repair] table before anything
/// starts (e.g. "ticket_grace_seconds = 2"); `tls` runs the demo with `--tls` (every address
/// https, certificates of the demo's own CA in DATA/tls/).
export async function startDemo({ monitors = false, repair = [], tls = false } = {}) {
  assert.ok(existsSync(td), `td binary not found at ${td}: build it first (cargo build -p td)`);
  const data = mkdtempSync(join(tmpdir(), "td-site-"));
  const prepared = await waitFor(["demo", "--data", data, "--listen", "127.0.0.1:0", "--prepare", ...(tls ? ["--tls"] : [])],
    /node-c-monitor https?:\/\/\S+\/.*\n/, 300_000);
  // The account line may be printed after the roles' lines: read the output to its end.
  await prepared.closed;
  const text = prepared.out();
  const canonical = text.match(/canonical (https?:\/\/[^/\s]+)\//)[1];
  const login = text.match(/demo account: (\S+) (\S+)/);
  const account = login ? { name: login[1], password: login[2] } : undefined;
  const config = join(data, "cluster.toml");
  if (repair.length) {
    const toml = readFileSync(config, "utf8");
    assert.match(toml, /^\[repair\]$/m, "the demo's configuration has a [repair] table");
    writeFileSync(config, toml.replace(/^\[repair\]$/m, `[repair]\n${repair.join("\n")}`));
  }
  const roles = {};
  const stop = () => {
    for (const r of Object.values(roles)) r.child.kill("SIGKILL");
    rmSync(data, { recursive: true, force: true });
  };
  try {
    for (const line of text.split("\n")) {
      const m = line.match(/^(\S+) (https?:\/\/[^/\s]+)\/\s+td (.*)$/);
      if (!m) continue;
      const [, name, origin, args] = m;
      // The pages need the nodes' monitors only for the operator's dashboard.
      if (name.endsWith("-monitor") && !monitors) continue;
      const { child } = await waitFor(args.split(" "), /listening on https?:\/\//, 60_000);
      roles[name] = { origin, child };
    }
  } catch (e) {
    stop();
    throw e;
  }
  const expected = ["fe-1", "fe-2", "node-a", "node-b", "node-c"];
  if (monitors) expected.push("node-a-monitor", "node-b-monitor", "node-c-monitor");
  assert.deepEqual(Object.keys(roles).sort(), expected.sort());
  return { canonical, roles, account, data, config, stop };
}

/// Resolves once `url` answers (any status), polling every 100 ms for up to `ms`.
export async function answers(url, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fetch(url, { redirect: "manual" });
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export const chromiumArgs = ["--no-sandbox", "--disable-gpu", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/// Resolves once the frontend at `origin` has every backend up and `images` images in its
/// table (it asks the backends every second).
export async function tableReady(origin, images, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const h = await (await answers(`${origin}/health`)).json();
    if (h.status === "ok" && h.images === images) return h;
    assert.ok(Date.now() < deadline, `frontend not ready: ${JSON.stringify(h)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
