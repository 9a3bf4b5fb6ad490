"""Links open the dashboard in their state: many tabs at once on one server, in real Chromium.

A link such as ``/app?dataset=spiral&hidden=2&w1=16&w2=16&act=tanh`` must open the page in
exactly that state, and keep it after "One step":

- every control in the sidebar *shows* the link's value (read from the DOM: the option shown
  by a <select>, a slider's value text, a number box, the active button of a button group);
  controls the link hides are hidden and those it locks are disabled (hidden means hidden by
  the app: a collapsed sidebar hides no control in particular);
- the PE array has the link's size (the canvas's ``data-rows``/``data-cols``) and animates a GEMM
  of the link's network: the GEMM chooser names its shape (batch×2 · 2×16 for spiral with
  w1=16), the caption its layer, and its fold count (the array's "fold i of N" and the line
  above it, ``.chipviz-op-info``) is SCALE-Sim's: ws spreads K over the rows and N over the
  columns, os M and N, is K and M; folds = ceil(a/rows)·ceil(b/cols);
- the network card names the layer sizes (``.chipviz-network-shape``: "2 → 16 → 16 → 2") and the
  network drawing titles its layers so ("input · 2", "hidden 1 · 16", …);
- the URL is rewritten to the page's whole state: every setting, op, fps and lang, with the
  link's values, and only known keys; an unknown key (``hidden_layers``) is a notice on the page
  and is gone from the URL;
- a Chinese link says all of this in Chinese (the expected words come from chipviz.i18n.t).

The expected state is computed from the link alone (the GEMM and fold arithmetic below,
checked against the simulator by the first test); a lesson link takes the settings of its
lesson step from the lesson files (chipviz.lessons). The readers are small JavaScript functions,
one per widget type (READ_JS), tested on a page of plain Panel widgets before they are trusted
with the dashboard. A tab is waited for until it shows its whole expected state
(``page.wait_for_function``, generous timeouts, no fixed sleeps), then read once more to see
that it stays; a tab that does not get there is reported with every difference, read at the
deadline. Screenshots (1280×720) and the time each tab took go to test-artifacts/links-*.
"""
from __future__ import annotations

import math
import re
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from chipviz import lessons as L
from chipviz import settings as chipviz_settings
from chipviz.i18n import STRINGS, t
from chipviz.session import TrainingSession
from chipviz.settings import KEYS
from pages import WAIT, without_client_gone  # tests/browser/pages.py

APP = Path(__file__).resolve().parents[2] / "app.py"

TABS_TIMEOUT_S = 180.0  # a batch of tabs opened together reaches its state within this (busy 2-core CI)
LOAD_TIMEOUT_S = 300.0  # ten tabs at once: each reaches its state within this from its opening
LAST_LOOK_S = 5.0  # a tab checked after the deadline still gets this long (it has had the whole time)
POLL_MS = 400
VIEWPORT = {"width": 1280, "height": 720}

VIEW_KEYS = ("op", "fps", "lang")
LESSON_KEYS = ("lesson", "step", "hide", "lock")
KNOWN_KEYS = tuple(KEYS) + VIEW_KEYS + LESSON_KEYS
DEFAULTS = {name: TrainingSession.param[name].default for name in KEYS.values()}


def _default_fps() -> int:
    """The animation's default pace, where the table of settings states it (8 before there was one)."""
    by_key = getattr(chipviz_settings, "BY_KEY", {})
    return by_key["fps"].default if "fps" in by_key else 8


DEFAULT_FPS = _default_fps()
IO_SIZES = {"digits": (64, 10)}  # inputs and classes; the 2-D toy sets have (2, 2)
# each GEMM of a layer: (phase, the caption's direction word, name)
GEMM_KINDS = {"forward": ("forward", "forward", "Y = X·W"),
              "dX": ("backward_data", "backward", "dX = dZ·Wᵀ"),
              "dW": ("backward_weights", "backward", "dW = Xᵀ·dZ")}
# A known Panel problem (holoviz/panel#7073, see test_sessions_browser.py): with several sessions
# busy at once a page may get stylesheet links to Panel's CDN, which this offline machine cannot load.
KNOWN_CONSOLE_NOISE = ("cdn.holoviz.org",)


# ======================================================================================
# The links
# ======================================================================================

@dataclass(frozen=True)
class Link:
    name: str
    query: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, name: str, text: str) -> "Link":
        return cls(name, tuple(parse_qsl(text, keep_blank_values=True)))

    def url(self, base: str) -> str:
        return f"{base}?{urlencode(self.query, safe=',')}"


# Every network, training, chip, run and view key is set by some link, away from its default;
# lessons in both languages with hide and lock; unknown keys.
PLAIN = [
    # the bug report's link, with the unknown key it came with
    Link.of("spiral-bug-report", "dataset=spiral&hidden=2&w1=16&w2=16&act=tanh&hidden_layers=2"),
    # 3 hidden layers, os, the second layer's forward GEMM (op=2)
    Link.of("digits-3-layers-os", "dataset=digits&hidden=3&w1=48&w2=24&w3=12&act=sigmoid&opt=sgd&lr=0.05"
                                  "&batch=20&rows=12&cols=6&dataflow=os&op=2"),
    # 4 hidden layers, is, every chip number, the third layer's forward GEMM (op=4), speed, fps
    Link.of("xor-4-layers-is", "dataset=xor&hidden=4&w1=5&w2=6&w3=7&w4=9&act=linear&opt=momentum&lr=0.2"
                               "&batch=10&seed=7&noise=0.15&rows=4&cols=3&dataflow=is&clock=350&sram=64&bw=8"
                               "&speed=5&fps=24&op=4"),
    # Chinese, int8
    Link.of("moons-int8-zh", "dataset=moons&w1=24&precision=int8&batch=48&lr=0.003&noise=0.05&rows=16&cols=16"
                             "&lang=zh"),
    # Chinese, no hidden layer, fractional chip numbers, an unknown key
    Link.of("gauss-no-hidden-zh", "dataset=gauss&hidden=0&batch=8&rows=2&cols=2&dataflow=os&opt=sgd&seed=3"
                                  "&clock=1200.5&sram=32.5&bw=0.5&lang=zh&colour=red"),
    # a wide array, int8, the fastest paces
    Link.of("circle-wide-array", "dataset=circle&hidden=2&w1=100&w2=3&act=sigmoid&batch=64&precision=int8"
                                 "&rows=32&cols=64&dataflow=ws&speed=150&fps=60"),
]
LESSONS = [
    Link.of("lesson3-teacher-zh", "lesson=3&step=2&lang=zh&hide=lr,batch&lock=rows,cols"),  # os
    Link.of("lesson4-en", "lesson=4&step=2&lang=en&hide=opt&lock=w1"),  # 24 folds
    Link.of("lesson6-en-dW", "lesson=6&step=1&lang=en&hide=act,seed&lock=batch"),  # a backward GEMM
    Link.of("lesson2-zh", "lesson=2&step=3&lang=zh&hide=seed&lock=dataflow"),  # the second layer
]
MATRIX_BATCHES = [PLAIN[:4] + LESSONS[:1], PLAIN[4:] + LESSONS[1:3]]  # opened 5, then 4, at a time
LOAD_LINKS = PLAIN + LESSONS  # ten different links at once


