// The upload portal: sends each chosen original in 8 MiB chunks, two on their way at once
// (tus 1.0 style: PATCH at Upload-Offset, HEAD to learn where to go on from), with a progress
// bar per file; an
// interrupted upload resumes where it stopped, also after a reload (the upload's address is kept
// in localStorage under the file's name, size and date). An upload left without a chunk for
// too long expires on the server (410 Gone): the page says so and forgets its address, so
// choosing the file again starts it afresh. The status page follows itself.
"use strict";
(function () {
  const CHUNK = 8 << 20;
  // Chunks on their way at once.
  const WINDOW = 2;
  const RETRIES = 8;
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const STAGES = { receiving: "receiving", received: "received", durable: "durable on two nodes",
    tiling: "tiling", placing: "placing replicas", verifying: "verifying", published: "published",
    failed: "failed", withdrawn: "withdrawn" };
  // What the server says of an upload that expired (site::portal::EXPIRED).
  const EXPIRED = "expired — choose the file again";
  const isExpired = (u) => u.stage === "failed" && u.error === EXPIRED;
  const expired = () => Object.assign(new Error(EXPIRED), { expired: true });

  const el = (tag, attrs = {}, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  /// One request; resolves with the XHR whatever its status, rejects on a network failure.
  function request(method, url, body, headers, onProgress) {
    return new Promise((ok, fail) => {
      const x = new XMLHttpRequest();
      x.open(method, url);
      x.setRequestHeader("x-csrf-token", csrf);
      for (const [k, v] of Object.entries(headers || {})) x.setRequestHeader(k, v);
      if (onProgress) x.upload.onprogress = (e) => onProgress(e.loaded);
      x.onload = () => ok(x);
      x.onerror = () => fail(new Error("the connection was lost"));
      x.ontimeout = () => fail(new Error("the server did not answer"));
      x.timeout = 300000;
      x.send(body);
    });
  }

  const keyOf = (f) => `td-upload:${f.name}:${f.size}:${f.lastModified}`;

  async function start(file, meta, state) {
    const kept = localStorage.getItem(keyOf(file));
    if (kept) {
      // Gone (410: it expired), finished or unknown: this choice of the file starts afresh.
      const head = await request("HEAD", kept).catch(() => null);
      if (head && head.status === 200) return kept;
      localStorage.removeItem(keyOf(file));
      if (head && head.status === 410) state.textContent = "the earlier upload expired; starting again";
    }
    const x = await request("POST", "/portal/api/uploads",
      JSON.stringify({ filename: file.name, length: file.size, meta }),
      { "content-type": "application/json" });
    if (x.status !== 201) throw new Error(x.responseText.trim() || `refused (${x.status})`);
    const url = JSON.parse(x.responseText).url;
    localStorage.setItem(keyOf(file), url);
    return url;
  }

  async function send(file, meta, row) {
    const bar = row.querySelector("progress");
    const state = row.querySelector(".state");
    bar.max = file.size;
    const show = (n) => {
      bar.value = n;
      state.textContent = `uploading ${Math.floor((100 * n) / file.size)} %`;
    };
    const url = await start(file, meta, state);
    let offset = 0;
    let stage = "receiving";
    let failures = 0;
    const gone = () => {
      localStorage.removeItem(keyOf(file));
      return expired();
    };
    const head = await request("HEAD", url);
    if (head.status === 410) throw gone();
    if (head.status === 200) offset = Number(head.getResponseHeader("upload-offset")) || 0;
    show(offset);
    // Each chunk on its way, by where it starts: how much of it was sent.
    const sending = new Map();
    const showSent = () => show(offset + [...sending.values()].reduce((a, b) => a + b, 0));
    const put = (at) => {
      const end = Math.min(at + CHUNK, file.size);
      sending.set(at, 0);
      const answer = request("PATCH", url, file.slice(at, end),
        { "content-type": "application/offset+octet-stream", "upload-offset": String(at) },
        (n) => { sending.set(at, n); showSent(); })
        .catch(() => null)
        .then((x) => { sending.delete(at); return x; });
      return { end, answer };
    };
    // WINDOW chunks on their way at once, each from where the one before it ends: the next one
    // travels while the server writes the one before (which it waits for, should they pass
    // each other). An empty chunk at the end asks the server to seal an upload it has whole.
    let onWay = [];
    while (offset < file.size || stage === "receiving") {
      let next = onWay.length ? onWay[onWay.length - 1].end : offset;
      while (onWay.length < WINDOW && (next < file.size || onWay.length === 0)) {
        const c = put(next);
        onWay.push(c);
        next = c.end;
      }
      const x = await onWay.shift().answer;
      if (x && x.status === 204) {
        offset = Number(x.getResponseHeader("upload-offset"));
        stage = x.getResponseHeader("td-stage") || stage;
        failures = 0;
        showSent();
        continue;
      }
      // The chunks after it cannot land beyond a gap: their answers are awaited, and the
      // server says where to go on from.
      await Promise.all(onWay.map((c) => c.answer));
      onWay = [];
      if (x && x.status === 410) throw gone();
      if (x && x.status >= 400 && x.status < 500 && x.status !== 409) {
        localStorage.removeItem(keyOf(file));
        throw new Error(x.responseText.trim() || `refused (${x.status})`);
      }
      // Lost, or the server knows another offset: ask it where to go on from (at once when it
      // answered; after a growing pause when the connection was lost).
      if (++failures > RETRIES) throw new Error("the upload stopped; choose the file again to resume it");
      if (!x || x.status !== 409) {
        state.textContent = `connection trouble; resuming (try ${failures})`;
        await sleep(Math.min(500 * 2 ** failures, 15000));
      }
      const h = await request("HEAD", url).catch(() => null);
      if (h && h.status === 410) throw gone();
      if (h && h.status === 200) offset = Number(h.getResponseHeader("upload-offset"));
      showSent();
    }
    localStorage.removeItem(keyOf(file));
    bar.value = file.size;
    return stage;
  }

  async function followUntilDurable(id, row) {
    const state = row.querySelector(".state");
    for (;;) {
      const list = await fetch("/portal/api/uploads", { cache: "no-store" }).then((r) => r.json()).catch(() => []);
      const u = list.find((x) => x.id === id);
      if (u && u.stage !== "receiving" && u.stage !== "received") {
        state.textContent = isExpired(u) ? EXPIRED : u.stage === "failed" ? `failed: ${u.error}` : STAGES.durable;
        return;
      }
      if (u && u.waiting) state.textContent = `received; ${u.waiting}`;
      await sleep(1000);
    }
  }

  const form = document.getElementById("upload");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const files = Array.from(document.getElementById("file").files);
      const value = (id) => document.getElementById(id).value;
      const meta = {
        title: value("title"), artist: value("artist"), date: value("date"),
        description: value("description"), rights: value("rights"),
        keywords: value("keywords").split(",").map((k) => k.trim()).filter(Boolean),
      };
      const list = document.getElementById("progress");
      const send_button = document.getElementById("send");
      send_button.disabled = true;
      try {
        for (const [i, file] of files.entries()) {
          const m = { ...meta };
          if (files.length > 1) m.title = `${meta.title} (${i + 1})`;
          const row = el("li");
          row.append(el("strong", {}, file.name), " ", el("progress", { value: "0", max: String(file.size) }),
            " ", el("span", { class: "state" }, "starting"));
          list.append(row);
          try {
            const stage = await send(file, m, row);
            const url = localStorage.getItem(keyOf(file));
            if (stage === "received") {
              row.querySelector(".state").textContent = "received; making the second copy";
            }
            if (stage === "durable" || stage === "tiling") {
              row.querySelector(".state").textContent = STAGES.durable;
            } else {
              const id = (url || "").split("/").pop();
              await followUntilDurable(id || "", row);
            }
          } catch (e) {
            row.querySelector(".state").textContent = e.expired ? e.message : `failed: ${e.message}`;
            row.querySelector(".state").classList.add("error");
          }
        }
      } finally {
        send_button.disabled = false;
      }
    });
  }

  // The status page: rebuilt every second from the API, as text (never as HTML).
  const uploads = document.getElementById("uploads");
  if (uploads) {
    const item = (u) => {
      const li = el("li", { class: "upload", "data-id": u.id, "data-stage": u.stage });
      li.append(el("strong", { class: "title" }, u.title), " ", el("span", { class: "muted" }, u.filename),
        el("br"), el("span", { class: "stage" }, isExpired(u) ? "expired" : STAGES[u.stage] || u.stage));
      if (u.stage === "receiving" && u.length > 0) {
        li.append(" ", el("progress", { value: String(u.received), max: String(u.length) }));
      }
      if (u.waiting) li.append(el("br"), el("span", { class: "waiting" }, u.waiting));
      if (u.error) li.append(el("br"), el("span", { class: "error" }, u.error));
      if (u.stage === "published") {
        const id = encodeURIComponent(u.image);
        li.append(el("br"), el("a", { class: "view", href: `/images/${id}` }, "View"), " · ",
          el("a", { class: "edit", href: `/portal/images/${id}/edit` }, "Edit details"));
      }
      return li;
    };
    const refresh = async () => {
      try {
        const r = await fetch("/portal/api/uploads", { cache: "no-store" });
        if (r.ok) {
          const list = await r.json();
          if (list.length) uploads.replaceChildren(...list.map(item));
        }
      } catch (e) { /* the next round tries again */ }
      setTimeout(refresh, 1000);
    };
    setTimeout(refresh, 1000);
  }
})();
