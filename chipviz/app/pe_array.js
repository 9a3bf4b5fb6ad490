// PEArrayView's browser side (chipviz/app/pe_array.py; payload format: chipviz/trace_payload.py).
// Colours, state keys and fallback dimension words arrive as data: model.palette (browser_palette()).
// What the dataflow puts where arrives as data too (chipviz/chip/dataflow_table.py, Dataflow.roles): the
// payload header's `roles` (the trace's) and, before a trace is loaded, model.roles. Nothing here tests
// a dataflow's name; the dataflow key only picks the words of its edges (texts "role.<dataflow>.<edge>").
const CTOR = { u1: Uint8Array, i1: Int8Array, i2: Int16Array, i4: Int32Array, f4: Float32Array };
const REG = ["psum", "stationary", "from_left", "from_top"];
// the GEMM C = A·B: the dimensions of each matrix (A: M×K, B: K×N, C: M×N)
const MATRIX_DIMS = { A: ["M", "K"], B: ["K", "N"], C: ["M", "N"] };
const STATUS_PART = /^\s*(fold\s+\d+\s+of\s+\d+|cycle\s+\d+\s+of\s+\d+|(折叠|周期)\s*\d+\s*\/\s*\d+)\s*$/i;

function toArrayBuffer(v) {
  if (v == null) return null;
  if (v instanceof ArrayBuffer) return v;
  if (ArrayBuffer.isView(v)) return v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength);
  if (typeof v === "string") {
    const s = atob(v), u = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
    return u.buffer;
  }
  return null;
}

function decode(value) {
  const ab = toArrayBuffer(value);
  if (!ab || ab.byteLength < 8) return null;
  const magic = new Uint8Array(ab, 0, 4);
  if (String.fromCharCode(...magic) !== "CVPA") throw new Error("PEArrayView: payload without CVPA magic");
  const hlen = new DataView(ab).getUint32(4, true);
  const h = JSON.parse(new TextDecoder().decode(new Uint8Array(ab, 8, hlen)));
  const base = 8 + hlen, arr = {};
  for (const [name, s] of Object.entries(h.planes)) {
    if (s.alias) continue;
    const n = s.shape.reduce((a, b) => a * b, 1);
    arr[name] = new CTOR[s.dtype](ab, base + s.offset, n);
  }
  const reg = {};
  for (const name of REG) {
    let s = h.planes[name], key = name;
    if (s && s.alias) key = s.alias;
    reg[name] = { frames: arr[key + ".frames"], index: arr[key + ".index"] };
  }
  return { h, arr, reg, R: h.rows, C: h.cols, end: h.start + h.n, flow: flowOf(h.roles) };
}

// what a dataflow's roles imply for drawing: C stays in the PEs (and the stationary register is the
// psum), or an operand stays (preloaded from the top); whether an operand streams in from the top
function flowOf(roles) {
  const r = roles || {};
  const keepsC = r.stationary === r.psum;
  return { roles: r, keepsC, topMoves: r.from_top != null && r.from_top !== "-",
           stationaryReg: keepsC ? "psum" : "stationary" };
}