# ======================================================================================
# What a link means: the expected state, from the link alone
# ======================================================================================

def layer_sizes(settings: dict) -> list[int]:
    n_in, n_out = IO_SIZES.get(settings["dataset"], (2, 2))
    return [n_in, *(settings[f"width{i}"] for i in range(1, settings["hidden_layers"] + 1)), n_out]


def gemm_shape(sizes: list[int], batch: int, layer: int, kind: str) -> tuple[int, int, int]:
    """(M, K, N) of C = A·B for layer `layer`'s forward Y = X·W, dX = dZ·Wᵀ or dW = Xᵀ·dZ."""
    fan_in, fan_out = sizes[layer - 1], sizes[layer]
    return {"forward": (batch, fan_in, fan_out), "dX": (batch, fan_out, fan_in),
            "dW": (fan_in, batch, fan_out)}[kind]


def folds(m: int, k: int, n: int, rows: int, cols: int, dataflow: str) -> int:
    """SCALE-Sim folding: ws spreads K over the rows and N over the columns, os M and N, is K and M."""
    over_rows, over_cols = {"ws": (k, n), "os": (m, n), "is": (k, m)}[dataflow]
    return math.ceil(over_rows / rows) * math.ceil(over_cols / cols)


def op_index(n_layers: int, layer: int, kind: str) -> int:
    """A GEMM's index among a training step's operations (the URL's op): per layer its forward GEMM
    and its vector op, the loss, then from the last layer down dW, db, dX (not for layer 1) and the
    activation's derivative."""
    if kind == "forward":
        return 2 * (layer - 1)
    base = 2 * n_layers + 1 + 4 * (n_layers - layer)
    return base if kind == "dW" else base + 2


def _convert(name: str, raw: str):
    default = DEFAULTS[name]
    if isinstance(default, bool):
        return raw.lower() in ("1", "true", "yes")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def _keys(raw: str | None) -> set[str]:
    return {k.strip() for k in (raw or "").split(",") if k.strip()}


@dataclass
class Expected:
    link: Link
    lang: str
    settings: dict  # session parameter -> value
    layer: int  # the GEMM shown: its layer,
    kind: str  # forward, dX or dW,
    op: int | None  # and its index, when the link gives it
    fps: int
    hidden: set = field(default_factory=set)  # URL keys of the controls not shown
    locked: set = field(default_factory=set)
    notices: list = field(default_factory=list)

    @property
    def sizes(self) -> list[int]:
        return layer_sizes(self.settings)

    @property
    def shape(self) -> tuple[int, int, int]:
        return gemm_shape(self.sizes, self.settings["batch_size"], self.layer, self.kind)

    @property
    def folds(self) -> int:
        s = self.settings
        return folds(*self.shape, s["rows"], s["cols"], s["dataflow"])


def expected(link: Link) -> Expected:
    query = dict(link.query)
    lang = query.get("lang", "en")
    unknown_key = next(k for k in ("url.unknown_key", "dash.unknown_setting") if k in STRINGS)
    notices = [t(unknown_key, lang, key=k) for k in query if k not in KNOWN_KEYS]
    if "lesson" in query:
        lesson = next(x for x in L.load_lessons(lang) if x.number == int(query["lesson"]))
        step = lesson.steps[int(query.get("step", 1)) - 1]
        settings = dict(step.settings)
        ref = re.fullmatch(r"L(\d)\.(forward|dX|dW)", step.view.op or "L1.forward")
        layer, kind, op = int(ref[1]), ref[2], None
        hidden = set(lesson.hide) | set(step.hide) | _keys(query.get("hide"))
        locked = set(lesson.lock) | set(step.lock) | _keys(query.get("lock"))
    else:
        settings = dict(DEFAULTS)
        settings.update({KEYS[k]: _convert(KEYS[k], v) for k, v in query.items() if k in KEYS})
        op = int(query.get("op", 0))
        assert op % 2 == 0 and op < 2 * (settings["hidden_layers"] + 1), "these links show a forward GEMM"
        layer, kind = op // 2 + 1, "forward"
        hidden, locked = set(), set()
    hidden |= {f"w{i}" for i in range(settings["hidden_layers"] + 1, 5)}
    if settings["dataset"] == "digits":
        hidden.add("noise")  # the noise of the 2-D toy sets
    return Expected(link, lang, settings, layer, kind, op, int(query.get("fps", DEFAULT_FPS)), hidden, locked,
                    notices)


# ======================================================================================
# Reading the page: a small reader per widget type, and a checker
# ======================================================================================

