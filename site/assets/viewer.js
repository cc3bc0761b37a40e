// Deep-zoom viewer: takes over the plain-HTML tile grid when JavaScript runs. Pans by drag,
// zooms by wheel, pinch, double-click and keys (+ - arrows 0), loads only the tiles in view,
// and when a tile fails on one replica asks the next one, so a backend dying mid-visit costs
// the visitor nothing.
(function () {
  "use strict";
  const box = document.getElementById("viewer");
  if (!box) return;
  const d = box.dataset;
  const W = +d.width, H = +d.height, T = +d.tile, LEVELS = +d.levels, ID = d.id;
  const replicas = JSON.parse(d.replicas || '[""]');
  let preferred = 0; // replica that answered last; a failure moves every later request on

  box.classList.add("js");
  // The reload links and level note are for browsers without JavaScript.
  document.documentElement.classList.add("js-viewer");
  box.textContent = "";
  box.tabIndex = 0;
  box.setAttribute("role", "application");
  box.setAttribute("aria-label", "Zoomable image: drag to pan, + and - to zoom");
  const layer = document.createElement("div");
  layer.className = "layer";
  box.appendChild(layer);
  const controls = document.createElement("div");
  controls.className = "zoom-controls";
  for (const [label, f] of [["+", 2], ["−", 0.5], ["⤢", 0]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.addEventListener("click", () => (f ? zoomAt(f, box.clientWidth / 2, box.clientHeight / 2) : fit()));
    controls.appendChild(b);
  }
  box.appendChild(controls);

  // View: screen pixels per image pixel, and the image point at the top-left corner.
  let scale = 1, x0 = 0, y0 = 0;
  const tiles = new Map(); // "level/col/row" → img

  function minScale() { return Math.min(box.clientWidth / W, box.clientHeight / H, 1); }
  function fit() {
    scale = minScale();
    x0 = (W - box.clientWidth / scale) / 2;
    y0 = (H - box.clientHeight / scale) / 2;
    draw();
  }
  function clamp() {
    scale = Math.min(Math.max(scale, minScale()), 4);
    const vw = box.clientWidth / scale, vh = box.clientHeight / scale;
    x0 = vw >= W ? (W - vw) / 2 : Math.min(Math.max(x0, 0), W - vw);
    y0 = vh >= H ? (H - vh) / 2 : Math.min(Math.max(y0, 0), H - vh);
  }
  function zoomAt(factor, sx, sy) {
    const ix = x0 + sx / scale, iy = y0 + sy / scale;
    scale *= factor;
    clamp();
    x0 = ix - sx / scale;
    y0 = iy - sy / scale;
    draw();
  }

  function tileUrl(level, col, row, replica) {
    return replicas[replica] + "/tiles/" + ID + "/" + level + "/" + col + "/" + row + ".jpg";
  }
  // Tries every replica once, starting with the preferred one.
  function load(img, level, col, row, start = preferred, tries = 0) {
    const replica = (start + tries) % replicas.length;
    img.onerror = () => {
      if (tries + 1 < replicas.length) {
        preferred = (replica + 1) % replicas.length;
        load(img, level, col, row, start, tries + 1);
      } else {
        img.classList.add("failed");
      }
    };
    img.src = tileUrl(level, col, row, replica);
  }

  function draw() {
    clamp();
    // The level whose resolution is just above the screen's.
    let level = Math.floor(Math.log2(1 / scale));
    level = Math.min(Math.max(level, 0), LEVELS - 1);
    const f = 2 ** level, span = T * f; // image pixels per tile of this level
    const lw = Math.ceil(W / f), lh = Math.ceil(H / f);
    const c0 = Math.max(0, Math.floor(x0 / span)), r0 = Math.max(0, Math.floor(y0 / span));
    const c1 = Math.min(Math.ceil(lw / T) - 1, Math.floor((x0 + box.clientWidth / scale) / span));
    const r1 = Math.min(Math.ceil(lh / T) - 1, Math.floor((y0 + box.clientHeight / scale) / span));
    const keep = new Set();
    for (let r = r0; r <= r1; r++) {
      for (let c = c0; c <= c1; c++) {
        const key = level + "/" + c + "/" + r;
        keep.add(key);
        let img = tiles.get(key);
        if (!img) {
          img = document.createElement("img");
          img.alt = "";
          img.draggable = false;
          img.dataset.key = key;
          tiles.set(key, img);
          layer.appendChild(img);
          load(img, level, c, r);
        }
        const tw = Math.min(T, lw - c * T), th = Math.min(T, lh - r * T);
        const s = img.style;
        s.left = (c * span - x0) * scale + "px";
        s.top = (r * span - y0) * scale + "px";
        s.width = tw * f * scale + "px";
        s.height = th * f * scale + "px";
      }
    }
    for (const [key, img] of tiles) {
      if (!keep.has(key)) { img.remove(); tiles.delete(key); }
    }
  }

  // Drag with any pointer; pinch with two.
  const pointers = new Map();
  let pinch = 0;
  box.addEventListener("pointerdown", (e) => {
    if (e.target.closest("button")) return;
    box.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, [e.clientX, e.clientY]);
  });
  box.addEventListener("pointermove", (e) => {
    const p = pointers.get(e.pointerId);
    if (!p) return;
    if (pointers.size === 1) {
      x0 -= (e.clientX - p[0]) / scale;
      y0 -= (e.clientY - p[1]) / scale;
      pointers.set(e.pointerId, [e.clientX, e.clientY]);
      draw();
    } else if (pointers.size === 2) {
      pointers.set(e.pointerId, [e.clientX, e.clientY]);
      const [a, b] = [...pointers.values()];
      const dist = Math.hypot(a[0] - b[0], a[1] - b[1]);
      const r = box.getBoundingClientRect();
      if (pinch) zoomAt(dist / pinch, (a[0] + b[0]) / 2 - r.left, (a[1] + b[1]) / 2 - r.top);
      pinch = dist;
    }
  });
  const up = (e) => { pointers.delete(e.pointerId); pinch = 0; };
  box.addEventListener("pointerup", up);
  box.addEventListener("pointercancel", up);
  box.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = box.getBoundingClientRect();
    zoomAt(Math.exp(-e.deltaY * 0.002), e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  box.addEventListener("dblclick", (e) => {
    const r = box.getBoundingClientRect();
    zoomAt(2, e.clientX - r.left, e.clientY - r.top);
  });
  box.addEventListener("keydown", (e) => {
    const step = 100 / scale, cx = box.clientWidth / 2, cy = box.clientHeight / 2;
    const k = e.key;
    if (k === "+" || k === "=") zoomAt(2, cx, cy);
    else if (k === "-") zoomAt(0.5, cx, cy);
    else if (k === "0") fit();
    else if (k === "ArrowLeft") { x0 -= step; draw(); }
    else if (k === "ArrowRight") { x0 += step; draw(); }
    else if (k === "ArrowUp") { y0 -= step; draw(); }
    else if (k === "ArrowDown") { y0 += step; draw(); }
    else return;
    e.preventDefault();
  });
  window.addEventListener("resize", draw);
  fit();
})();