function fmt(v) {
  if (v == null || Number.isNaN(v)) return "–";
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return String(Number(v.toPrecision(a >= 100 ? 5 : 3)));
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

export function render({ model, el: host }) {
  // what to draw with comes from Python (palette: chipviz.palette colours, state keys, dimension words)
  let PAL, STATE_KEYS, DIM_DEFAULT, STATE_RGB;
  function syncPalette() {
    PAL = model.palette || {};
    STATE_KEYS = PAL.state_keys || [];
    DIM_DEFAULT = PAL.dims || {};
    STATE_RGB = (PAL.states || []).map((h) => [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16)));
  }
  syncPalette();
  // the words come from Python (texts: i18n "pe.*" in the app's language); {name}s are filled in
  const T = (key, vars) => {
    const texts = model.texts || {};
    let s = texts[key] != null ? String(texts[key]) : key;
    if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] != null ? String(vars[k]) : m));
    return s;
  };
  const stateLabel = (k) => T("state." + STATE_KEYS[k]);
  const roleText = (df, name, fallback) => {
    const texts = model.texts || {};
    return texts[`role.${df}.${name}`] || fallback;
  };
  const root = el("div", "cv-root");
  const caption = el("div", "cv-caption");
  const capText = el("span", "cv-captext"), capLive = el("span", "cv-live");
  caption.append(capText, capLive);
  const bar = el("div", "cv-bar");
  const bPlay = el("button", "cv-play");
  const bBack = el("button", "cv-back");
  const bStep = el("button", "cv-step");
  const bFold = el("button", "cv-fold");
  const speedText = document.createTextNode("");
  function syncWords() {
    bPlay.textContent = model.playing ? T("pause") : T("play");
    bBack.textContent = T("back"); bStep.textContent = T("step"); bFold.textContent = T("fold");
    bPlay.title = T("play_title"); bBack.title = T("back_title"); bStep.title = T("step_title");
    bFold.title = T("fold_title");
    speedText.textContent = T("speed");
  }
  syncWords();
  const speed = el("label", "cv-speed");
  const fpsIn = document.createElement("input");
  fpsIn.type = "range"; fpsIn.min = "1"; fpsIn.max = "60"; fpsIn.step = "1";
  const fpsOut = el("span", "cv-fps");
  speed.append(speedText, fpsIn, fpsOut);
  const status = el("span", "cv-status");
  bar.append(bPlay, bBack, bStep, bFold, speed, status);
  const wrap = el("div", "cv-wrap");
  const canvas = el("canvas", "cv-canvas");
  canvas.tabIndex = 0;
  canvas.setAttribute("role", "img");
  const tip = el("div", "cv-tip");
  wrap.append(canvas, tip);
  const legend = el("div", "cv-legend");
  // what enters and leaves each edge: one line folded away, so the grid keeps the room
  const edgesBox = el("details", "cv-edges");
  const edgesSummary = el("summary");
  const edges = el("div");
  edgesBox.append(edgesSummary, edges);
  root.append(caption, bar, wrap, legend, edgesBox);
  host.append(root);
  const ctx = canvas.getContext("2d");
  const cellCanvas = document.createElement("canvas");
  const cellCtx = cellCanvas.getContext("2d");
  let cellImg = null;

  let data = null;          // decoded batch
  let cur = model.cycle;    // cycle shown
  let pending = null;       // a cycle Python asked for that the current batch lacks
  let waiting = false;      // playing, at the batch's end, waiting for the next batch
  let lastWritten = null, lastWriteT = 0;
  let rafId = null, lastT = null, acc = 0;
  let hover = null;         // [i, j]
  let geo = null;           // layout of the last draw
  let highlightSet = new Set();
  let dirty = true;
  let lastLegendKey = null;

  const R = () => (data ? data.R : model.rows);
  const C = () => (data ? data.C : model.cols);
  const inBatch = (c) => data && c >= data.h.start && c < data.end;

  function writeCycle(force) {
    const now = performance.now();
    if (!force && now - lastWriteT < 250) return;
    if (lastWritten === cur && !force) return;
    lastWriteT = now;
    if (model.cycle !== cur) { lastWritten = cur; model.cycle = cur; }
  }

  function setHighlight() {
    highlightSet = new Set((model.highlight || []).map((p) => p[0] + "," + p[1]));
  }
  setHighlight();

  function loadFrames() {
    try {
      data = decode(model.frames);
    } catch (err) {
      console.error(err);
      data = null;
    }
    waiting = false;
    if (data) {
      const keep = data.h.follow && model.playing && pending == null && inBatch(cur) && cur >= model.cycle;
      const want = keep ? cur : pending != null ? pending : model.cycle;
      cur = inBatch(want) ? want : data.h.start;
      pending = null;
      // the same patch may still carry a new `cycle`: reconcile once it has been applied
      setTimeout(() => { if (pending == null && data && cur !== model.cycle) writeCycle(true); }, 0);
    }
    buildLegend();
    dirty = true;
    schedule();
  }

  // ---- layout ---------------------------------------------------------------------
  const BELOW_GRID = 125;  // px under the grid: the legend, the edge note and the cycle slider
  function layout() {
    const rows = R(), cols = C();
    const width = Math.max(160, root.clientWidth || host.clientWidth || 600);
    const big = Math.max(rows, cols) <= 24;
    const fixedH = model.height ? model.height - (root.offsetHeight - wrap.offsetHeight) : null;
    // without a fixed height the grid fits the window below where it starts (leaving room for the
    // legend under it), so the array, the network and the loss share one screen at 1280×720
    const top = wrap.getBoundingClientRect().top + window.scrollY;
    const fitH = window.innerHeight - (top > 0 && top < window.innerHeight ? top : 240) - BELOW_GRID;
    const availH = Math.max(220, fixedH || fitH);
    // margins: axis title, indices, edge strip
    const idxW = rows >= 100 ? 26 : 20, stripW = big ? 34 : 12;
    const ml = 18 + idxW + stripW, mt = 16 + 14 + (big ? 18 : 10), mb = big ? 20 : 12, mr = 8;
    let s = Math.floor(Math.min((width - ml - mr) / cols, (availH - mt - mb) / rows, 72));
    s = Math.max(s, 3);
    const gw = s * cols, gh = s * rows;
    return { s, ml, mt, mb, mr, idxW, stripW, gw, gh, W: ml + gw + mr, H: mt + gh + mb,
             text: big && s >= 18, corner: big && s >= 40, statMark: !(big && s >= 40) && s >= 16 };
  }

  function resize() {
    geo = layout();
    const dpr = window.devicePixelRatio || 1;
    const W = Math.round(geo.W * dpr), H = Math.round(geo.H * dpr);
    if (canvas.width !== W || canvas.height !== H) {
      canvas.width = W; canvas.height = H;
      canvas.style.width = geo.W + "px"; canvas.style.height = geo.H + "px";
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    Object.assign(canvas.dataset, { x0: geo.ml, y0: geo.mt, cell: geo.s, rows: R(), cols: C() });  // for tests
    const legendKey = `${geo.corner}|${geo.statMark}`;
    if (legendKey !== lastLegendKey) { lastLegendKey = legendKey; buildLegend(); }
    dirty = true;
  }

  const sprites = new Map();
  function sprite(dir, ms) {   // a moving-operand triangle pointing right or down, ms = half its height
    const dpr = window.devicePixelRatio || 1, key = `${dir}|${ms}|${dpr}`;
    if (sprites.has(key)) return sprites.get(key);
    const cssW = ms * 1.2 + 2, cssH = 2 * ms + 2, c = document.createElement("canvas");
    const [W, H] = dir === "right" ? [cssW, cssH] : [cssH, cssW];
    c.width = Math.ceil(W * dpr); c.height = Math.ceil(H * dpr);
    const g = c.getContext("2d");
    g.scale(dpr, dpr);
    g.beginPath();
    if (dir === "right") { g.moveTo(1, 1); g.lineTo(1 + ms * 1.2, 1 + ms); g.lineTo(1, 1 + 2 * ms); }
    else { g.moveTo(1, 1); g.lineTo(1 + ms, 1 + ms * 1.2); g.lineTo(1 + 2 * ms, 1); }
    g.closePath();
    g.fillStyle = PAL.moving; g.fill();
    if (ms >= 3.5) { g.lineWidth = 0.75; g.strokeStyle = "#ffffff"; g.stroke(); }
    const out = Object.assign(c, { cssW, cssH });
    sprites.set(key, out);
    return out;
  }

  // ---- per-cycle accessors ----------------------------------------------------------
  function reg(name, t, i, j) {
    const p = data.reg[name];
    if (!p.frames) return 0;
    return p.frames[(p.index[t] * data.R + i) * data.C + j];
  }
  function hist(name, t, k, width) {   // t relative to batch start; may be negative down to -hist
    const a = data.arr[name], tt = t + data.h.hist;
    if (tt < 0 || tt >= a.length / width) return -1;
    return a[tt * width + k];
  }
  function foldAt(t) { return hist("fold", t, 0, 1); }
  function enteredLeft(t, i, j) {      // streamed index of the moving operand inside PE(i, j)
    const f = foldAt(t);
    if (foldAt(t - j) !== f) return foldAt(t - j) === -1 ? null : -1;
    return hist("left_in", t - j, i, data.R);
  }
  function enteredTop(t, i, j) {
    const f = foldAt(t);
    if (foldAt(t - i) !== f) return foldAt(t - i) === -1 ? null : -1;
    return hist("top_in", t - i, j, data.C);
  }

  // ---- drawing ------------------------------------------------------------------
  function draw() {
    const t0 = performance.now();
    dirty = false;
    if (!geo) resize();
    const g = geo, rows = R(), cols = C(), s = g.s;
    ctx.clearRect(0, 0, g.W, g.H);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, g.W, g.H);
    const x0 = g.ml, y0 = g.mt, gap = s >= 8 ? 1 : 0;
    const t = data ? cur - data.h.start : -1;
    const fold = data ? foldAt(t) : -1;
    const tile = data && fold >= 0 ? data.h.tiles[fold] : null;
    const st = data ? data.arr.state : null, off = t * rows * cols;
    // cells by state: one pixel per PE in an offscreen image, scaled up without smoothing
    if (!cellImg || cellImg.width !== cols || cellImg.height !== rows) {
      cellCanvas.width = cols; cellCanvas.height = rows;
      cellImg = cellCtx.createImageData(cols, rows);
    }
    const px = cellImg.data;
    for (let q = 0; q < rows * cols; q++) {
      const rgb = STATE_RGB[st ? st[off + q] & 3 : 0];
      px[4 * q] = rgb[0]; px[4 * q + 1] = rgb[1]; px[4 * q + 2] = rgb[2]; px[4 * q + 3] = 255;
    }
    cellCtx.putImageData(cellImg, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(cellCanvas, x0, y0, g.gw, g.gh);
    if (gap) {   // white grid lines between the cells
      ctx.beginPath();
      for (let j = 1; j <= cols; j++) { ctx.moveTo(x0 + j * s - 0.5, y0); ctx.lineTo(x0 + j * s - 0.5, y0 + g.gh); }
      for (let i = 1; i <= rows; i++) { ctx.moveTo(x0, y0 + i * s - 0.5); ctx.lineTo(x0 + g.gw, y0 + i * s - 0.5); }
      ctx.lineWidth = 1; ctx.strokeStyle = "#ffffff"; ctx.stroke();
    }
    let macs = 0;
    if (data) {
      for (let q = 0; q < rows * cols; q++) macs += st[off + q] === 1;
      // psum magnitude: inner squares, filled for > 0, hollow for < 0
      const scale = data.h.psum_scale || 1, inner = (s - gap) * 0.74;
      const pos = new Path2D(), neg = new Path2D();
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
        const v = reg("psum", t, i, j);
        if (v === 0) continue;
        const side = Math.max(2, inner * Math.sqrt(Math.min(1, Math.abs(v) / scale)));
        const cx = x0 + j * s + (s - gap) / 2, cy = y0 + i * s + (s - gap) / 2;
        (v > 0 ? pos : neg).rect(cx - side / 2, cy - side / 2, side, side);
      }
      ctx.fillStyle = "rgba(26,26,26,0.62)";
      ctx.fill(pos);
      ctx.fillStyle = "rgba(255,255,255,0.92)";
      ctx.fill(neg);
      ctx.lineWidth = 1; ctx.strokeStyle = PAL.ink;
      ctx.stroke(neg);
      // stationary operand (ws, is): a blue square in the top-right corner, size = |value|,
      // filled when > 0 and hollow when < 0 (when C stays (os) it is the psum, already drawn)
      if (!data.flow.keepsC && g.statMark) {
        const sscale = data.h.stationary_scale || 1, big = (s - gap) * 0.34;
        const spos = new Path2D(), sneg = new Path2D();
        for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
          const v = reg("stationary", t, i, j);
          if (v === 0) continue;
          const side = Math.max(2, big * Math.sqrt(Math.min(1, Math.abs(v) / sscale)));
          (v > 0 ? spos : sneg).rect(x0 + (j + 1) * s - gap - side - 1, y0 + i * s + 1, side, side);
        }
        ctx.fillStyle = PAL.stationary; ctx.fill(spos);
        ctx.fillStyle = "#ffffff"; ctx.fill(sneg);
        ctx.lineWidth = 1; ctx.strokeStyle = PAL.stationary; ctx.stroke(sneg);
      }
      // moving operands: a triangle at the left of each PE holding one (and at the top when an
      // operand streams in from the top: os) (drawn as pre-rendered sprites: one path of thousands
      // of triangles rasterises slowly)
      const ms = Math.max(2.5, Math.min(7, s * 0.2));
      const right = sprite("right", ms), down = data.flow.topMoves ? sprite("down", ms) : null;
      const w = right.cssW, h = right.cssH;
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
        const e = enteredLeft(t, i, j);
        if (e != null && e >= 0) ctx.drawImage(right, x0 + j * s, y0 + i * s + (s - gap) / 2 - h / 2, w, h);
        if (down) {
          const e2 = enteredTop(t, i, j);
          if (e2 != null && e2 >= 0) ctx.drawImage(down, x0 + j * s + (s - gap) / 2 - h / 2, y0 + i * s, h, w);
        }
      }
      // stationary value in the corner (big cells only)
      if (g.corner) {
        ctx.font = "10px system-ui, sans-serif"; ctx.textBaseline = "top"; ctx.textAlign = "right";
        ctx.fillStyle = PAL.ink;
        const name = data.flow.stationaryReg;
        for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
          const v = reg(name, t, i, j);
          if (v === 0 && st[off + i * cols + j] === 0) continue;
          ctx.fillText(fmt(v), x0 + (j + 1) * s - gap - 2, y0 + i * s + 2);
        }
      }
    }
    // unmapped PEs of a partial edge fold: hatch-free dim overlay
    if (tile) {
      const ur = tile[1] - tile[0], uc = tile[3] - tile[2];
      ctx.fillStyle = "rgba(255,255,255,0.55)";
      if (uc < cols) ctx.fillRect(x0 + uc * s, y0, (cols - uc) * s, rows * s);
      if (ur < rows) ctx.fillRect(x0, y0 + ur * s, uc * s, (rows - ur) * s);
    }
    // outlines: highlight (black, dashed), selected (blue), hover (dark)
    ctx.save();
    ctx.lineWidth = Math.max(1.5, Math.min(3, s / 8));
    ctx.setLineDash([4, 3]); ctx.strokeStyle = PAL.highlight;
    for (const key of highlightSet) {
      const [i, j] = key.split(",").map(Number);
      if (i < rows && j < cols) ctx.strokeRect(x0 + j * s + 1, y0 + i * s + 1, s - gap - 2, s - gap - 2);
    }
    ctx.setLineDash([]);
    const sel = model.selected_pe;
    if (sel && sel[0] < rows && sel[1] < cols) {
      ctx.lineWidth = Math.max(2, Math.min(3.5, s / 6)); ctx.strokeStyle = PAL.selected;
      ctx.strokeRect(x0 + sel[1] * s + 1, y0 + sel[0] * s + 1, s - gap - 2, s - gap - 2);
    }
    if (hover) {
      ctx.lineWidth = 1.5; ctx.strokeStyle = PAL.ink;
      ctx.strokeRect(x0 + hover[1] * s + 0.5, y0 + hover[0] * s + 0.5, s - gap - 1, s - gap - 1);
    }
    ctx.restore();
    drawAxes(t, fold, tile);
    drawEdges(t);
    updateText(macs, fold);
    window.__chipviz_frames = (window.__chipviz_frames || 0) + 1;   // read by tests and benchmarks
    window.__chipviz_cycle = cur;
    window.__chipviz_draw_ms = (window.__chipviz_draw_ms || 0) + (performance.now() - t0);
  }

  function dimLabel(letter) {
    const labels = model.labels || {};
    const texts = model.texts || {};
    return `${letter} (${labels[letter] || texts["dim." + letter] || DIM_DEFAULT[letter] || ""})`;
  }

  function drawAxes(t, fold, tile) {
    const g = geo, rows = R(), cols = C(), s = g.s, x0 = g.ml, y0 = g.mt;
    const known = model.roles && model.roles.rows ? model.roles : { rows: "?", cols: "?" };
    const roles = data ? data.h.roles : known;
    ctx.fillStyle = PAL.ink;
    ctx.font = "600 12px system-ui, sans-serif";
    ctx.textBaseline = "top"; ctx.textAlign = "left";
    let colTitle = T("axis_cols", { dim: dimLabel(roles.cols) });
    let rowTitle = T("axis_rows", { dim: dimLabel(roles.rows) });
    if (tile) {
      const lc = roles.cols.toLowerCase(), lr = roles.rows.toLowerCase();
      colTitle += ` · ${lc} ${tile[2]}–${tile[3] - 1}`;
      rowTitle += ` · ${lr} ${tile[0]}–${tile[1] - 1}`;
    }
    ctx.fillText(colTitle, x0, 1);
    ctx.save();
    ctx.translate(2, y0 + g.gh / 2); ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center"; ctx.fillText(rowTitle, 0, 0);
    ctx.restore();
    // indices (every k-th when cells are small)
    ctx.font = "10px system-ui, sans-serif"; ctx.fillStyle = "#444";
    const every = s >= 16 ? 1 : s >= 8 ? 4 : 8;
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    for (let j = 0; j < cols; j += every) ctx.fillText(String(j), x0 + j * s + s / 2, 17);
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (let i = 0; i < rows; i += every) ctx.fillText(String(i), 18 + g.idxW - 3, y0 + i * s + s / 2);
  }

  function label(text, short, cx, cy, maxW) {   // text if it fits, else the short form, else nothing
    if (ctx.measureText(text).width <= maxW) ctx.fillText(text, cx, cy);
    else if (ctx.measureText(short).width <= maxW) ctx.fillText(short, cx, cy);
  }

  function drawEdges(t) {
    if (!data) return;
    const g = geo, rows = R(), cols = C(), s = g.s, x0 = g.ml, y0 = g.mt;
    const topMoves = data.flow.topMoves, streamed = data.h.roles.streamed.toLowerCase();
    const sx = x0 - g.stripW - 1, ty = y0 - (g.text ? 18 : 10) - 1, by = y0 + g.gh + 1;
    ctx.font = "10px system-ui, sans-serif"; ctx.textBaseline = "middle"; ctx.textAlign = "center";
    for (let i = 0; i < rows; i++) {           // left edge: element entering each row
      const v = hist("left_in", t, i, rows);
      if (v < 0) continue;
      const y = y0 + i * s;
      ctx.fillStyle = PAL.moving;
      ctx.fillRect(sx, y + 1, g.stripW - 1, Math.max(2, s - 3));
      if (g.text) {
        ctx.fillStyle = "#fff";
        label(`${streamed}${v}→`, `${v}`, sx + g.stripW / 2, y + s / 2, g.stripW - 2);
      }
    }
    const topH = g.text ? 16 : 8;
    for (let j = 0; j < cols; j++) {           // top edge: preload rows (ws/is) or a moving operand (os)
      const v = hist("top_in", t, j, cols);
      if (v < 0) continue;
      const x = x0 + j * s;
      ctx.fillStyle = topMoves ? PAL.moving : PAL.preload;
      ctx.fillRect(x + 1, ty, Math.max(2, s - 3), topH);
      if (g.text) {
        ctx.fillStyle = topMoves ? "#fff" : PAL.ink;
        label(`k${v}↓`, `${v}`, x + s / 2, ty + topH / 2, s - 4);
      }
    }
    const botH = g.text ? 16 : 8;
    for (let j = 0; j < cols; j++) {           // bottom edge: outputs leaving (ws/is)
      const v = data.arr.bottom_out[t * cols + j];
      if (v < 0) continue;
      const x = x0 + j * s;
      ctx.fillStyle = PAL.output;
      ctx.fillRect(x + 1, by + 1, Math.max(2, s - 3), botH);
      if (g.text) { ctx.fillStyle = "#fff"; label(`${streamed}${v}↓`, `${v}`, x + s / 2, by + 1 + botH / 2, s - 4); }
    }
  }

  function updateText(macs, fold) {
    const base = (model.caption || "").split("·");
    while (base.length && STATUS_PART.test(base[base.length - 1])) base.pop();
    const cap = base.join("·").trim();
    const total = data ? data.h.total_cycles : model.total_cycles;
    const nf = data ? data.h.n_folds : 0;
    const parts = [];
    if (data && fold >= 0) parts.push(T("live_fold", { i: fold + 1, n: nf }));
    if (data) parts.push(T("live_cycle", { i: cur + 1, n: total }));
    capText.textContent = cap;
    const live = parts.length ? parts.join(" · ") : (cap ? "" : T("no_trace"));
    capLive.textContent = (cap && parts.length ? " · " : "") + live;
    const rc = R() * C();
    let msg = data ? T("busy", { macs: macs, pes: rc }) : "";
    if (waiting) msg += T("loading");
    const sel = model.selected_pe;
    if (sel) msg += T("selected_pe", { row: sel[0], col: sel[1] });
    status.textContent = msg;
    bPlay.textContent = model.playing ? T("pause") : T("play");
    // with no cycles to show (the engine loading, no step yet, an array too large to animate), the
    // controls cannot act: they say so by being disabled
    bPlay.disabled = bBack.disabled = bStep.disabled = bFold.disabled = !data;
    canvas.setAttribute("aria-label", T("aria", { rows: R(), cols: C(), live: capLive.textContent }));
    if (hover) showTip();
  }

  function buildLegend() {
    legend.replaceChildren();
    const add = (color, label, extra) => {
      const item = el("span", "cv-leg");
      const sw = el("span", "sw");
      sw.style.background = color;
      if (extra) Object.assign(sw.style, extra);
      item.append(sw, document.createTextNode(label));
      legend.append(item);
    };
    PAL.states.forEach((color, k) => add(color, stateLabel(k)));
    add("rgba(26,26,26,0.62)", T("leg_psum_pos"), { width: "9px", height: "9px" });
    add("#ffffff", T("leg_psum_neg"), { width: "9px", height: "9px", border: "1px solid #1a1a1a" });
    const mv = el("span", "cv-leg");
    const triSvg = `<svg width="12" height="12" style="vertical-align:-2px;margin-right:4px">` +
                   `<path d="M2 1 L11 6 L2 11 Z" fill="${PAL.moving}"/></svg>`;
    mv.innerHTML = triSvg;
    mv.append(document.createTextNode(T("leg_moving")));
    legend.append(mv);
    add("transparent", T("leg_highlighted"), { border: `2px dashed ${PAL.highlight}` });
    add("transparent", T("leg_selected"), { border: `2px solid ${PAL.selected}` });
    if (data) {
      const r = data.h.roles, keepsC = data.flow.keepsC;
      const role = (name) => roleText(data.h.dataflow, name, r[name]);
      let txt = T("edge_left", { what: role("left_in") });
      txt += keepsC ? T("edge_top_os", { what: role("top_in") })
                    : T("edge_top", { top: role("top_in"), bottom: role("bottom_out") });
      if (geo && geo.corner) txt += !keepsC ? T("corner_stationary", { what: r.stationary })
                                            : T("corner_psum");
      else if (!keepsC && geo && geo.statMark) {
        txt += T("corner_square", { what: r.stationary });
      }
      txt += T("hover_hint");
      edges.textContent = txt;
    } else edges.textContent = "";
    edgesSummary.textContent = T("edges_summary");
    edgesBox.style.display = data ? "" : "none";
  }

  // ---- tooltip -------------------------------------------------------------------
  function describe(i, j) {
    if (!data) return `<b>PE (${i}, ${j})</b><br>${T("tip_no_trace")}`;
    const t = cur - data.h.start, fold = foldAt(t), { roles: r, keepsC, topMoves } = data.flow;
    const tile = fold >= 0 ? data.h.tiles[fold] : null;
    const state = data.arr.state[(t * data.R + i) * data.C + j];
    const sv = reg("stationary", t, i, j), ml = reg("from_left", t, i, j);
    const mt = reg("from_top", t, i, j), ps = reg("psum", t, i, j);
    const lines = [`<b>${T("tip_head", { row: i, col: j })}</b> · ${stateLabel(state)} · ` +
                   T("tip_fold", { i: fold + 1, n: data.h.n_folds })];
    const ST = T("tip_stationary"), MV = T("tip_moving");
    const mapped = tile && i < tile[1] - tile[0] && j < tile[3] - tile[2];
    const r0 = tile ? tile[0] : 0, c0 = tile ? tile[2] : 0;
    const eL = enteredLeft(t, i, j), eT = enteredTop(t, i, j);
    const seen = (v) => v != null && v >= 0;
    // GEMM indices of this PE: the spread dimensions from its place, the streamed one from what entered
    const at = { [r.rows]: r0 + i, [r.cols]: c0 + j };
    const elem = (mat, over) => `${mat}[${MATRIX_DIMS[mat].map((d) => (d in over ? over[d] : at[d])).join(", ")}]`;
    const moving = (e) => ({ [r.streamed]: seen(e) ? e : "–" });
    let what = "";
    lines.push(`${ST} ${elem(r.stationary, {})} = ${fmt(keepsC ? ps : sv)}`);
    lines.push(`${MV} ${elem(r.from_left, moving(eL))} = ${fmt(ml)}` + (topMoves ? ` ${T("tip_from_left")}` : ""));
    if (topMoves) lines.push(`${MV} ${elem(r.from_top, moving(eT))} = ${fmt(mt)} ${T("tip_from_top")}`);
    if (!keepsC) {
      const out = seen(eL) ? `${elem(r.psum, { [r.streamed]: eL })} (k ≤ ${at.K})` : "";
      lines.push(`psum ${out} = ${fmt(ps)}`);
    }
    if (!mapped) what = T("tip_unmapped");
    else if (state === 1) {
      const now = { [r.streamed]: eL };
      if (eL == null) what = T("tip_unknown");
      else {
        what = `<span class="cv-math">${elem("C", now)} += ${elem("A", now)} · ${elem("B", now)}</span>`;
        const conv = convTerm({ ...at, ...now });
        if (conv) what += "<br>" + conv;
      }
    } else if (state === 2) {   // the stationary operand shifts in from the top: its row index entered there
      what = T("tip_preload", { elem: seen(eT) ? ` ${elem(r.stationary, { [r.rows]: eT })}` : "" });
    } else if (state === 3) what = T("tip_stall");
    else what = T("tip_idle");
    lines.push(what);
    return lines.join("<br>");
  }

  // a conv layer's GEMM: element (M, K, N) as window, tap, input pixel and kernel (chipviz.conv_map.element)
  function convTerm(dims) {
    const g = model.conv;
    if (!g || !g.roles) return "";
    const role = {};
    ["M", "K", "N"].forEach((d, q) => { role[g.roles[q]] = dims[d]; });
    const image = Math.floor(role.p / g.out_pixels), pixel = role.p % g.out_pixels;
    const oy = Math.floor(pixel / g.out_w), ox = pixel % g.out_w;
    const tap = Math.floor(role.t / g.channels), ty = Math.floor(tap / g.kernel_w), tx = tap % g.kernel_w;
    const iy = oy * g.stride_h + ty - g.top, ix = ox * g.stride_w + tx - g.left;
    const inside = iy >= 0 && iy < g.in_h && ix >= 0 && ix < g.in_w;
    return T(inside ? "tip_conv" : "tip_conv_pad", { image: image + 1, oy, ox, ty, tx, iy, ix, f: role.f });
  }

  function showTip() {
    if (!hover || !geo) { tip.style.display = "none"; return; }
    tip.innerHTML = describe(hover[0], hover[1]);
    tip.style.display = "block";
    const g = geo, cx = canvas.offsetLeft + g.ml + (hover[1] + 1) * g.s + 8;
    const cy = canvas.offsetTop + g.mt + hover[0] * g.s;
    const w = tip.offsetWidth, ww = wrap.clientWidth;
    tip.style.left = Math.max(0, cx + w > ww ? cx - w - g.s - 16 : cx) + "px";
    tip.style.top = Math.max(0, cy) + "px";
  }

  function hit(ev) {
    if (!geo) return null;
    const r = canvas.getBoundingClientRect();
    const x = ev.clientX - r.left - geo.ml, y = ev.clientY - r.top - geo.mt;
    const j = Math.floor(x / geo.s), i = Math.floor(y / geo.s);
    if (x < 0 || y < 0 || i >= R() || j >= C()) return null;
    return [i, j];
  }

  canvas.addEventListener("mousemove", (ev) => {
    const h = hit(ev);
    if ((h && hover && h[0] === hover[0] && h[1] === hover[1]) || (!h && !hover)) return;
    hover = h; showTip(); dirty = true; schedule();
  });
  canvas.addEventListener("mouseleave", () => { hover = null; showTip(); dirty = true; schedule(); });
  canvas.addEventListener("click", (ev) => {
    const h = hit(ev);
    if (!h) return;
    const sel = model.selected_pe;
    model.selected_pe = sel && sel[0] === h[0] && sel[1] === h[1] ? null : h;
    dirty = true; schedule();
  });

  // ---- playback --------------------------------------------------------------------
  function goTo(c) {
    if (!data) return;
    if (inBatch(c)) { cur = c; dirty = true; writeCycle(true); schedule(); }
    else { pending = c; model.cycle = c; lastWritten = c; }   // Python loads a window holding c
  }
  function step(n) {
    if (!data) return;
    const c = Math.max(0, Math.min(data.h.total_cycles - 1, cur + n));
    goTo(c);
  }
  function nextFold() {
    if (!data) return;
    const f = foldAt(cur - data.h.start);
    for (let c = cur + 1; c < data.end; c++) if (foldAt(c - data.h.start) !== f) { goTo(c); return; }
    model.send_msg({ action: "next_fold" });
  }
  function advance(k) {
    const last = data.end - 1;
    cur = Math.min(cur + k, last);
    dirty = true;
    if (cur >= last) {
      if (data.end >= data.h.total_cycles) { model.playing = false; }
      else { waiting = true; }
      writeCycle(true);
    } else writeCycle(false);
  }
  function tick(ts) {
    rafId = null;
    if (model.playing && data && !waiting) {
      if (lastT == null) lastT = ts;
      else {  // time spent playing, and the frames drawn in it (read by benchmarks: frames/s while playing)
        window.__chipviz_play_ms = (window.__chipviz_play_ms || 0) + (ts - lastT);
        window.__chipviz_play_frames = (window.__chipviz_play_frames || 0) + 1;
      }
      acc += ((ts - lastT) / 1000) * model.fps;
      lastT = ts;
      if (acc > 4) acc = 4;   // after a hidden tab or a slow frame, do not race to catch up
      // a quarter-cycle tolerance keeps fps ≈ the display rate from beating against rAF jitter
      // (0 cycles one frame, 2 the next); acc may dip below 0, so the long-run rate stays fps
      const k = Math.floor(acc + 0.25);
      if (k > 0) { acc -= k; advance(k); }
    } else { lastT = null; acc = 0; }
    if (dirty) draw();
    if (model.playing && data && !waiting) rafId = requestAnimationFrame(tick);
  }
  function schedule() { if (rafId == null) rafId = requestAnimationFrame(tick); }

  bPlay.addEventListener("click", () => {
    if (!data) return;
    if (!model.playing && data && cur >= data.end - 1 && data.end >= data.h.total_cycles) {
      cur = data.h.start; writeCycle(true);   // replay from the start of the batch
    }
    model.playing = !model.playing;
  });
  bStep.addEventListener("click", () => step(1));
  bBack.addEventListener("click", () => step(-1));
  bFold.addEventListener("click", nextFold);
  fpsIn.addEventListener("input", () => { model.fps = Number(fpsIn.value); });
  // Keyboard, anywhere on the page but in a text field or a control: space plays or pauses,
  // ← / → step a cycle, n asks the app for the next GEMM.
  const typing = (ev) => {
    const t = ev.composedPath ? ev.composedPath()[0] : ev.target;
    if (!t || !t.tagName) return false;
    const tag = t.tagName.toLowerCase();
    // a focused button keeps its own space key (it presses the button), for keyboard users
    return t.isContentEditable || ["input", "textarea", "select"].includes(tag) || (tag === "button" && ev.key === " ");
  };
  const onKey = (ev) => {
    if (ev.defaultPrevented || ev.altKey || ev.ctrlKey || ev.metaKey || typing(ev)) return;
    if (ev.key === " ") { if (data) model.playing = !model.playing; }
    else if (ev.key === "ArrowRight") step(1);
    else if (ev.key === "ArrowLeft") step(-1);
    else if (ev.key === "n" || ev.key === "N") model.send_msg({ action: "next_gemm" });
    else return;
    ev.preventDefault();
  };
  document.addEventListener("keydown", onKey);
  const syncFps = () => { fpsIn.value = String(model.fps); fpsOut.textContent = T("fps", { fps: model.fps }); };
  const syncControls = () => { bar.style.display = model.show_controls ? "" : "none"; };
  syncFps(); syncControls();

  model.on("frames", loadFrames);
  model.on("cycle", () => {
    const c = model.cycle;
    if (c === lastWritten) return;
    lastWritten = null;
    if (inBatch(c)) { cur = c; pending = null; waiting = false; dirty = true; schedule(); }
    else pending = c;
  });
  model.on("playing", () => {
    waiting = false; lastT = null; dirty = true; schedule();
    if (!model.playing) writeCycle(true);
  });
  model.on("fps", syncFps);
  model.on("show_controls", () => { syncControls(); resize(); schedule(); });
  model.on(["caption", "selected_pe", "labels", "total_cycles"], () => { dirty = true; schedule(); });
  model.on("highlight", () => { setHighlight(); dirty = true; schedule(); });
  model.on("texts", () => { syncWords(); syncFps(); buildLegend(); dirty = true; schedule(); });
  model.on("palette", () => { syncPalette(); sprites.clear(); buildLegend(); dirty = true; schedule(); });
  model.on(["rows", "cols", "dataflow", "roles"], () => { resize(); schedule(); });

  const ro = new ResizeObserver(() => { resize(); draw(); });
  ro.observe(root);
  const onWin = () => { resize(); schedule(); };
  window.addEventListener("resize", onWin);
  model.on("remove", () => {
    ro.disconnect(); window.removeEventListener("resize", onWin); document.removeEventListener("keydown", onKey);
    if (rafId != null) cancelAnimationFrame(rafId);
    rafId = null;
  });

  loadFrames();
  return root;
}