READ_JS = r"""
(spec) => {
  const norm = (s) => String(s ?? '').replace(/\s+/g, ' ').trim();
  function* walk(root) {  // every element under root, inside open shadow roots too
    if (root.shadowRoot) yield* walk(root.shadowRoot);
    for (const el of root.querySelectorAll('*')) {
      yield el;
      if (el.shadowRoot) yield* walk(el.shadowRoot);
    }
  }
  const up = (el) => el.parentElement || (el.parentNode && el.parentNode.host) || null;
  function shown(el, root) {  // not hidden by itself or a container inside root (root may be collapsed)
    if (!el || !el.isConnected) return false;
    for (let e = el; e && e !== root; e = up(e)) {
      const cs = getComputedStyle(e);
      if (cs.display === 'none' || cs.visibility === 'hidden') return false;
    }
    return true;
  }
  function ctext(node) {  // the text rendered, shadow roots included
    if (node.nodeType === 3) return node.data;
    if (node.nodeType === 1 && ['STYLE', 'SCRIPT', 'TEMPLATE'].includes(node.tagName)) return '';
    if (node.nodeType !== 1 && node.nodeType !== 11) return '';
    let s = node.shadowRoot ? ctext(node.shadowRoot) : '';
    for (const c of node.childNodes) s += ' ' + ctext(c);
    return s;
  }
  const own = (el) => [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.data).join('');
  const scopes = {};
  let root = null;  // the scope of the probe being read
  const elements = (sel) => scopes[sel] ??= (() => {
    const r = document.querySelector(sel);
    return r ? [...walk(r)] : [];
  })();
  function pick(cands, read) {  // the first shown candidate (else the first), read
    if (!cands.length) return {found: 0, visible: false};
    const vis = cands.filter(el => shown(el, root));
    return Object.assign({found: cands.length, visible: vis.length > 0}, read(vis[0] || cands[0]));
  }
  function labelled(els, label, sel) {  // Bokeh inputs: a <label> and the input in one .bk-input-group
    const out = [];
    for (const l of els) {
      if (l.tagName !== 'LABEL' || norm(ctext(l)) !== label) continue;
      const w = l.closest('.bk-input-group')?.querySelector(sel);
      if (w) out.push(w);
    }
    return out;
  }
  const readers = {
    // <select> (by its label, or by its options all matching a pattern): the text of the option shown
    select: (p, els) => {
      const re = p.pattern && new RegExp('^' + p.pattern + '$');
      const cands = p.label !== undefined ? labelled(els, p.label, 'select') : els.filter(
        e => e.tagName === 'SELECT' && e.options.length && [...e.options].every(o => re.test(norm(o.text))));
      return pick(cands, s => ({
        disabled: s.disabled, value: s.selectedIndex >= 0 ? norm(s.options[s.selectedIndex].text) : null}));
    },
    // number box (IntInput, FloatInput): the text in the box
    spinner: (p, els) => pick(labelled(els, p.label, 'input'), i => ({disabled: i.disabled, value: norm(i.value)})),
    // slider: its title reads "label: value"; the value is the title's value text
    slider: (p, els) => pick(
      els.filter(e => e.classList.contains('bk-slider-title') && norm(ctext(e)).startsWith(p.label + ':'))
        .map(e => e.closest('.bk-input-group')).filter(Boolean),
      g => {
        const target = g.querySelector('.noUi-target'), handle = g.querySelector('.noUi-handle');
        return {disabled: !!(target?.hasAttribute('disabled') || handle?.hasAttribute('disabled')),
                value: norm(g.querySelector('.bk-slider-value')?.textContent)};
      }),
    // editable slider (EditableIntSlider): "label:", a number box beside it, a slider below
    editable: (p, els) => {
      const boxes = [];
      for (const l of els) {
        if (l.childElementCount !== 0 || norm(l.textContent) !== p.label) continue;
        let e = l;
        for (let i = 0; i < 8 && e; i++, e = up(e)) {
          const box = [...walk(e)].find(x => x.matches('input.bk-input'));
          if (box) { boxes.push(box); break; }
        }
      }
      return pick(boxes, i => ({disabled: i.disabled, value: norm(i.value)}));
    },
    // button group (RadioButtonGroup), known by its buttons' labels: the active one
    radio: (p, els) => {
      const want = [...p.options].sort().join('\n');
      const buttons = (g) => [...g.querySelectorAll('button')];
      const labels = (g) => buttons(g).map(b => norm(b.textContent)).sort().join('\n');
      return pick(els.filter(e => e.classList.contains('bk-btn-group') && labels(e) === want),
                  g => ({disabled: buttons(g).every(b => b.disabled),
                         value: buttons(g).filter(b => b.classList.contains('bk-active'))
                                  .map(b => norm(b.textContent)).join(' | ')}));
    },
    // any element by CSS selector: its rendered text
    text: (p, els) => pick(els.filter(e => e.matches(p.selector)), e => ({value: norm(ctext(e))})),
    // the element whose own text matches a pattern (the status line, "α = …")
    own: (p, els) => {
      const re = new RegExp(p.pattern);
      return pick(els.filter(e => re.test(norm(own(e)))), e => ({value: norm(own(e))}));
    },
    // a drawing's words (a Bokeh canvas has no DOM text): the `text` column of the first
    // ColumnDataSource in the page's Bokeh documents whose every text matches the pattern
    drawn_texts: (p) => {
      const re = new RegExp('^' + p.pattern + '$'), found = [];
      for (const doc of (window.Bokeh?.documents || []))
        for (const m of doc.all_models) {
          const text = m.type === 'ColumnDataSource' ? m.data?.text : null;
          if (text?.length && Array.from(text).every(x => re.test(norm(x)))) found.push(Array.from(text, norm));
        }
      return found.length ? {found: found.length, visible: true, value: found[0]} : {found: 0, visible: false};
    },
    // the PE array: its size as its canvas publishes it, and its animation's speed
    canvas: (p, els) => pick(els.filter(e => e.matches('canvas.cv-canvas')),
                             c => ({value: c.dataset.rows ? `${c.dataset.rows}×${c.dataset.cols}` : null})),
    fps: (p, els) => pick(els.filter(e => e.matches('.cv-speed input')), i => ({value: i.value})),
    url: () => ({found: 1, visible: true, value: [...new URLSearchParams(location.search)]}),
  };

  const num = (v) => parseFloat(String(v).replace(/[,\s]/g, ''));
  const listed = (v) => String(v).split(',').map(s => s.trim()).filter(Boolean).sort().join(',');
  const json = JSON.stringify;
  function same(key, have, want) {
    if (key === 'hide' || key === 'lock') return listed(have) === listed(want);
    const b = Number(want);
    if (String(want).trim() !== '' && !isNaN(b)) return Math.abs(Number(have) - b) <= 1e-9 + 1e-6 * Math.abs(b);
    return have === want;
  }
  function check(p, got) {
    const e = p.expect || {}, bad = [], v = got.value;
    const say = (what) => bad.push(`${p.id}: ${what}`);
    if (e.visible === false) {
      if (got.visible) say(`should be hidden, is shown (showing ${json(v)})`);
      return bad;
    }
    if (!got.found) {
      say(`not on the page (${p.kind} ${json(p.label ?? p.selector ?? p.options ?? p.pattern ?? '')})`);
      return bad;
    }
    if (e.visible === true && !got.visible) say(`is hidden, should be shown (it holds ${json(v)})`);
    if (e.disabled !== undefined && !!got.disabled !== e.disabled)
      say(e.disabled ? 'should be locked (disabled), is not' : 'is disabled, should not be');
    if (e.text !== undefined && v !== e.text) say(`shows ${json(v)}, the link means ${json(e.text)}`);
    if (e.num !== undefined && !(Math.abs(num(v) - e.num) <= (e.tol ?? 1e-9 + 1e-6 * Math.abs(e.num))))
      say(`shows ${json(v)}, the link means ${e.num}`);
    if (e.one_of !== undefined && !e.one_of.some(a => Math.abs((a.log ? Math.log10(num(v)) : num(v)) - a.num) <= a.tol))
      say(`shows ${json(v)}, the link means ${e.means}`);
    if (e.list !== undefined && json(v) !== json(e.list)) say(`shows ${json(v)}, the link means ${json(e.list)}`);
    for (const s of e.contains || []) if (!String(v).includes(s)) say(`does not say ${json(s)} (it says ${json(v)})`);
    if (e.regex !== undefined) {
      const m = new RegExp(e.regex).exec(String(v ?? ''));
      if (!m) say(`${json(v)} does not read as ${json(e.template)}`);
      for (const [g, want] of Object.entries(m ? e.groups || {} : {})) {
        const have = m.groups?.[g], where = `(in ${json(v)})`;
        if (typeof want !== 'object') {
          if (norm(have) !== norm(want)) say(`${g} is ${json(have)}, expected ${json(want)} ${where}`);
        } else if (want.min !== undefined && !(num(have) >= want.min)) {
          say(`${g} is ${have}, expected at least ${want.min} ${where}`);
        } else if (want.eq !== undefined && num(have) !== want.eq) {
          say(`${g} is ${have}, expected ${want.eq} ${where}`);
        }
      }
    }
    if (e.url) {
      const q = Object.fromEntries(v), unknown = v.map(([k]) => k).filter(k => !e.url.known.includes(k));
      if (unknown.length) say(`keeps unknown key(s) ${unknown.join(', ')}: ${location.search}`);
      for (const k of e.url.required) if (!(k in q)) say(`has no ${k} (not rewritten?): ${location.search}`);
      for (const [k, want] of Object.entries(e.url.equal))
        if (k in q && !same(k, q[k], want)) say(`says ${k}=${q[k]}, the link means ${k}=${want}`);
    }
    return bad;
  }
  const obs = {}, bad = [];
  for (const p of spec) {
    const page_wide = p.kind === 'url' || p.kind === 'drawn_texts';
    root = document.querySelector(p.scope || 'body');
    const got = readers[p.kind](p, page_wide ? [] : elements(p.scope || 'body'));
    obs[p.id] = got;
    bad.push(...check(p, got));
  }
  return {obs, bad};
}
"""


