"""PEArrayView: the systolic array animated cycle by cycle in the browser.

The server packs a window of a :class:`chipviz.chip.trace.Trace` (a "batch" of up to a few
hundred cycles) into one binary payload; the browser decodes it into typed arrays and plays
it with ``requestAnimationFrame`` on a canvas, so the server sends one message per batch
instead of one per cycle. While playing, the browser writes the shown ``cycle`` back to
Python about four times a second and at once when it pauses or reaches the batch's last
cycle; then ``at_end`` turns True and (with ``auto_advance``) the next window of the held
trace is sent.

Payload layout (``frames``, a ``param.Bytes`` sent as a binary websocket frame; measured
here: 4 MB arrive as an ``ArrayBuffer`` with nothing to decode, where the same data as a
base64 string is a third larger and takes 25 to 60 ms to decode in the browser)::

    b"CVPA" | uint32 LE header length H | H bytes of JSON header (padded to 8) | planes

Each plane is a little-endian array aligned to 8 bytes at ``data offset``; the header's
``planes`` maps a name to ``{"dtype", "shape", "offset"}``. Register planes (``psum``,
``stationary``, ``from_left``, ``from_top``) are stored as distinct consecutive frames
(``<name>.frames``, shape (u, R, C)) and a per-cycle frame number (``<name>.index``), so a
weight tile that stays put for hundreds of cycles is sent once; a plane equal to another is
sent as ``{"alias": other}``. ``left_in``, ``top_in`` and ``fold`` carry ``hist`` extra
cycles before the batch (-1 where the trace does not reach), which the browser needs to tell
which streamed element is inside PE(i, j): it entered row i at cycle c − j.
"""
from __future__ import annotations

import json
import re
import struct
from typing import Any

import numpy as np
import param
from panel.custom import JSComponent

from ..chip.trace import Trace
from . import palette
from ..i18n import texts as _texts

MAGIC = b"CVPA"
FORMAT_VERSION = 1
DEFAULT_BATCH_BYTES = 2 * 2**20
MAX_BATCH_BYTES = 64 * 2**20
MIN_BATCH_CYCLES = 16
MAX_DEFAULT_BATCH_CYCLES = 600
REGISTER_PLANES = ("psum", "stationary", "from_left", "from_top")
DIMENSION_LABELS = {"M": "rows of A and C", "K": "inner dimension", "N": "columns of B and C"}
STATE_KEYS = palette.STATE_LABELS  # i18n "pe.state.<key>", in palette.STATE_COLORS order
_DTYPES = {"u1": np.uint8, "i1": np.int8, "i2": np.int16, "i4": np.int32, "f4": np.float32}
_STATUS_PART = re.compile(r"^\s*(fold\s+\d+\s+of\s+\d+|cycle\s+\d+\s+of\s+\d+|(折叠|周期)\s*\d+\s*/\s*\d+)\s*$",
                          re.IGNORECASE)


def pe_texts(lang: str = "en") -> dict[str, str]:
    """The view's words in `lang` for its `texts` parameter (i18n keys "pe.*", without the prefix)."""
    return _texts("pe.", lang)


def strip_status(caption: str) -> str:
    """The caption without trailing "fold X of Y" / "cycle X of Y" parts (the view appends live ones)."""
    parts = caption.split("·")
    while parts and _STATUS_PART.match(parts[-1]):
        parts.pop()
    return "·".join(parts).strip()


def bytes_per_cycle(rows: int, cols: int, dataflow: str) -> int:
    """Approximate payload bytes one cycle costs (state, psum, moving operands, edge indices)."""
    planes = 2 if dataflow != "os" else 3  # psum, from_left (+ from_top); stationary repeats or aliases psum
    return rows * cols * (1 + 4 * planes) + 4 * (rows + 2 * cols + 1) + 8