def read(page, probes: list[dict]) -> dict:
    """{probe id: what the page shows} (found, visible, disabled, value)."""
    return page.evaluate(f"spec => ({READ_JS})(spec).obs", probes)


def differences(page, probes: list[dict]) -> list[str]:
    """What the page shows that its probes do not expect, now."""
    return page.evaluate(f"spec => ({READ_JS})(spec).bad", probes)


def wait_for_state(page, probes: list[dict], deadline: float) -> list[str]:
    """Wait until the page shows every probe's expected state: [] then, else what differs at the deadline."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    timeout = max(deadline - time.monotonic(), LAST_LOOK_S)
    try:
        page.wait_for_function(f"spec => ({READ_JS})(spec).bad.length === 0", arg=probes, polling=POLL_MS,
                               timeout=timeout * 1000)
        return []
    except PlaywrightTimeout:
        return differences(page, probes)


# ----- probes: what to read and what it must say -----

NUMERIC_FIELDS = {"step", "epoch", "folds", "cycles", "layer", "i", "n", "rows", "cols"}


def _literal(text: str) -> str:
    return "".join(r"\s*" if part.isspace() else re.escape(part) for part in re.split(r"(\s+)", text) if part)


def template_fields(key: str, lang: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(STRINGS[key][lang]) if name}


def template_regex(key: str, lang: str) -> str:
    """A (JavaScript) regex for the text t(key, lang, ...) renders: its {fields} are named groups
    (digits for the numeric ones); HTML tags and spacing are loose."""
    text = re.sub(r"<[^>]+>", " ", STRINGS[key][lang])
    out = []
    for literal, name, _, _ in string.Formatter().parse(text):
        out.append(_literal(literal))
        if name:
            out.append(f"(?<{name}>\\d[\\d,]*)" if name in NUMERIC_FIELDS else f"(?<{name}>.*?)")
    return "".join(out)


def option_label(prefix: str, value: str, lang: str) -> str:
    """The label a control shows for a choice (translated where the app translates it)."""
    key = f"{prefix}.{value}"
    return t(key, lang) if key in STRINGS else str(value)


def layer_titles(sizes: list[int], lang: str) -> list[str]:
    """What the network drawing writes above each layer of units: "input · 2", "hidden 1 · 16", …"""
    names = [t("net.input", lang), *(t("net.hidden", lang, i=i) for i in range(1, len(sizes) - 1)),
             t("net.output", lang)]
    return [f"{name} · {size}" for name, size in zip(names, sizes)]


def layer_title_regex(lang: str) -> str:
    names = "|".join([_literal(t("net.input", lang)), _literal(t("net.output", lang)),
                      template_regex("net.hidden", lang).replace("(?<i>", "(?:")])
    return f"(?:{names})\\s*·\\s*\\d+"


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _probe(pid: str, kind: str, scope: str = "#sidebar", expect: dict | None = None, **where) -> dict:
    return {"id": pid, "kind": kind, "scope": scope, "expect": expect or {}, **where}


def widget_probes(x: Expected) -> list[dict]:
    """Every sidebar control: shown with the link's value, or hidden; locked where the link locks it."""
    lang, s = x.lang, x.settings
    probes = []

    def add(key, kind, value, **where):
        shown = {"visible": True, "disabled": key in x.locked, **value}
        probes.append(_probe(key, kind, expect={"visible": False} if key in x.hidden else shown, **where))

    def choices(name, prefix):
        return [option_label(prefix, v, lang) for v in TrainingSession.param[name].objects]

    add("dataset", "select", {"text": option_label("dataset", s["dataset"], lang)}, label=t("ctl.dataset", lang))
    add("hidden", "slider", {"num": s["hidden_layers"]}, label=t("ctl.hidden", lang))
    for i in range(1, 5):
        add(f"w{i}", "editable", {"num": s[f"width{i}"]}, label=t("ctl.width", lang, i=i) + ":")
    add("act", "select", {"text": option_label("act", s["activation"], lang)}, label=t("ctl.act", lang))
    add("opt", "select", {"text": option_label("opt", s["optimizer"], lang)}, label=t("ctl.opt", lang))
    # α on a log slider (0.1 steps of log10 α) that shows log10 α, or α itself to 2 digits
    log_lr = math.log10(s["lr"])
    add("lr", "slider", {"one_of": [{"num": log_lr, "tol": 0.051}, {"num": log_lr, "tol": 0.051, "log": True}],
                         "means": f"α = {s['lr']:g} (log10 α = {log_lr:.2f})"}, label=t("ctl.lr", lang))
    add("batch", "slider", {"num": s["batch_size"]}, label=t("ctl.batch", lang))
    add("seed", "spinner", {"num": s["seed"]}, label=t("ctl.seed", lang))
    add("precision", "radio", {"text": option_label("precision", s["precision"], lang)},
        options=choices("precision", "precision"))
    add("noise", "slider", {"num": s["noise"], "tol": 0.0051}, label=t("ctl.noise", lang))
    add("rows", "editable", {"num": s["rows"]}, label=t("ctl.rows", lang) + ":")
    add("cols", "editable", {"num": s["cols"]}, label=t("ctl.cols", lang) + ":")
    add("dataflow", "radio", {"text": option_label("dataflow", s["dataflow"], lang)},
        options=choices("dataflow", "dataflow"))
    add("clock", "spinner", {"num": s["clock_mhz"]}, label=t("ctl.clock", lang))
    add("sram", "spinner", {"num": s["sram_kib"]}, label=t("ctl.sram", lang))
    add("bw", "spinner", {"num": s["dram_bytes_per_cycle"]}, label=t("ctl.bw", lang))
    add("speed", "slider", {"num": s["steps_per_second"]}, label=t("ctl.speed", lang))
    probes.append(_probe("lang (switch)", "radio", "body", options=[t("dash.language_en", lang),
                                                                     t("dash.language_zh", lang)],
                         expect={"text": t(f"dash.language_{lang}", lang)}))
    return probes