def default_batch_cycles(rows: int, cols: int, dataflow: str, budget: int = DEFAULT_BATCH_BYTES) -> int:
    """How many cycles one batch holds by default: about `budget` bytes, 16 to 600 cycles."""
    return int(min(MAX_DEFAULT_BATCH_CYCLES, max(MIN_BATCH_CYCLES, budget // bytes_per_cycle(rows, cols, dataflow))))


def _dedupe(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct consecutive frames, frame number per cycle) of a (n, R, C) array."""
    if x.shape[0] == 0:
        return x, np.zeros(0, np.int32)
    new = np.ones(x.shape[0], bool)
    new[1:] = np.any(x[1:] != x[:-1], axis=(1, 2))
    return np.ascontiguousarray(x[new]), (np.cumsum(new) - 1).astype(np.int32)


def _with_history(values: np.ndarray, trace_start: int, start: int, stop: int, hist: int, fill: int) -> np.ndarray:
    """values[start - hist : stop] in trace coordinates, `fill` where the trace does not reach."""
    width = values.shape[1:] if values.ndim > 1 else ()
    out = np.full((stop - start + hist, *width), fill, np.int32)
    lo = max(start - hist, trace_start)
    out[lo - (start - hist):] = values[lo - trace_start: stop - trace_start]
    return out


def pack_window(trace: Trace, start: int, stop: int, *, total_cycles: int, psum_scale: float | None = None,
                stationary_scale: float | None = None, max_bytes: int = MAX_BATCH_BYTES,
                follow: bool = False) -> bytes:
    """Cycles [start, stop) of `trace` (GEMM cycle numbers) as one payload for the browser.

    psum_scale / stationary_scale are the magnitudes drawn full size (default: the window's
    largest); follow=True marks a continuation of the batch being played: a browser already playing a
    cycle inside the new window keeps going from there instead of jumping to ``cycle``.
    """
    rows, cols = int(trace.state.shape[1]), int(trace.state.shape[2])
    t0 = trace.start
    a, b = start - t0, stop - t0
    n = stop - start
    hist = max(rows, cols) - 1
    planes: dict[str, np.ndarray] = {"state": np.ascontiguousarray(trace.state[a:b], np.uint8)}
    aliases: dict[str, str] = {}
    kept: list[tuple[str, np.ndarray]] = []
    for name in REGISTER_PLANES:
        x = np.ascontiguousarray(getattr(trace, name)[a:b], np.float32)
        twin = next((other for other, y in kept if np.array_equal(x, y)), None)
        if twin is not None:
            aliases[name] = twin
            continue
        kept.append((name, x))
        frames, index = _dedupe(x)
        planes[f"{name}.frames"] = frames
        planes[f"{name}.index"] = index
    planes["fold"] = _with_history(trace.fold, t0, start, stop, hist, -1)
    planes["left_in"] = _with_history(trace.left_in, t0, start, stop, hist, -1)
    planes["top_in"] = _with_history(trace.top_in, t0, start, stop, hist, -1)
    planes["bottom_out"] = np.ascontiguousarray(trace.bottom_out[a:b], np.int32)

    layout: dict[str, Any] = {}
    offset = 0
    for name, arr in planes.items():
        code = {np.dtype(np.uint8): "u1", np.dtype(np.int32): "i4", np.dtype(np.float32): "f4"}[arr.dtype]
        layout[name] = {"dtype": code, "shape": list(arr.shape), "offset": offset}
        offset += -(-arr.nbytes // 8) * 8
    for name, twin in aliases.items():
        layout[name] = {"alias": twin}
    if offset > max_bytes:
        raise ValueError(
            f"a batch of {n:,} cycles on a {rows}×{cols} array needs {offset / 2**20:.1f} MiB, over the "
            f"{max_bytes / 2**20:.0f} MiB limit: send a shorter window "
            f"(about {max(1, max_bytes // max(1, offset // n)):,} cycles)")
    if psum_scale is None:
        psum_scale = float(np.abs(trace.psum[a:b]).max()) if n else 0.0
    if stationary_scale is None:
        stationary_scale = float(np.abs(trace.stationary[a:b]).max()) if n else 0.0
    header = {
        "version": FORMAT_VERSION, "rows": rows, "cols": cols, "dataflow": trace.dataflow,
        "start": int(start), "n": int(n), "hist": int(hist), "total_cycles": int(total_cycles),
        "n_folds": int(len(trace.tiles)), "tiles": np.asarray(trace.tiles, np.int64).tolist(),
        "roles": dict(trace.roles), "psum_scale": float(psum_scale) or 1.0,
        "stationary_scale": float(stationary_scale) or 1.0, "follow": bool(follow),
        "planes": layout,
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(len(text) + 8) % 8)
    out = bytearray(MAGIC + struct.pack("<I", len(text)) + text)
    base = len(out)
    out.extend(bytes(offset))
    for name, arr in planes.items():
        off = base + layout[name]["offset"]
        out[off:off + arr.nbytes] = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
    return bytes(out)


def unpack_payload(payload: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, arrays) of a payload, with register planes expanded to (n, R, C) per cycle.

    The Python twin of the browser's decoder, for tests and debugging.
    """
    if not payload or payload[:4] != MAGIC:
        raise ValueError("not a PEArrayView payload (missing the CVPA magic)")
    (hlen,) = struct.unpack_from("<I", payload, 4)
    header = json.loads(payload[8:8 + hlen])
    base = 8 + hlen
    raw: dict[str, np.ndarray] = {}
    for name, spec in header["planes"].items():
        if "alias" in spec:
            continue
        dtype = np.dtype(_DTYPES[spec["dtype"]]).newbyteorder("<")
        count = int(np.prod(spec["shape"]))
        raw[name] = np.frombuffer(payload, dtype, count, base + spec["offset"]).reshape(spec["shape"])
    arrays = {k: v for k, v in raw.items() if "." not in k}
    for name in REGISTER_PLANES:
        if name not in header["planes"]:
            arrays[name] = raw[f"{name}.frames"][raw[f"{name}.index"]]
    for name in REGISTER_PLANES:
        if name in header["planes"]:
            arrays[name] = arrays[header["planes"][name]["alias"]]
    return header, arrays


def pe_operands(trace: Trace, cycle: int, i: int, j: int) -> dict[str, int | None]:
    """Which GEMM indices PE(i, j) works on at GEMM cycle `cycle`, derived as the browser's tooltip does.

    Returns {"m", "k", "n"}, plus "k_top" for os (the k of B's element from the top). The
    streamed index is that of the moving element now in the PE, which entered row i at cycle
    c − j (os: B's entered column j at c − i); -1 when no element is there, None when that
    cycle precedes the trace. Only MAC cycles compute C[m, n] += A[m, k]·B[k, n].
    """
    t = cycle - trace.start
    if not 0 <= t < trace.n_cycles:
        last = trace.start + trace.n_cycles - 1
        raise ValueError(f"cycle {cycle} is outside the trace (cycles {trace.start}..{last})")
    fold = int(trace.fold[t])
    r0, _, c0, _ = (int(v) for v in trace.tiles[fold])

    def entered(edge: np.ndarray, back: int, lane: int) -> int | None:
        tt = t - back
        if tt < 0:
            return None
        return int(edge[tt, lane]) if trace.fold[tt] == fold else -1

    streamed = entered(trace.left_in, j, i)
    if trace.dataflow == "ws":
        return {"m": streamed, "k": r0 + i, "n": c0 + j}
    if trace.dataflow == "is":
        return {"m": c0 + j, "k": r0 + i, "n": streamed}
    return {"m": r0 + i, "k": streamed, "n": c0 + j, "k_top": entered(trace.top_in, i, j)}


_CSS = """
:host { display: block; }
.cv-root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1a1a1a;
  font-size: 13px; width: 100%; box-sizing: border-box; }
.cv-caption { font-size: 14px; font-weight: 600; margin: 2px 0 4px 0; min-height: 18px; }
.cv-caption .cv-live { font-weight: 400; color: #333; font-variant-numeric: tabular-nums; }
.cv-bar { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; margin-bottom: 4px; }
.cv-bar button { font: inherit; padding: 2px 10px; border: 1px solid #888; border-radius: 4px;
  background: #f6f6f6; cursor: pointer; min-width: 34px; }
.cv-bar button:hover { background: #e8e8e8; }
.cv-bar button:focus-visible, .cv-canvas:focus-visible { outline: 2px solid #0072B2; outline-offset: 1px; }
.cv-bar label { display: flex; align-items: center; gap: 4px; }
.cv-bar input[type=range] { width: 110px; }
.cv-status { color: #333; font-variant-numeric: tabular-nums; }
.cv-wrap { position: relative; width: 100%; }
.cv-canvas { display: block; margin: 0 auto; cursor: crosshair; }
.cv-tip { position: absolute; pointer-events: none; background: rgba(255,255,255,0.97); border: 1px solid #555;
  border-radius: 4px; padding: 6px 8px; font-size: 12px; line-height: 1.35; box-shadow: 0 2px 6px rgba(0,0,0,.25);
  display: none; z-index: 10; width: max-content; max-width: 360px; white-space: normal; }
.cv-tip b { font-weight: 600; }
.cv-tip .cv-math { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
.cv-legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin-top: 4px; font-size: 12px; align-items: center; }
.cv-legend span.sw { display: inline-block; width: 13px; height: 13px; border: 1px solid #666;
  vertical-align: -2px; margin-right: 4px; }
.cv-edges { font-size: 12px; color: #333; margin-top: 2px; }
"""

_ESM = r"""
const PAL = __PALETTE__;
const CTOR = { u1: Uint8Array, i1: Int8Array, i2: Int16Array, i4: Int32Array, f4: Float32Array };
const REG = ["psum", "stationary", "from_left", "from_top"];
const STATUS_PART = /^\s*(fold\s+\d+\s+of\s+\d+|cycle\s+\d+\s+of\s+\d+|(折叠|周期)\s*\d+\s*\/\s*\d+)\s*$/i;
const DIM_DEFAULT = __DIMS__;
const STATE_KEYS = __STATE_KEYS__;
const STATE_RGB = PAL.states.map((h) => [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16)));

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
  return { h, arr, reg, R: h.rows, C: h.cols, end: h.start + h.n };
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
  const edges = el("div", "cv-edges");
  root.append(caption, bar, wrap, legend, edges);
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
  function layout() {
    const rows = R(), cols = C();
    const width = Math.max(160, root.clientWidth || host.clientWidth || 600);
    const big = Math.max(rows, cols) <= 24;
    const fixedH = model.height ? model.height - (root.offsetHeight - wrap.offsetHeight) : null;
    const availH = Math.max(200, fixedH || (window.innerHeight - 240));
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
      // filled when > 0 and hollow when < 0 (os keeps C there, already drawn as psum)
      if (data.h.dataflow !== "os" && g.statMark) {
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
      // moving operands: a triangle at the left of each PE holding one (and at the top for os)
      // (drawn as pre-rendered sprites: one path of thousands of triangles rasterises slowly)
      const ms = Math.max(2.5, Math.min(7, s * 0.2));
      const right = sprite("right", ms), down = data.h.dataflow === "os" ? sprite("down", ms) : null;
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
        const name = data.h.dataflow === "os" ? "psum" : "stationary";
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
    const roles = data ? data.h.roles : ({ ws: { rows: "K", cols: "N" }, is: { rows: "K", cols: "M" },
                                            os: { rows: "M", cols: "N" } })[model.dataflow] || { rows: "?", cols: "?" };
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
    const df = data.h.dataflow, streamed = data.h.roles.streamed.toLowerCase();
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
    for (let j = 0; j < cols; j++) {           // top edge: preload rows (ws/is) or B's elements (os)
      const v = hist("top_in", t, j, cols);
      if (v < 0) continue;
      const x = x0 + j * s;
      ctx.fillStyle = df === "os" ? PAL.moving : PAL.preload;
      ctx.fillRect(x + 1, ty, Math.max(2, s - 3), topH);
      if (g.text) {
        ctx.fillStyle = df === "os" ? "#fff" : PAL.ink;
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
      const r = data.h.roles, df = data.h.dataflow;
      const role = (name) => roleText(df, name, r[name]);
      let txt = T("edge_left", { what: role("left_in") });
      txt += df === "os" ? T("edge_top_os", { what: role("top_in") })
                         : T("edge_top", { top: role("top_in"), bottom: role("bottom_out") });
      if (geo && geo.corner) txt += df !== "os" ? T("corner_stationary", { what: r.stationary })
                                                 : T("corner_psum");
      else if (df !== "os" && geo && geo.statMark) {
        txt += T("corner_square", { what: r.stationary });
      }
      txt += T("hover_hint");
      edges.textContent = txt;
    } else edges.textContent = "";
  }

  // ---- tooltip -------------------------------------------------------------------
  function describe(i, j) {
    if (!data) return `<b>PE (${i}, ${j})</b><br>${T("tip_no_trace")}`;
    const t = cur - data.h.start, fold = foldAt(t), df = data.h.dataflow;
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
    let m, n, k, what = "";
    if (df === "ws") {
      k = r0 + i; n = c0 + j; m = eL;
      lines.push(`${ST} B[${k}, ${n}] = ${fmt(sv)}`);
      lines.push(`${MV} A[${m != null && m >= 0 ? m : "–"}, ${k}] = ${fmt(ml)}`);
      lines.push(`psum ${m != null && m >= 0 ? `C[${m}, ${n}] (k ≤ ${k})` : ""} = ${fmt(ps)}`);
    } else if (df === "is") {
      k = r0 + i; m = c0 + j; n = eL;
      lines.push(`${ST} A[${m}, ${k}] = ${fmt(sv)}`);
      lines.push(`${MV} B[${k}, ${n != null && n >= 0 ? n : "–"}] = ${fmt(ml)}`);
      lines.push(`psum ${n != null && n >= 0 ? `C[${m}, ${n}] (k ≤ ${k})` : ""} = ${fmt(ps)}`);
    } else {
      m = r0 + i; n = c0 + j; k = eL;
      lines.push(`${ST} C[${m}, ${n}] = ${fmt(ps)}`);
      lines.push(`${MV} A[${m}, ${k != null && k >= 0 ? k : "–"}] = ${fmt(ml)} ${T("tip_from_left")}`);
      lines.push(`${MV} B[${eT != null && eT >= 0 ? eT : "–"}, ${n}] = ${fmt(mt)} ${T("tip_from_top")}`);
    }
    if (!mapped) what = T("tip_unmapped");
    else if (state === 1) {
      const mm = df === "is" ? m : (df === "ws" ? eL : m), nn = df === "is" ? eL : n, kk = df === "os" ? eL : k;
      if (eL == null) what = T("tip_unknown");
      else what = `<span class="cv-math">C[${mm}, ${nn}] += A[${mm}, ${kk}] · B[${kk}, ${nn}]</span>`;
    } else if (state === 2) {
      const kk = eT;
      const elem = kk == null || kk < 0 ? "" : (df === "ws" ? ` B[${kk}, ${n}]` : ` A[${m}, ${kk}]`);
      what = T("tip_preload", { elem: elem });
    } else if (state === 3) what = T("tip_stall");
    else what = T("tip_idle");
    lines.push(what);
    return lines.join("<br>");
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
  canvas.addEventListener("keydown", (ev) => {
    if (ev.key === " ") { model.playing = !model.playing; ev.preventDefault(); }
    else if (ev.key === "ArrowRight") { step(1); ev.preventDefault(); }
    else if (ev.key === "ArrowLeft") { step(-1); ev.preventDefault(); }
  });
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
  model.on(["rows", "cols", "dataflow"], () => { resize(); schedule(); });

  const ro = new ResizeObserver(() => { resize(); draw(); });
  ro.observe(root);
  const onWin = () => { resize(); schedule(); };
  window.addEventListener("resize", onWin);
  model.on("remove", () => {
    ro.disconnect(); window.removeEventListener("resize", onWin);
    if (rafId != null) cancelAnimationFrame(rafId);
    rafId = null;
  });

  loadFrames();
  return root;
}
"""


def _render_esm_source() -> str:
    pal = {
        "states": list(palette.STATE_COLORS), "labels": list(palette.STATE_LABELS), "ink": palette.INK,
        "moving": palette.MOVING, "output": palette.OUTPUT, "preload": palette.PRELOAD,
        "stationary": palette.STATIONARY,
        "highlight": palette.HIGHLIGHT, "selected": palette.SELECTED,
    }
    return (_ESM.replace("__PALETTE__", json.dumps(pal)).replace("__DIMS__", json.dumps(DIMENSION_LABELS))
            .replace("__STATE_KEYS__", json.dumps(list(STATE_KEYS))))


class PEList(param.List):
    """A list of (row, col) pairs of whole numbers."""

    def _validate(self, val):
        super()._validate(val)
        for p in val or []:
            if len(p) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
                                      for v in p):
                raise ValueError(f"{self.name} entries must be (row, col) pairs of whole numbers >= 0, got {p!r}")


class PEArrayView(JSComponent):
    """An R×C systolic array replaying a recorded trace in the browser, cycle by cycle.

    Load a trace with :meth:`load_trace`; the view sends one window ("batch") of cycles and the
    browser animates it at ``fps`` cycles per second while ``playing``. ``cycle`` is the GEMM
    cycle shown (0-based; the page shows it 1-based as "cycle X of Y"). ``at_end`` is True while
    the batch's last cycle is shown; with ``auto_advance`` the view then sends the next window
    of the held trace by itself, otherwise the app answers with another ``load_trace``.
    """

    rows = param.Integer(default=8, bounds=(1, 512), doc="PE rows of the array.")
    cols = param.Integer(default=8, bounds=(1, 512), doc="PE columns of the array.")
    dataflow = param.Selector(default="ws", objects=["ws", "is", "os"], doc="Dataflow of the loaded trace.")
    frames = param.Bytes(default=None, doc="Packed batch of cycles (see module docstring); set by load_trace.")
    start_cycle = param.Integer(default=0, bounds=(0, None), doc="First GEMM cycle in the batch.")
    n_cycles = param.Integer(default=0, bounds=(0, None), doc="Cycles in the batch.")
    total_cycles = param.Integer(default=0, bounds=(0, None), doc="Cycles of the whole GEMM.")
    cycle = param.Integer(default=0, bounds=(0, None), doc="GEMM cycle shown (0-based).")
    playing = param.Boolean(default=False, doc="Whether the browser is animating.")
    fps = param.Integer(default=8, bounds=(1, 60), doc="Cycles shown per second while playing.")
    caption = param.String(default="", doc="Title line; the view appends the live fold and cycle.")
    labels = param.Dict(default={}, doc="Meaning of GEMM dimensions for axis titles, e.g. {'K': 'input features'}.")
    selected_pe = param.Tuple(default=None, length=2, allow_None=True, doc="(row, col) of the PE last clicked.")
    highlight = PEList(default=[], item_type=tuple, doc="(row, col) PEs to outline.")
    at_end = param.Boolean(default=False, doc="True while the last cycle of the batch is shown.")
    show_controls = param.Boolean(default=True, doc="Show the play / step / speed bar.")
    auto_advance = param.Boolean(default=True, doc="Send the held trace's next window when a batch ends.")
    batch_bytes = param.Integer(default=DEFAULT_BATCH_BYTES, bounds=(4096, MAX_BATCH_BYTES),
                                doc="Payload size a default window aims at.")
    texts = param.Dict(default=pe_texts("en"), doc="The view's words (i18n 'pe.*' keys without the prefix); "
                                                  "pe_texts(lang) gives them in a language.")

    _esm = _render_esm_source()
    _stylesheets = [_CSS]
    _property_mapping = {"auto_advance": None, "batch_bytes": None}

    def __init__(self, **params):
        params.setdefault("sizing_mode", "stretch_width")
        params.setdefault("min_height", 300)
        super().__init__(**params)
        self._trace: Trace | None = None
        self._scale: tuple[Trace | None, tuple[float, float]] = (None, (1.0, 1.0))
        self._window = 0

    # ---- loading -------------------------------------------------------------------
    @property
    def trace(self) -> Trace | None:
        """The trace the view holds (the last one given to load_trace)."""
        return self._trace

    @property
    def batch_stop(self) -> int:
        """One past the batch's last cycle."""
        return self.start_cycle + self.n_cycles

    def load_trace(self, trace: Trace, start: int | None = None, stop: int | None = None, *,
                   labels: dict[str, str] | None = None, total_cycles: int | None = None,
                   cycle: int | None = None, caption: str | None = None, _follow: bool = False,
                   _internal: bool = False) -> None:
        """Send cycles [start, stop) of `trace` (GEMM cycle numbers) to the browser.

        start defaults to the trace's first cycle, stop to a window of about `batch_bytes`
        (at most 600 cycles); the view shows `cycle` if given and inside the window, else
        start. total_cycles defaults to the trace's end (pass it when the trace covers only
        part of the GEMM). labels say what the GEMM dimensions mean, e.g. {"M": "batch",
        "K": "input features", "N": "output features"}.
        """
        if not isinstance(trace, Trace):
            raise ValueError(f"load_trace needs a chipviz.chip.trace.Trace, got {type(trace).__name__}")
        if trace.n_cycles == 0:
            raise ValueError("the trace is empty: run gemm(..., engine='cycle', trace_window=(start, stop))")
        lo, hi = trace.start, trace.start + trace.n_cycles
        rows, cols = int(trace.state.shape[1]), int(trace.state.shape[2])
        start = lo if start is None else _whole(start, "start", allow_negative=True)
        if not lo <= start < hi:
            raise ValueError(f"start={start} is outside the trace, which holds cycles {lo}..{hi - 1}")
        if stop is None:
            nominal = default_batch_cycles(rows, cols, trace.dataflow, self.batch_bytes)
            stop = min(hi, start + nominal)
        else:
            stop = _whole(stop, "stop", allow_negative=True)
            nominal = stop - start
        if not start < stop <= hi:
            raise ValueError(f"stop={stop} must satisfy start < stop <= {hi} (start={start}; the trace holds "
                             f"cycles {lo}..{hi - 1})")
        total = hi if total_cycles is None else _whole(total_cycles, "total_cycles")
        if total < hi:
            raise ValueError(f"total_cycles={total} is shorter than the trace, which reaches cycle {hi - 1}")
        if labels is not None:
            if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                       for k, v in labels.items()):
                raise ValueError("labels must map dimension letters to descriptions, e.g. {'K': 'input features'}")
            unknown = set(labels) - set("MKN")
            if unknown:
                raise ValueError(f"labels keys must be among M, K, N; got {sorted(unknown)}")
        if self._scale[0] is not trace:  # drawn sizes are relative to the whole trace, not to one batch
            self._scale = (trace, (float(np.abs(trace.psum).max()), float(np.abs(trace.stationary).max())))
        payload = pack_window(trace, start, stop, total_cycles=total, psum_scale=self._scale[1][0],
                              stationary_scale=self._scale[1][1], follow=_follow)
        show = cycle if cycle is not None and start <= cycle < stop else start
        self._trace = trace
        if not _internal:  # the window length later seeks and hand-overs reuse
            self._window = max(1, nominal)
        update: dict[str, Any] = dict(rows=rows, cols=cols, dataflow=trace.dataflow, frames=payload,
                                      start_cycle=start, n_cycles=stop - start, total_cycles=total, cycle=show,
                                      at_end=show == stop - 1)
        if labels is not None:
            update["labels"] = dict(labels)
        if caption is not None:
            update["caption"] = caption
        if self.selected_pe is not None and not (self.selected_pe[0] < rows and self.selected_pe[1] < cols):
            update["selected_pe"] = None
        self.param.update(**update)

    # ---- navigation ------------------------------------------------------------------
    def _require_trace(self) -> Trace:
        if self._trace is None:
            raise ValueError("no trace loaded: call load_trace(trace) first")
        return self._trace

    def seek(self, cycle: int) -> int:
        """Show GEMM cycle `cycle`, sending a new window of the held trace if the batch lacks it."""
        trace = self._require_trace()
        cycle = _whole(cycle, "cycle", allow_negative=True)
        lo, hi = trace.start, trace.start + trace.n_cycles
        if not lo <= cycle < hi:
            raise ValueError(f"cycle {cycle} is outside the loaded trace, which holds cycles {lo}..{hi - 1}")
        if self.start_cycle <= cycle < self.batch_stop:
            self.cycle = cycle
        else:
            length = max(self._window, 1)
            # forward: the window starts at cycle; backward: it ends just after cycle, so stepping
            # back keeps finding earlier cycles without the shown one being the batch's last
            start = cycle if cycle >= self.batch_stop else max(lo, min(cycle, cycle - length + 2))
            self.load_trace(trace, start, min(hi, max(start + length, cycle + 1)), total_cycles=self.total_cycles,
                            cycle=cycle, _internal=True)
        return self.cycle

    def step(self, n: int = 1) -> int:
        """Move n cycles (negative: back), staying inside the held trace; return the cycle shown."""
        trace = self._require_trace()
        n = _whole(n, "n", allow_negative=True)
        lo, hi = trace.start, trace.start + trace.n_cycles
        return self.seek(min(max(self.cycle + n, lo), hi - 1))

    def next_fold(self) -> int:
        """Jump to the first cycle of the next fold (or the trace's last cycle); return the cycle shown."""
        trace = self._require_trace()
        t = self.cycle - trace.start
        later = np.flatnonzero(trace.fold[t:] != trace.fold[t])
        target = self.cycle + int(later[0]) if later.size else trace.start + trace.n_cycles - 1
        return self.seek(target)

    def prev_fold(self) -> int:
        """Jump to the first cycle of this fold, or of the previous fold if already there."""
        trace = self._require_trace()
        t = self.cycle - trace.start
        first = _run_start(trace.fold, t)
        if first == t and t > 0:
            first = _run_start(trace.fold, t - 1)
        return self.seek(trace.start + first)

    def fold_of(self, cycle: int | None = None) -> int:
        """Fold index (0-based) of `cycle` (default: the cycle shown)."""
        trace = self._require_trace()
        c = self.cycle if cycle is None else cycle
        if not trace.start <= c < trace.start + trace.n_cycles:
            raise ValueError(f"cycle {c} is outside the loaded trace")
        return int(trace.fold[c - trace.start])

    # ---- reactions ---------------------------------------------------------------------
    @param.depends("cycle", watch=True)
    def _on_cycle(self):
        if self.n_cycles == 0:
            return
        inside = self.start_cycle <= self.cycle < self.batch_stop
        if inside:
            self.at_end = self.cycle == self.batch_stop - 1
            if not self.at_end and self.playing and self.cycle >= self.start_cycle + self.n_cycles // 2:
                self._advance()  # past half the batch while playing: send the next window early
            return
        trace = self._trace  # the browser asked for a cycle outside the batch
        if trace is not None and trace.start <= self.cycle < trace.start + trace.n_cycles:
            self.seek(self.cycle)
        else:
            self.cycle = min(max(self.cycle, self.start_cycle), self.batch_stop - 1)

    def _advance(self) -> bool:
        """With auto_advance, send the held trace's next window, starting at the cycle shown."""
        trace = self._trace
        if not self.auto_advance or trace is None:
            return False
        hi = trace.start + trace.n_cycles
        if self.batch_stop >= hi:
            return False
        start = self.cycle  # the shown cycle stays inside the new batch, so playback runs on
        self.load_trace(trace, start, min(hi, start + max(self._window, 2)), total_cycles=self.total_cycles,
                        cycle=start, _follow=True, _internal=True)
        return True

    @param.depends("at_end", watch=True)
    def _on_at_end(self):
        if self.at_end and not self._advance() and self.batch_stop >= self.total_cycles:
            self.playing = False

    def _handle_msg(self, data: Any) -> None:
        if isinstance(data, dict) and data.get("action") == "next_fold" and self._trace is not None:
            self.next_fold()

    def _process_property_change(self, props: dict[str, Any]) -> dict[str, Any]:
        props = super()._process_property_change(props)
        if "selected_pe" in props and props["selected_pe"] is not None:
            props["selected_pe"] = tuple(int(v) for v in props["selected_pe"])
        if "highlight" in props:
            props["highlight"] = [tuple(int(v) for v in p) for p in props["highlight"]]
        return props



def _run_start(fold: np.ndarray, t: int) -> int:
    """Index of the first cycle of the run of equal fold numbers that contains index t."""
    earlier = np.flatnonzero(fold[:t] != fold[t])
    return int(earlier[-1]) + 1 if earlier.size else 0


def _whole(value, name: str, allow_negative: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not allow_negative and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


__all__ = ["PEArrayView", "pack_window", "unpack_payload", "pe_operands", "default_batch_cycles", "bytes_per_cycle",
           "strip_status"]