def status_probe(x: Expected, step: dict) -> dict:
    """The "step N · epoch E" status line (wherever the page puts it): N as `step` says ({"min": n} or {"eq": n})."""
    regex = template_regex("ctl.status", x.lang)
    return _probe("status", "own", "body", pattern=regex,
                  expect={"regex": regex, "template": STRINGS["ctl.status"][x.lang], "groups": {"step": step}})


def chip_probes(x: Expected) -> list[dict]:
    """The PE array, the GEMM named above it, the network card, the notices."""
    lang, s = x.lang, x.settings
    m, k, n = x.shape
    phase, direction, name = GEMM_KINDS[x.kind]
    if x.kind == "forward" and s["precision"] == "int8":
        name += " (int8)"  # int8 runs quantise the forward GEMMs (as TPU v1 does)
    shape = f"{m}×{k} · {k}×{n}"
    sizes = x.sizes
    info = {"layer": x.layer, "name": name, "folds": {"eq": x.folds}, "step": {"min": 1}, "shape": shape}
    probes = [
        _probe("PE array size", "canvas", "#main", expect={"text": f"{s['rows']}×{s['cols']}"}),
        _probe("PE array folds", "text", "#main", selector=".cv-live",
               expect={"regex": template_regex("pe.live_fold", lang), "template": STRINGS["pe.live_fold"][lang],
                       "groups": {"n": {"eq": x.folds}}}),
        _probe("PE array caption", "text", "#main", selector=".cv-captext",
               expect={"text": _norm(t("dash.caption", lang, layer=x.layer, name=name,
                                       phase=t(f"direction.{direction}", lang)))}),
        _probe("GEMM chooser", "select", "#main", pattern=template_regex("dash.op_option", lang),
               expect={"text": _norm(t("dash.op_option", lang, layer=x.layer, name=name, shape=shape,
                                       phase=option_label("plot.gemm_phase", phase, lang)))}),
        _probe("text above the PE array (.chipviz-op-info)", "text", "#main", selector=".chipviz-op-info",
               expect={"regex": template_regex("dash.op_info", lang), "template": STRINGS["dash.op_info"][lang],
                       "groups": {g: v for g, v in info.items() if g in template_fields("dash.op_info", lang)}}),
        _probe("PE array speed (fps)", "fps", "#main", expect={"num": x.fps}),
        _probe("network card (.chipviz-network-shape)", "text", "#main", selector=".chipviz-network-shape",
               expect={"text": " → ".join(map(str, sizes))}),
        _probe("network drawing's layer titles", "drawn_texts", pattern=layer_title_regex(lang),
               expect={"list": layer_titles(sizes, lang)}),
    ]
    if x.notices:
        probes.append(_probe("notice", "text", "#main", selector=".alert-warning", expect={"contains": x.notices}))
    return probes


def url_probe(x: Expected) -> dict:
    """The rewritten URL: the page's whole state (every setting, the view, the lesson position), the
    link's values, known keys only."""
    query = dict(x.link.query)
    equal = {key: str(x.settings[name]) for key, name in KEYS.items()} | {"lang": x.lang, "fps": str(x.fps)}
    if x.op is not None:
        equal["op"] = str(x.op)
    equal |= {k: v for k, v in query.items() if k in LESSON_KEYS}
    required = list(dict.fromkeys([*KEYS, *VIEW_KEYS, *(k for k in query if k in KNOWN_KEYS)]))
    return _probe("URL", "url", expect={"url": {"known": list(KNOWN_KEYS), "required": required, "equal": equal}})


def state_probes(x: Expected, step: dict) -> list[dict]:
    return widget_probes(x) + [status_probe(x, step)] + chip_probes(x) + [url_probe(x)]


# ======================================================================================
# Tabs
# ======================================================================================

@dataclass
class Tab:
    link: Link
    x: Expected
    page: object
    opened: float
    errors: list = field(default_factory=list)
    took: dict = field(default_factory=dict)  # seconds from opening (or pressing) to the state, per check

    def label(self) -> str:
        return f"[{self.link.name}] {self.link.url('/app')}"


def open_tabs(browser, base: str, links: list[Link], page_errors) -> list[Tab]:
    """One new tab per link; each waits only for its navigation to start, so they all load at once."""
    tabs = []
    for link in links:
        page = browser.new_page(viewport=VIEWPORT)
        page_errors(page)  # closed when the test ends
        tab = Tab(link, expected(link), page, time.monotonic())
        page.on("console", lambda msg, errs=tab.errors: errs.append(
            f"console.{msg.type}: {msg.text} ({msg.location.get('url')})") if msg.type == "error" else None)
        page.on("pageerror", lambda exc, errs=tab.errors: errs.append(f"pageerror: {exc}"))
        page.goto(link.url(base), wait_until="commit")
        tabs.append(tab)
    return tabs


def report(tab: Tab, when: str, problems: list[str]) -> list[str]:
    return [f"{tab.label()} {when}:\n    " + "\n    ".join(problems)] if problems else []


def check_tabs(tabs: list[Tab], when: str, deadline_of, step_of, since_of) -> list[str]:
    """Wait for every tab's state in turn, then read each once more: it must have stayed."""
    failures, reached = [], []
    for tab in tabs:
        probes = state_probes(tab.x, step_of(tab))
        problems = wait_for_state(tab.page, probes, deadline_of(tab))
        tab.took[when] = round(time.monotonic() - since_of(tab), 1)
        keys = [k for k, _ in parse_qsl(urlsplit(tab.page.url).query, keep_blank_values=True)]
        problems += [f"page.url keeps the unknown key {k!r}: {tab.page.url}" for k in keys if k not in KNOWN_KEYS]
        problems += [e for e in tab.errors if not any(noise in e for noise in KNOWN_CONSOLE_NOISE)]
        tab.errors.clear()
        failures += report(tab, when, problems)
        if not problems:
            reached.append((tab, probes))
    for tab, probes in reached:  # a late message must not undo a state once shown
        failures += report(tab, f"{when}, later (it had shown its state)", differences(tab.page, probes))
    return failures


def shown_step(tab: Tab) -> int | None:
    got = read(tab.page, [status_probe(tab.x, {"min": 0})])["status"]
    match = re.search(r"\d[\d,]*", got.get("value") or "")
    return int(match[0].replace(",", "")) if match else None


def press_one_step(tab: Tab) -> list[str]:
    """Click "One step" (found in either language: the page's words are checked with its state)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    words = "|".join(re.escape(t("ctl.step", lang)) for lang in ("en", "zh"))
    try:
        tab.page.get_by_role("button", name=re.compile(f"^({words})$")).click(timeout=TABS_TIMEOUT_S * 1000)
        return []
    except PlaywrightTimeout:
        return report(tab, "pressing One step", ["no “One step” button could be clicked"])


def screenshot(tab: Tab, path: Path, network: bool = False) -> None:
    card = tab.page.locator(".chipviz-network-shape")
    if network and card.count():  # the network card may sit below the PE array at 1280×720
        card.first.scroll_into_view_if_needed(timeout=WAIT)
    tab.page.screenshot(path=str(path))


def server_problems(server) -> list[str]:
    log = without_client_gone(server.log())
    if "Traceback" not in log:
        return []
    return [f"the server logged an exception:\n{log[max(0, log.index('Traceback') - 300):][:3000]}"]


def write_timings(path: Path, tabs: list[Tab]) -> None:
    """Seconds from opening a tab (or pressing its button) until its state was confirmed: an upper
    bound, as the tabs are checked in turn."""
    path.write_text("".join(f"{tab.link.name:24s} {tab.took}\n" for tab in tabs))


# ======================================================================================
# Tests
# ======================================================================================

def test_expected_gemms_and_folds_are_the_simulators():
    """The arithmetic these tests expect (the GEMM a link shows, its shape, its SCALE-Sim folds, its
    index among a step's operations) agrees with the simulator, for every link here."""
    for link in LOAD_LINKS:
        x = expected(link)
        session = TrainingSession(**x.settings)
        session.step()
        index = op_index(len(x.sizes) - 1, x.layer, x.kind)
        op = session.operations()[index]
        assert (op.layer, op.phase, op.is_gemm) == (x.layer, GEMM_KINDS[x.kind][0], True), (link.name, index, op)
        assert (op.stats.m, op.stats.k, op.stats.n, op.stats.folds) == (*x.shape, x.folds), link.name
        assert x.op in (None, index), link.name
        session.close()


READER_APP = '''
import panel as pn
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure as new_figure

pn.extension()
drawing = new_figure(width=300, height=200)
drawing.text(x="x", y="y", text="text", source=ColumnDataSource(dict(x=[0, 1, 2], y=[0, 0, 0],
             text=["input · 2", "hidden 1 · 16", "output · 2"])))
drawing.text(x="x", y="y", text="text", source=ColumnDataSource(dict(x=[0, 1], y=[1, 1], text=["0", "1"])))
sidebar = [
    pn.widgets.Select(name="数据集", options={"手写数字 (digits)": "digits", "螺旋 (spiral)": "spiral"},
                      value="spiral"),
    pn.widgets.Select(name="Gone", options=["a", "b"], value="b", visible=False),
    pn.widgets.IntSlider(name="Hidden layers", start=0, end=4, value=3),
    pn.widgets.FloatSlider(name="Learning rate α (log scale)", start=-4.0, end=1.0, step=0.1, value=-2.5,
                           format="0.0"),
    pn.pane.HTML("<small>α = 0.00316</small>"),
    pn.widgets.FloatSlider(name="Noise (2-D sets)", start=0.0, end=0.5, step=0.01, value=0.15, disabled=True),
    pn.widgets.EditableIntSlider(name="Layer 1 units", end=128, value=48, fixed_start=1, fixed_end=512),
    pn.widgets.EditableIntSlider(name="Layer 2 units", end=128, value=5, fixed_start=1, fixed_end=512,
                                 visible=False),
    pn.widgets.EditableIntSlider(name="PE rows", start=1, end=64, value=12, fixed_start=1, fixed_end=256,
                                 disabled=True),
    pn.widgets.IntInput(name="Seed", value=7),
    pn.widgets.FloatInput(name="Clock (MHz)", value=1200.5),
    pn.widgets.RadioButtonGroup(options=["fp32", "int8"], value="int8"),
    pn.widgets.RadioButtonGroup(options={"weight-stationary (ws)": "ws", "output-stationary (os)": "os",
                                         "input-stationary (is)": "is"}, value="os", orientation="vertical",
                                disabled=True),
    pn.pane.HTML("<small>step 12 · epoch 2<br><span>busy</span></small>"),
]
main = [
    pn.pane.HTML("<b>OP_INFO", css_classes=["chipviz-op-info"]),
    pn.pane.HTML('<canvas class="cv-canvas" data-rows="12" data-cols="6"></canvas>'
                 '<label class="cv-speed">speed<input type="range" min="1" max="60" value="24"></label>'
                 '<div class="cv-caption"><span class="cv-captext">layer 2 · forward · Y = X·W</span>'
                 '<span class="cv-live"> · fold 1 of 8 · cycle 1 of 77</span></div>'),
    pn.pane.Bokeh(drawing),
    pn.widgets.Select(options=["L1 forward: Y = X·W  (32×2 · 2×16)", "L2 forward: Y = X·W  (32×16 · 16×16)"],
                      value="L2 forward: Y = X·W  (32×16 · 16×16)"),
]
pn.template.BootstrapTemplate(title="readers", sidebar=sidebar, main=main).servable()
'''


def test_readers_read_each_widget_type(browser, panel_server, tmp_path, page_errors):
    """The readers on plain Panel widgets of known values, shown, hidden and disabled; the checker
    passes what is right and reports, one by one, what is not."""
    op_info = t("dash.op_info", "en", layer=2, phase="forward", name="Y = X·W", step=3, folds=8, cycles="1,077",
                util="12.3%", mapping="45.6%", energy="1.2")
    app = tmp_path / "readers.py"
    app.write_text(READER_APP.replace("OP_INFO", op_info))
    server = panel_server(app, log_path=tmp_path / "readers.log")
    page = browser.new_page(viewport=VIEWPORT)
    errors = page_errors(page)
    page.goto(server.url + "?dataset=spiral&hide=lr,batch")
    probes = {p["id"]: p for p in [
        _probe("select", "select", label="数据集"),
        _probe("hidden select", "select", label="Gone"),
        _probe("int slider", "slider", label="Hidden layers"),
        _probe("float slider", "slider", label="Learning rate α (log scale)"),
        _probe("alpha", "own", pattern="^α = "),
        _probe("disabled slider", "slider", label="Noise (2-D sets)"),
        _probe("editable", "editable", label="Layer 1 units:"),
        _probe("hidden editable", "editable", label="Layer 2 units:"),
        _probe("disabled editable", "editable", label="PE rows:"),
        _probe("int box", "spinner", label="Seed"),
        _probe("float box", "spinner", label="Clock (MHz)"),
        _probe("radio", "radio", options=["fp32", "int8"]),
        _probe("disabled radio", "radio", options=["weight-stationary (ws)", "output-stationary (os)",
                                                   "input-stationary (is)"]),
        _probe("status", "own", pattern=template_regex("ctl.status", "en")),
        _probe("op info", "text", "#main", selector=".chipviz-op-info"),
        _probe("canvas", "canvas", "#main"),
        _probe("fps", "fps", "#main"),
        _probe("caption", "text", "#main", selector=".cv-captext"),
        _probe("live", "text", "#main", selector=".cv-live"),
        _probe("drawn", "drawn_texts", pattern=layer_title_regex("en")),
        _probe("url", "url"),
        _probe("missing", "select", label="No such label"),
        _probe("select by options", "select", "#main", pattern=template_regex("dash.op_option", "en")),
    ]}
    page.wait_for_function(f"spec => {{ const o = ({READ_JS})(spec).obs; return o.fps.found && "
                           f"o['float box'].found && o['disabled radio'].found && o.drawn.found; }}",
                           arg=list(probes.values()), polling=POLL_MS, timeout=WAIT)
    got = {k: {f: v[f] for f in ("found", "visible", "disabled", "value") if f in v}
           for k, v in read(page, list(probes.values())).items()}
    assert got["select"] == {"found": 1, "visible": True, "disabled": False, "value": "螺旋 (spiral)"}
    assert got["hidden select"] == {"found": 1, "visible": False, "disabled": False, "value": "b"}
    assert got["int slider"] == {"found": 1, "visible": True, "disabled": False, "value": "3"}
    assert got["float slider"] == {"found": 1, "visible": True, "disabled": False, "value": "-2.5"}
    assert got["alpha"] == {"found": 1, "visible": True, "value": "α = 0.00316"}
    assert got["disabled slider"] == {"found": 1, "visible": True, "disabled": True, "value": "0.15"}
    assert got["editable"] == {"found": 1, "visible": True, "disabled": False, "value": "48"}
    assert got["hidden editable"]["visible"] is False and got["hidden editable"].get("value") in (None, "5")
    assert got["disabled editable"] == {"found": 1, "visible": True, "disabled": True, "value": "12"}
    assert got["int box"] == {"found": 1, "visible": True, "disabled": False, "value": "7"}
    assert got["float box"]["value"] == "1200.5" and got["float box"]["visible"]
    assert got["radio"] == {"found": 1, "visible": True, "disabled": False, "value": "int8"}
    assert got["disabled radio"] == {"found": 1, "visible": True, "disabled": True, "value": "output-stationary (os)"}
    assert got["status"]["value"] == "step 12 · epoch 2"
    assert got["op info"]["value"] == _norm(op_info.replace("</b>", " "))
    assert got["canvas"]["value"] == "12×6" and got["fps"]["value"] == "24"
    assert got["caption"]["value"] == "layer 2 · forward · Y = X·W"
    assert got["live"]["value"] == "· fold 1 of 8 · cycle 1 of 77"
    assert got["drawn"]["value"] == layer_titles([2, 16, 2], "en") == ["input · 2", "hidden 1 · 16", "output · 2"]
    assert got["url"]["value"] == [["dataset", "spiral"], ["hide", "lr,batch"]]
    assert got["missing"] == {"found": 0, "visible": False}
    assert got["select by options"]["value"] == "L2 forward: Y = X·W (32×16 · 16×16)"
    # shown or hidden is the app's doing, not the sidebar's: collapsed, its controls read as before
    page.evaluate("document.querySelector('#sidebar').style.display = 'none'")
    collapsed = read(page, [probes["select"], probes["hidden select"], probes["editable"], probes["hidden editable"]])
    assert [collapsed[k]["visible"] for k in ("select", "hidden select", "editable", "hidden editable")] == [
        True, False, True, False]
    page.evaluate("document.querySelector('#sidebar').style.display = ''")

    def expecting(pid, **expect):
        return dict(probes[pid], expect=expect)

    right = [
        expecting("select", visible=True, disabled=False, text="螺旋 (spiral)"),
        expecting("hidden select", visible=False),
        expecting("int slider", num=3),
        expecting("float slider", num=math.log10(0.00316), tol=0.051),
        expecting("float slider", one_of=[{"num": math.log10(0.00316), "tol": 0.051},
                                          {"num": math.log10(0.00316), "tol": 0.051, "log": True}]),
        expecting("int slider", one_of=[{"num": 0.0, "tol": 0.01}, {"num": math.log10(3), "tol": 0.01, "log": True}]),
        expecting("disabled slider", disabled=True, num=0.15, tol=0.0051),
        expecting("hidden editable", visible=False),
        expecting("disabled editable", disabled=True, num=12),
        expecting("status", regex=template_regex("ctl.status", "en"), groups={"step": {"eq": 12}}),
        expecting("op info", regex=template_regex("dash.op_info", "en"),
                  groups={"layer": 2, "name": "Y = X·W", "folds": {"eq": 8}, "step": {"min": 1}}),
        expecting("live", regex=template_regex("pe.live_fold", "en"), groups={"n": {"eq": 8}}),
        expecting("drawn", list=["input · 2", "hidden 1 · 16", "output · 2"]),
        expecting("url", url={"known": ["dataset", "hide"], "required": ["dataset"],
                              "equal": {"dataset": "spiral", "hide": "batch,lr"}}),
    ]
    assert differences(page, right) == []
    wrong = [
        expecting("select", text="手写数字 (digits)"),
        expecting("hidden select", visible=True),
        expecting("int slider", num=2),
        expecting("float slider", one_of=[{"num": -2.0, "tol": 0.051}, {"num": -2.0, "tol": 0.051, "log": True}],
                  means="α = 0.01"),
        expecting("editable", disabled=True),
        expecting("status", regex=template_regex("ctl.status", "en"), groups={"step": {"eq": 13}}),
        expecting("live", regex=template_regex("pe.live_fold", "en"), groups={"n": {"eq": 9}}),
        expecting("drawn", list=["input · 2", "output · 2"]),
        expecting("url", url={"known": ["dataset"], "required": ["lr"], "equal": {"dataset": "xor"}}),
        expecting("missing", text="x"),
    ]
    found = differences(page, wrong)
    assert [d.split(":")[0] for d in found] == ["select", "hidden select", "int slider", "float slider", "editable",
                                                "status", "live", "drawn", "url", "url", "url", "missing"], found
    assert errors == [], errors


def test_a_matrix_of_links_opened_in_tabs_side_by_side(browser, panel_server, artifacts, page_errors):
    """Links setting every network, training, chip and view key, lessons in both languages with hide
    and lock, unknown keys: opened 5 and then 4 tabs at a time on one server, every tab shows its
    link's state, and shows it again after "One step"."""
    server = panel_server(APP, log_path=artifacts / "links-server.log")
    failures, done = [], []
    for batch in MATRIX_BATCHES:
        tabs = open_tabs(browser, server.url, batch, page_errors)  # all open before any is checked
        deadline = time.monotonic() + TABS_TIMEOUT_S
        failures += check_tabs(tabs, "on opening", lambda tab: deadline, lambda tab: {"min": 1},
                               lambda tab: tab.opened)
        for i, tab in enumerate(tabs[:3]):
            screenshot(tab, artifacts / f"links-{tab.link.name}.png", network=i == 0)
        steps = {tab.link.name: shown_step(tab) for tab in tabs}
        pressed = {}
        for tab in tabs:  # "One step" in every tab, then check them all
            failures += press_one_step(tab)
            pressed[tab.link.name] = time.monotonic()
        deadline = time.monotonic() + TABS_TIMEOUT_S
        failures += check_tabs(
            tabs, "after One step", lambda tab: deadline,
            lambda tab: {"eq": steps[tab.link.name] + 1} if steps[tab.link.name] is not None else {"min": 2},
            lambda tab: pressed[tab.link.name])
        for tab in tabs:
            tab.page.close()
        done += tabs
    write_timings(artifacts / "links-timings.txt", done)
    failures += server_problems(server)
    assert not failures, f"{len(failures)} tab states differ from their links:\n" + "\n".join(failures)


def test_ten_tabs_opened_at_once_each_reach_their_links_state(browser, panel_server, artifacts, page_errors):
    """Under load: ten different links opened at once on one server of this 2-core machine; each
    tab reaches its own link's state (not another tab's, not the defaults) and keeps it."""
    server = panel_server(APP, log_path=artifacts / "links-load-server.log")
    tabs = open_tabs(browser, server.url, LOAD_LINKS, page_errors)
    failures = check_tabs(tabs, "under load", lambda tab: tab.opened + LOAD_TIMEOUT_S, lambda tab: {"min": 1},
                          lambda tab: tab.opened)
    for tab in tabs[:2] + tabs[-2:]:
        screenshot(tab, artifacts / f"links-load-{tab.link.name}.png")
    write_timings(artifacts / "links-load-timings.txt", tabs)
    failures += server_problems(server)
    assert not failures, f"{len(failures)} of 10 tabs differ from their links:\n" + "\n".join(failures)
