"""Live plots of a training session: loss, utilisation, energy, roofline, descent, boundary.

Each view is a small `pn.viewable.Viewer` that takes a `TrainingSession`, builds its Bokeh
figures once, and on every new `session.snapshot` only replaces the data of its
`ColumnDataSource`s (growing curves are streamed when the history only grew).

Threads: the session publishes snapshots from its worker thread, so the watchers below run
there. Bokeh models may only be changed on the document's thread, so every view funnels its
model edits through `_LiveView._schedule`, a chipviz.app.document.Redraw: with no served
document (tests, scripts) the edit runs at once; when served it runs on the document's thread.
At most one edit per view is queued at a time and it draws the latest snapshot, so a slow
browser never builds a backlog. The expensive views
(loss surface, decision boundary) compute in the publishing thread, throttled, and only
hand finished arrays to the document.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from functools import partial

import numpy as np
import panel as pn
import param
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    FactorRange,
    HoverTool,
    Label,
    Legend,
    LegendItem,
    LinearColorMapper,
    LogColorMapper,
    LogScale,
    LinearScale,
    LogTicker,
    LogTickFormatter,
    BasicTicker,
    BasicTickFormatter,
    NumeralTickFormatter,
    Range1d,
    Span,
)
from bokeh.core.properties import value as _value
from bokeh.palettes import Cividis256
from bokeh.plotting import figure
from bokeh.plotting.contour import contour_data

from ..data import TOYS
from ..nn.on_chip import PHASES
from ..nn.phases import PHASE_TABLE
from ..nn.trainer import ENERGY_PARTS
from .. import palette as pal
from .. import server_load
from .document import Redraw, served_document
from ..i18n import LANGUAGES, t
from ..session import TrainingSession
from .sources import set_data, set_series

__all__ = ["LossPlot", "UtilizationPlot", "EnergyPlot", "RooflinePlot", "DescentPlot", "BoundaryPlot",
           "LivePlots", "fmt"]

log = logging.getLogger(__name__)

# ----- look -----
FONT = "Inter, 'Segoe UI', Helvetica, Arial, sans-serif"
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"
TRAIN = pal.BLUE
TEST = pal.VERMILLION
CLASS_COLORS = (pal.BLUE, pal.ORANGE)  # class 0, class 1 (more classes cycle through Okabe–Ito)
ENERGY_COLORS = {"mac": pal.ORANGE, "register": pal.REDDISH_PURPLE, "sram": pal.SKY_BLUE, "dram": pal.BLUE,
                 "vector": pal.BLUISH_GREEN}
ENERGY_LABELS = {"mac": "MAC", "register": "register (PE to PE)", "sram": "SRAM", "dram": "DRAM",
                 "vector": "vector unit"}
DIRECTION_COLORS = {"forward": pal.FORWARD, "backward": pal.BACKWARD}
# Energy units, smallest first: (name, picojoules per unit).
ENERGY_UNITS = (("pJ", 1.0), ("nJ", 1e3), ("µJ", 1e6), ("mJ", 1e9), ("J", 1e12))
FULL_REFRESH_EVERY = 8  # redraws between two full resends of streamed curves (~2 s at 4 snapshots/s)
BOUNDARY_NOTE = "Decision boundary needs a 2-D dataset; pick circle, xor, gauss, spiral or moons."


def fmt(x: float, digits: int = 6) -> str:
    """A number to `digits` significant digits, with a real minus sign (and no "−0")."""
    return f"{x + 0.0:.{digits}g}".replace("-", "−")


def _factor(x: float) -> str:
    """A number as a factor in a product: negative numbers in parentheses."""
    return f"({fmt(x)})" if x < 0 else fmt(x)


def _diverging(low: str, high: str, n: int = 256) -> list[str]:
    """n colours from `low` through white to `high` (a colour-blind-safe two-hue scale)."""
    def rgb(c):
        return np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)], float)
    a, b, w = rgb(low), rgb(high), np.full(3, 255.0)
    out = []
    for x in np.linspace(0, 1, n):
        c = a + (w - a) * (x / 0.5) if x <= 0.5 else w + (b - w) * ((x - 0.5) / 0.5)
        out.append("#%02x%02x%02x" % tuple(int(round(v)) for v in c))
    return out


def _figure(title: str, x_label: str, y_label: str, height: int = 320, **kw):
    p = figure(title=title, height=height, sizing_mode="stretch_width", tools=TOOLS, toolbar_location="right",
               min_width=280, **kw)
    p.toolbar.autohide = True
    p.title.text_font_size = "13pt"
    p.title.text_font = FONT
    p.title.text_font_style = "bold"
    p.title.text_color = pal.INK
    for axis, label in ((p.xaxis, x_label), (p.yaxis, y_label)):
        axis.axis_label = label
        axis.axis_label_text_font_size = "11pt"
        axis.axis_label_text_font_style = "normal"
        axis.axis_label_text_font = FONT
        axis.major_label_text_font_size = "10pt"
    p.outline_line_color = None
    p.grid.grid_line_color = "#E9E9E9"
    p.min_border_right = 12
    return p


def _style_legend(p, location="top_right"):
    if not p.legend:
        return
    lg = p.legend[0]
    lg.location = location
    lg.label_text_font_size = "10pt"
    lg.label_text_font = FONT
    lg.background_fill_alpha = 0.85
    lg.border_line_color = "#DDDDDD"
    lg.click_policy = "hide"
    lg.spacing = 2
    lg.padding = 6


def _legend_outside(p, place="below"):
    """Move the figure's legend out of the plot area (horizontal above or below, vertical at the side)."""
    lg = p.legend[0]
    p.center = [r for r in p.center if r is not lg]
    lg.orientation = "horizontal" if place in ("above", "below") else "vertical"
    lg.location = "center" if place in ("above", "below") else "top_left"
    lg.border_line_color = None
    lg.background_fill_alpha = 0.0
    p.add_layout(lg, place)


def _items(fig, label: str) -> list:
    """The legend items of `fig` labelled `label` (to relabel them later)."""
    return [item for lg in fig.legend for item in lg.items
            if getattr(item.label, "value", item.label) == label]


def _relabel_items(items, text: str) -> None:
    for item in items:
        if getattr(item.label, "value", item.label) != text:
            item.label = _value(text)


def _axes(fig, x_label: str | None, y_label: str | None) -> None:
    if x_label is not None:
        fig.xaxis.axis_label = x_label
    if y_label is not None:
        fig.yaxis.axis_label = y_label


def _pane(fig, **kw):
    return pn.pane.Bokeh(fig, sizing_mode="stretch_width", **kw)


def _energy_unit(max_pj: float) -> tuple[str, float]:
    """The largest unit in which `max_pj` is at least 1 (so the axis reads 1 to 999)."""
    name, scale = ENERGY_UNITS[0]
    for n, s in ENERGY_UNITS:
        if max_pj >= s:
            name, scale = n, s
    return name, scale


def _set_range(rng: Range1d, start: float, end: float) -> None:
    """Move an explicit range; the reset tool returns to it too."""
    rng.update(start=start, end=end, reset_start=start, reset_end=end)


def _series(history: dict, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of one history column, without the steps where it was not recorded."""
    step = np.asarray(history.get("step", ()), np.int64)
    values = np.asarray(history.get(column, ()), np.float64)
    keep = np.isfinite(values)
    return step[keep], values[keep]


def _gemm_label(op, lang: str = "en") -> str:
    phase = t(f"plot.gemm_phase.{op.phase}", lang) if op.phase in PHASES else op.phase
    return f"L{op.layer} {phase} {op.name.replace(' ', '')}"


def _direction(phase: str) -> str:
    """The direction of a GEMM's phase, "forward" or "backward" (chipviz.nn.phases); the plots here
    show GEMMs only, so anything that is not forward is drawn as backward."""
    facts = PHASE_TABLE.get(phase)
    return "forward" if facts is not None and facts.direction == "forward" else "backward"


def _forward(op) -> bool:
    return _direction(op.phase) == "forward"


class _Throttle:
    """Run `fn` at most once per `interval` seconds, never twice at once.

    A call that comes too early, or while `fn` runs, is folded into one later run (in a timer
    thread), so the last change is always drawn. When `background()` is true (the view is
    served), due runs also go to a thread, so the session's worker never waits for a redraw.
    """

    def __init__(self, interval: float, fn, background=lambda: False):
        self.interval = interval
        self.fn = fn
        self.background = background
        self._lock = threading.Lock()
        self._last = -math.inf
        self._timer: threading.Timer | None = None
        self._running = False
        self._pending = False
        self.closed = False

    def __call__(self) -> None:
        with self._lock:
            if self.closed:
                return
            if self._running:
                self._pending = True
                return
            wait = self._last + self._interval() - time.monotonic()
            if wait > 0:
                self._arm(wait)
                return
            self._begin()
        self._start()

    def now(self) -> None:
        """Run as soon as possible (on demand), ignoring the interval."""
        with self._lock:
            if self.closed:
                return
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._running:
                self._pending = True
                return
            self._begin()
        self._start()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _interval(self) -> float:
        return self.interval * server_load.stretch()  # longer while many sessions train

    # with self._lock held
    def _arm(self, wait: float) -> None:
        if self._timer is None:
            self._timer = threading.Timer(max(wait, 0.0), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _begin(self) -> None:
        self._running = True
        self._last = time.monotonic()

    # without the lock
    def _start(self) -> None:
        if self.background():
            threading.Thread(target=self._execute, daemon=True, name="chipviz-plot").start()
        else:
            self._execute()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            if self.closed:
                return
            if self._running:
                self._pending = True
                return
            self._begin()
        self._execute()  # already in a thread of its own

    def _execute(self) -> None:
        try:
            self.fn()
        except Exception:  # a plot that fails must not stop training: report it and carry on
            log.exception("a live plot failed to recompute")
        finally:
            with self._lock:
                self._running = False
                if self._pending and not self.closed:
                    self._pending = False
                    self._arm(self._last + self._interval() - time.monotonic())


class _LiveView(pn.viewable.Viewer):
    """Shared plumbing: watch the session's snapshot and apply model edits on the document's thread."""

    session = param.ClassSelector(class_=TrainingSession, constant=True, doc="the session to draw")
    lang = param.Selector(default="en", objects=list(LANGUAGES), doc="language of titles, axes and legends")
    shown = param.Boolean(default=True, doc="on screen now (its tab is open); a hidden view skips the "
                                            "snapshots and catches up when shown")

    def __init__(self, session: TrainingSession, **params):
        super().__init__(session=session, **params)
        self._figures: list = []
        self._missed = False  # a snapshot came while hidden
        self._labelled = None  # the language the static words are in
        self._doc = served_document()
        self._redraw = Redraw(self._draw, lambda: self._document())
        self._constructing = True  # the first drawing happens here, before any browser is attached
        self._layout = self._build()
        self._watchers = [session.param.watch(self._safe_on_snapshot, "snapshot")]
        self._relabel()
        self._labelled = self.lang
        self.param.watch(lambda e: self._schedule(), "lang")
        self.param.watch(self._on_shown, "shown")
        try:
            self._start()
        finally:
            self._constructing = False

    # subclasses implement these
    def _build(self):
        raise NotImplementedError

    def _relabel(self) -> None:
        """Put the static words (axis labels, legends, tooltips, widget labels) in `lang`."""

    def _draw(self) -> None:
        """Relabel if the language changed, then bring the data up to date (document thread)."""
        if self._labelled != self.lang:
            self._relabel()
            self._labelled = self.lang
        self._update()

    def tr(self, key: str, **values) -> str:
        return t(key, self.lang, **values)

    def _update(self) -> None:
        """Bring the Bokeh models up to date with the latest snapshot (runs on the document's thread)."""
        raise NotImplementedError

    def _start(self) -> None:
        self._draw()

    def _on_snapshot(self, *events) -> None:
        self._schedule()

    # plumbing
    def _safe_on_snapshot(self, *events) -> None:
        """The watcher runs in the session's worker thread: a failing plot must not stop training."""
        if not self.shown:
            self._missed = True
            return
        try:
            self._on_snapshot(*events)
        except Exception:
            log.exception("%s failed to redraw", type(self).__name__)

    def _on_shown(self, event) -> None:
        if event.new and self._missed:
            self._missed = False
            self._safe_on_snapshot()

    def __panel__(self):
        return self._layout

    @property
    def snapshot(self):
        return self.session.snapshot

    def _served(self) -> bool:
        if getattr(self, "_constructing", False):
            return False
        doc = self._document()
        return doc is not None and doc.session_context is not None

    def _document(self):
        for fig in getattr(self, "_figures", ()):
            if fig.document is not None:
                return fig.document
        return self._doc

    def _schedule(self) -> None:
        if self._constructing:
            self._draw()
        else:
            self._redraw()

    def _full_refresh_due(self) -> bool:
        """True every FULL_REFRESH_EVERY-th call: time to resend streamed series whole."""
        self._refreshes = getattr(self, "_refreshes", -1) + 1
        return self._refreshes % FULL_REFRESH_EVERY == 0

    def dispose(self) -> None:
        """Stop following the session (the page closed)."""
        for w in self._watchers:
            try:
                self.session.param.unwatch(w)
            except Exception:
                pass
        self._watchers = []


# ----------------------------------------------------------------------------------------------
class LossPlot(_LiveView):
    """Train and test loss against step (optionally log-y) and, below, train and test accuracy."""

    log_y = param.Boolean(default=False, doc="draw the loss on a logarithmic axis")
    compact = param.Boolean(default=False, constant=True, doc="shorter figures, for the first screen")

    def _build(self):
        self.sources = {k: ColumnDataSource({"x": np.zeros(0, np.int64), "y": np.zeros(0)}, name=k)
                        for k in ("train_loss", "test_loss", "train_acc", "test_acc")}
        s = self.sources
        train, test = "train (mini-batch)", "test"
        heights = (230, 160) if self.compact else (290, 220)
        self.loss_fig = p = _figure("Loss", "training step", "loss (cross-entropy)", height=heights[0], name="loss")
        p.line("x", "y", source=s["train_loss"], color=TRAIN, line_width=2, legend_label=train)
        p.line("x", "y", source=s["test_loss"], color=TEST, line_width=2, line_dash="dashed", legend_label=test)
        p.scatter("x", "y", source=s["test_loss"], color=TEST, size=6, marker="square", legend_label=test)
        _style_legend(p, "top_right")
        self.loss_hover = HoverTool(mode="mouse")
        p.add_tools(self.loss_hover)
        self.acc_fig = a = _figure("Accuracy", "training step", "accuracy", height=heights[1], x_range=p.x_range)
        a.y_range = Range1d(0, 1.02)
        a.yaxis.formatter = NumeralTickFormatter(format="0%")
        a.line("x", "y", source=s["train_acc"], color=TRAIN, line_width=2, legend_label=train)
        a.line("x", "y", source=s["test_acc"], color=TEST, line_width=2, line_dash="dashed", legend_label=test)
        a.scatter("x", "y", source=s["test_acc"], color=TEST, size=6, marker="square", legend_label=test)
        self.acc_hover = HoverTool(mode="mouse")
        a.add_tools(self.acc_hover)
        _style_legend(a, "bottom_right")
        self._legend_items = {"plot.train_batch": _items(p, train) + _items(a, train),
                              "plot.test": _items(p, test) + _items(a, test)}
        self._figures = [p, a]
        self.log_toggle = pn.widgets.Checkbox.from_param(self.param.log_y)
        self.param.watch(lambda e: self._schedule(), "log_y")
        return pn.Column(_pane(p), _pane(a), self.log_toggle, sizing_mode="stretch_width")

    def _relabel(self) -> None:
        tr = self.tr
        _axes(self.loss_fig, tr("plot.training_step"), tr("plot.loss_axis"))
        _axes(self.acc_fig, tr("plot.training_step"), tr("plot.accuracy_axis"))
        for key, items in self._legend_items.items():
            _relabel_items(items, tr(key))
        self.loss_hover.tooltips = [(tr("plot.step"), "@x"), (tr("plot.loss_tip"), "@y{0.0000}")]
        self.acc_hover.tooltips = [(tr("plot.step"), "@x"), (tr("plot.accuracy_axis"), "@y{0.0%}")]
        self.log_toggle.label = tr("plot.log_loss")
        if self.snapshot is None:
            self.loss_fig.title.text = tr("plot.loss")
            self.acc_fig.title.text = tr("plot.accuracy")

    def _update(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        full = self._full_refresh_due()
        for key, source in self.sources.items():
            set_series(source, *_series(snap.history, key), full=full)
        if self.log_y != isinstance(self.loss_fig.y_scale, LogScale):
            self._set_log(self.log_y)
        tr = self.tr
        self.loss_fig.title.text = tr("plot.loss_title", step=snap.step) + (
            tr("plot.loss_title_train", loss=f"{snap.report.loss:.4g}") if snap.report else "") + (
            tr("plot.loss_title_test", loss=f"{snap.test_loss:.4g}") if math.isfinite(snap.test_loss) else "")
        self.acc_fig.title.text = tr("plot.accuracy") + (
            tr("plot.accuracy_title_test", acc=f"{snap.test_accuracy:.1%}") if math.isfinite(snap.test_accuracy)
            else "")

    def _set_log(self, log: bool) -> None:
        p = self.loss_fig
        p.y_scale = LogScale() if log else LinearScale()
        p.yaxis[0].ticker = LogTicker() if log else BasicTicker()
        p.yaxis[0].formatter = LogTickFormatter() if log else BasicTickFormatter()


# ----------------------------------------------------------------------------------------------
class UtilizationPlot(_LiveView):
    """Per GEMM of the last step: PE utilisation (filled bar) inside its mapping efficiency
    (outlined bar); beside it the whole step's utilisation over training."""

    def _build(self):
        self.bar_source = ColumnDataSource(self._bar_data([], self.lang))
        self.time_source = ColumnDataSource({"x": np.zeros(0, np.int64), "y": np.zeros(0)})
        self.bar_fig = p = _figure("PE utilisation per matrix multiply", "share of the array's PE-cycles", "",
                                   height=380, y_range=FactorRange(factors=[]), x_range=Range1d(0, 1.0))
        p.xaxis.formatter = NumeralTickFormatter(format="0%")
        outline = p.hbar(y="label", right="mapping", height=0.8, source=self.bar_source, fill_color="color",
                         fill_alpha=0.12, line_color="color", line_width=1.5, line_dash="dashed",
                         legend_label="mapping efficiency (outline)")
        bars = p.hbar(y="label", right="util", height=0.5, source=self.bar_source, fill_color="color",
                      line_color=None, legend_field="direction")
        self._outline_items = _items(p, "mapping efficiency (outline)")
        self.bar_hover = HoverTool(renderers=[bars, outline])
        p.add_tools(self.bar_hover)
        p.ygrid.grid_line_color = None
        p.yaxis.major_label_text_font_size = "10pt"
        _style_legend(p)
        _legend_outside(p, "below")
        self.time_fig = t = _figure("Utilisation of each step", "training step", "PE utilisation", height=380)
        t.y_range = Range1d(0, 1.02)
        t.yaxis.formatter = NumeralTickFormatter(format="0%")
        t.line("x", "y", source=self.time_source, color=pal.BLUISH_GREEN, line_width=2)
        self.time_hover = HoverTool(mode="vline")
        t.add_tools(self.time_hover)
        self._figures = [p, t]
        return pn.Row(_pane(p), _pane(t), sizing_mode="stretch_width")

    def _relabel(self) -> None:
        tr = self.tr
        _axes(self.bar_fig, tr("plot.util_share"), None)
        _axes(self.time_fig, tr("plot.training_step"), tr("plot.pe_util"))
        _relabel_items(self._outline_items, tr("plot.mapping_outline"))
        self.bar_hover.tooltips = [
            (tr("plot.gemm"), "@label"), (tr("plot.shape"), "@shape"), (tr("plot.utilisation"), "@util{0.0%}"),
            (tr("plot.mapping"), "@mapping{0.0%}"), (tr("plot.folds"), "@folds"), (tr("plot.cycles"), "@cycles")]
        self.time_hover.tooltips = [(tr("plot.step"), "@x"), (tr("plot.utilisation"), "@y{0.0%}")]

    @staticmethod
    def _bar_data(ops, lang: str = "en") -> dict:
        labels, seen = [], set()
        for op in ops:
            label = _gemm_label(op, lang)
            while label in seen:
                label += "′"
            seen.add(label)
            labels.append(label)
        s = [op.stats for op in ops]
        return {
            "label": labels,
            "util": [x.utilization for x in s],
            "mapping": [x.mapping_efficiency for x in s],
            "direction": [t(f"direction.{_direction(op.phase)}", lang) for op in ops],
            "color": [DIRECTION_COLORS[_direction(op.phase)] for op in ops],
            "shape": [f"{x.m}×{x.k} · {x.k}×{x.n}" for x in s],
            "folds": [x.folds for x in s],
            "cycles": [x.cycles for x in s],
        }

    def _update(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        gemms = [op for op in (snap.report.ops if snap.report else []) if op.is_gemm]
        data = self._bar_data(gemms, self.lang)
        factors = list(reversed(data["label"]))  # first GEMM on top
        if list(self.bar_fig.y_range.factors) != factors:
            self.bar_fig.y_range.factors = factors
        set_data(self.bar_source, data)
        x, y = _series(snap.history, "utilization")
        set_series(self.time_source, x, y, full=self._full_refresh_due())
        tr = self.tr
        if len(y):
            self.time_fig.title.text = tr("plot.util_time_last", util=f"{y[-1]:.1%}")
        else:
            self.time_fig.title.text = tr("plot.util_time")
        self.bar_fig.title.text = tr("plot.util_bars") + (tr("plot.util_bars_step", step=snap.step) if snap.report
                                                          else tr("plot.no_step"))


# ----------------------------------------------------------------------------------------------
class EnergyPlot(_LiveView):
    """Energy of the last step by phase, stacked by component (MAC, register, SRAM, DRAM,
    vector unit); beside it the energy of every step over training. The unit (pJ, nJ, µJ, mJ)
    follows the size of the numbers and is named on the axis."""

    include_dram = param.Boolean(default=True, doc="stack DRAM energy too (it dwarfs the rest)")

    def _build(self):
        self.phase_labels = self._phase_labels()
        self.unit = ("µJ", 1e6)
        self.bar_source = ColumnDataSource({"phase": self.phase_labels, **{k: [0.0] * 4 for k in ENERGY_PARTS}})
        self.time_source = ColumnDataSource({"x": np.zeros(0, np.int64), "y": np.zeros(0)})
        self.bar_fig = p = _figure("Energy of the last step", "", "energy per step (µJ)", height=380,
                                   x_range=FactorRange(factors=self.phase_labels))
        renderers = p.vbar_stack(list(ENERGY_PARTS), x="phase", width=0.6, source=self.bar_source,
                                 color=[ENERGY_COLORS[k] for k in ENERGY_PARTS], line_color="white")
        self.bar_hover = HoverTool(renderers=renderers, tooltips=self._tooltips())
        p.add_tools(self.bar_hover)
        p.xgrid.grid_line_color = None
        p.xaxis.major_label_text_font_size = "10.5pt"
        p.y_range.start = 0
        self._energy_items = {k: LegendItem(label=ENERGY_LABELS[k], renderers=[r])
                              for k, r in zip(ENERGY_PARTS, renderers)}
        # top of the legend = top of the stack
        p.add_layout(Legend(items=list(reversed(list(self._energy_items.values())))), "right")
        _style_legend(p, "top_left")
        p.legend[0].click_policy = "none"
        p.legend[0].border_line_color = None
        self.time_fig = t = _figure("Energy of each step", "training step", "energy per step (µJ)", height=380)
        t.y_range.start = 0
        t.line("x", "y", source=self.time_source, color=pal.REDDISH_PURPLE, line_width=2)
        self.time_hover = HoverTool(tooltips=[("step", "@x"), ("energy", "@y{0.000}")], mode="vline")
        t.add_tools(self.time_hover)
        self._figures = [p, t]
        self.dram_toggle = pn.widgets.Checkbox.from_param(self.param.include_dram)
        self.param.watch(lambda e: self._schedule(), "include_dram")
        return pn.Column(pn.Row(_pane(p), _pane(t), sizing_mode="stretch_width"), self.dram_toggle,
                         sizing_mode="stretch_width")

    def _phase_labels(self) -> list[str]:
        return [t(f"phase.{p}", self.lang).replace(" (", "\n(").replace("（", "\n（") for p in PHASES]

    def _tooltips(self):
        unit = self.unit[0]
        tr = self.tr
        return [(tr("plot.phase_tip"), "@phase"), (tr("plot.component"), "$name"),
                (tr("plot.energy_tip"), f"@$name{{0.000}} {unit}")]

    def _relabel(self) -> None:
        tr = self.tr
        for key, item in self._energy_items.items():
            _relabel_items([item], tr(f"energy.{key}"))
        self.time_fig.xaxis.axis_label = tr("plot.training_step")
        self.time_fig.title.text = tr("plot.energy_time")
        self.bar_hover.tooltips = self._tooltips()
        self.dram_toggle.label = tr("plot.include_dram")
        labels = self._phase_labels()
        if labels != self.phase_labels:
            self.phase_labels = labels
            set_data(self.bar_source, dict(self.bar_source.data, phase=labels))
            self.bar_fig.x_range.factors = labels

    def _update(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        pj = {part: [0.0] * len(PHASES) for part in ENERGY_PARTS}
        for op in snap.report.ops if snap.report else []:
            i = PHASES.index(op.phase)
            for part, value in op.stats.energy_pj.items():
                if part in pj:
                    pj[part][i] += value
        shown = [k for k in ENERGY_PARTS if k != "dram" or self.include_dram]
        stacked = max(sum(pj[k][i] for k in shown) for i in range(len(PHASES)))
        unit = _energy_unit(stacked) if stacked > 0 else self.unit
        if unit != self.unit:
            self.unit = unit
            self.bar_hover.tooltips = self._tooltips()
        tr = self.tr
        self.bar_fig.yaxis.axis_label = tr("plot.energy_axis", unit=unit[0])
        set_data(self.bar_source, {"phase": self.phase_labels,
                                   **{k: [v / unit[1] if k in shown else 0.0 for v in pj[k]] for k in ENERGY_PARTS}})
        if snap.report:
            total = snap.report.energy_pj
            t_name, t_scale = _energy_unit(total)
            dram = sum(pj["dram"]) / total if total else 0.0
            self.bar_fig.title.text = (tr("plot.energy_step", step=snap.step, total=f"{total / t_scale:.3g}",
                                          unit=t_name, dram=f"{dram:.0%}")
                                       + ("" if self.include_dram else tr("plot.not_drawn")))
        else:
            self.bar_fig.title.text = tr("plot.energy_last_none")
        x, y = _series(snap.history, "energy_pj")
        t_name, t_scale = _energy_unit(float(y.max())) if len(y) else unit
        self.time_fig.yaxis.axis_label = tr("plot.energy_axis", unit=t_name)
        set_series(self.time_source, x, y / t_scale, full=self._full_refresh_due())
        self.time_hover.tooltips = [(tr("plot.step"), "@x"), (tr("plot.energy_tip"), f"@y{{0.000}} {t_name}")]


class RooflinePlot(_LiveView):
    """The chip's roofline (log-log) with every GEMM of the last step as a point.

    Roof: min(R·C, intensity × DRAM bytes per cycle) MACs per cycle. A GEMM with no DRAM
    traffic has infinite intensity; it is drawn at the right edge of the plot (its tooltip
    says so) rather than dropped.
    """

    highlight_op = param.Integer(default=None, allow_None=True,
                                 doc="index into the last step's operations of the one to highlight")

    def _build(self):
        self.roof_source = ColumnDataSource({"x": [], "y": []})
        self.point_source = ColumnDataSource(self._point_data([], 1.0, self.lang))
        self.highlight_source = ColumnDataSource({"x": [], "y": []})
        self.fig = p = _figure("Roofline", "arithmetic intensity (MACs per DRAM byte)",
                               "throughput (MACs per cycle)", height=400, x_axis_type="log", y_axis_type="log",
                               x_range=Range1d(0.1, 10), y_range=Range1d(1, 100))
        p.line("x", "y", source=self.roof_source, color=pal.INK, line_width=3, legend_label="roof (attainable)")
        self._roof_items = _items(p, "roof (attainable)")
        self.ridge = Span(location=1.0, dimension="height", line_color="#888888", line_dash="dotted", line_width=1.5)
        p.add_layout(self.ridge)
        # forward GEMMs as large circles, backward as smaller triangles on top: a backward GEMM of
        # the same shape as a forward one lands on the same spot and both stay visible
        points = p.scatter("x", "y", source=self.point_source, size="size", marker="marker", fill_color="color",
                           line_color=pal.INK, line_width=1, fill_alpha=0.9, legend_field="direction")
        p.scatter("x", "y", source=self.highlight_source, size=26, fill_color=None, line_color=pal.HIGHLIGHT,
                  line_width=3, legend_label="animated now")
        self._now_items = _items(p, "animated now")
        self.hover = HoverTool(renderers=[points])
        p.add_tools(self.hover)
        self.peak_label = Label(x=1, y=1, text="", text_font_size="10pt", text_color=pal.INK, y_offset=6,
                                text_align="right", x_offset=-4)
        self.bw_label = Label(x=1, y=1, text="", text_font_size="10pt", text_color=pal.INK, x_offset=6,
                              y_offset=-22, text_align="left")
        p.add_layout(self.peak_label)
        p.add_layout(self.bw_label)
        _style_legend(p, "bottom_right")
        self._figures = [p]
        self.note = pn.pane.Markdown("", sizing_mode="stretch_width", styles={"font-size": "11pt"}, margin=(0, 12))
        self.param.watch(lambda e: self._schedule(), "highlight_op")
        return pn.Column(_pane(p), self.note, sizing_mode="stretch_width")

    def _relabel(self) -> None:
        tr = self.tr
        _axes(self.fig, tr("plot.intensity_axis"), tr("plot.throughput_axis"))
        _relabel_items(self._roof_items, tr("plot.roof"))
        _relabel_items(self._now_items, tr("plot.animated_now"))
        per_cycle = tr("plot.macs_per_cycle")
        self.hover.tooltips = [
            (tr("plot.gemm"), "@label"), (tr("plot.layer"), "@layer"), (tr("plot.phase_tip"), "@phase"),
            (tr("plot.shape"), "@shape"), (tr("plot.intensity"), "@intensity"),
            (tr("plot.achieved"), f"@y{{0.00}} {per_cycle}"),
            (tr("plot.attainable"), f"@attainable{{0.00}} {per_cycle}"),
            (tr("plot.utilisation"), "@util{0.0%}")]
        self.note.object = tr("plot.roofline_note")
        if self.snapshot is None:
            self.fig.title.text = tr("plot.roofline")

    @staticmethod
    def _point_data(items, right_edge: float, lang: str = "en") -> dict:
        """items: (index into ops, op) of the GEMMs."""
        data = {k: [] for k in ("index", "x", "y", "intensity", "label", "layer", "phase", "shape", "attainable",
                                "util", "direction", "color", "marker", "size")}
        items = sorted(items, key=lambda item: not _forward(item[1]))  # forward first, drawn below
        for index, op in items:
            s = op.stats
            finite = math.isfinite(s.arithmetic_intensity)
            data["index"].append(index)
            data["x"].append(s.arithmetic_intensity if finite else right_edge)
            data["y"].append(s.achieved_macs_per_cycle)
            data["intensity"].append(t("plot.intensity_value", lang, value=f"{s.arithmetic_intensity:.3g}")
                                     if finite else t("plot.intensity_inf", lang))
            data["label"].append(f"{op.name}")
            data["layer"].append(op.layer)
            data["phase"].append(t(f"phase.{op.phase}", lang) if op.phase in PHASES else op.phase)
            data["shape"].append(f"{s.m}×{s.k} · {s.k}×{s.n}")
            data["attainable"].append(s.attainable_macs_per_cycle)
            data["util"].append(s.utilization)
            data["direction"].append(t(f"direction.{_direction(op.phase)}", lang))
            data["color"].append(DIRECTION_COLORS[_direction(op.phase)])
            data["marker"].append("circle" if _forward(op) else "triangle")
            data["size"].append(16 if _forward(op) else 11)
        return data

    def _update(self) -> None:
        snap = self.snapshot
        chip = self.session.chip_config()
        peak, bw = float(chip.pes), float(chip.dram_bytes_per_cycle)
        ridge = peak / bw
        items = [(i, op) for i, op in enumerate(snap.report.ops if snap and snap.report else []) if op.is_gemm]
        finite = [op.stats.arithmetic_intensity for _, op in items if math.isfinite(op.stats.arithmetic_intensity)]
        lo = min([ridge, *finite]) / 8
        hi = max([ridge, *finite]) * 8
        xs = np.array([lo, ridge, hi])
        set_data(self.roof_source, {"x": xs, "y": np.minimum(peak, xs * bw)})
        self.ridge.location = ridge
        set_data(self.point_source, self._point_data(items, hi, self.lang))
        achieved = [op.stats.achieved_macs_per_cycle for _, op in items]
        _set_range(self.fig.x_range, lo, hi)
        _set_range(self.fig.y_range, min([lo * bw, *achieved]) / 2, peak * 3)
        hl = [(x, y) for i, x, y in zip(self.point_source.data["index"], self.point_source.data["x"],
                                         self.point_source.data["y"]) if i == self.highlight_op]
        set_data(self.highlight_source, {"x": [h[0] for h in hl], "y": [h[1] for h in hl]})
        tr = self.tr
        self.peak_label.update(x=hi, y=peak, text=tr("plot.peak", pes=chip.pes))
        self.bw_label.update(x=lo * 1.3, y=lo * 1.3 * bw, text=tr("plot.dram_roof", bw=f"{bw:g}"))
        self.fig.title.text = tr("plot.roofline_title", rows=chip.rows, cols=chip.cols, dataflow=chip.dataflow,
                                 ridge=f"{ridge:.3g}")


# ----------------------------------------------------------------------------------------------
def _zero_gradient(lang: str) -> str:
    return f"<p style='margin:6px 0; color:#555'>{t('plot.zero_gradient', lang)}</p>"


class DescentPlot(_LiveView):
    """Gradient descent on the loss surface around the current weights, and one weight's update
    written out with the step's numbers.

    The surface (`session.loss_surface()`) costs resolution² forward passes, so it is recomputed
    at most every `refresh_s` seconds while training (the last change is always drawn, late),
    and at once by `refresh()` or the button.
    """

    refresh_s = param.Number(default=2.0, bounds=(0.0, None), doc="least time between two loss surfaces")
    resolution = param.Integer(default=21, bounds=(5, 61), doc="grid points per direction")
    layer = param.Integer(default=1, bounds=(1, None), doc="layer of the weight written out (1-based)")
    row = param.Integer(default=0, bounds=(0, None), doc="i: the weight's input unit")
    col = param.Integer(default=0, bounds=(0, None), doc="j: the weight's output unit")

    def __init__(self, session: TrainingSession, **params):
        self._plane = None
        self._drawn_plane = None
        self._plane_lock = threading.Lock()
        self._throttle = _Throttle(params.get("refresh_s", 2.0), self._compute, self._served)
        super().__init__(session, **params)

    def _build(self):
        self.image_source = ColumnDataSource({"image": [np.zeros((2, 2))], "x": [-1.0], "y": [-1.0],
                                              "dw": [2.0], "dh": [2.0]})
        self.path_source = ColumnDataSource({"x": [], "y": [], "age": []})
        self.current_source = ColumnDataSource({"x": [0.0], "y": [0.0]})
        self.mapper = LogColorMapper(palette=Cividis256, low=1e-3, high=1.0)
        self.fig = p = _figure("Loss around the current weights", "direction 1", "direction 2", height=440,
                               x_range=Range1d(-1, 1), y_range=Range1d(-1, 1))
        img = p.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self.image_source,
                      color_mapper=self.mapper)
        self.contours = p.contour([0, 1], [0, 1], np.array([[1.0, 2.0], [2.0, 3.0]]), [1.5], line_color="white",
                                  line_alpha=0.55, line_width=1, fill_color=None)
        p.line("x", "y", source=self.path_source, color=pal.VERMILLION, line_width=2.5, legend_label="path of the "
               "weights")
        p.scatter("x", "y", source=self.path_source, size=6, fill_color=pal.VERMILLION, line_color="white",
                  line_width=1, legend_label="path of the weights")
        p.scatter("x", "y", source=self.current_source, marker="star", size=22, fill_color=pal.YELLOW,
                  line_color=pal.INK, line_width=1.5, legend_label="current weights")
        self._legend_items = {"plot.path": _items(p, "path of the weights"),
                              "plot.current_weights": _items(p, "current weights")}
        self.hover = HoverTool(renderers=[img])
        p.add_tools(self.hover)
        self.color_bar = ColorBar(color_mapper=self.mapper, title="loss", width=12, title_text_font_size="10pt",
                                  major_label_text_font_size="9pt")
        p.add_layout(self.color_bar, "right")
        p.grid.visible = False
        _style_legend(p)
        _legend_outside(p, "below")
        self._figures = [p]
        self.recompute = pn.widgets.Button(color="primary", width=170)
        self.recompute.on_click(lambda e: self.refresh())
        self.surface_note = pn.pane.Markdown("", sizing_mode="stretch_width", styles={"font-size": "10pt"},
                                             margin=(0, 10))
        # the weight written out
        self.layer_select = pn.widgets.Select(options={"layer 1": 1}, value=self.layer, width=150)
        self.row_input = pn.widgets.IntInput(value=self.row, start=0, width=110)
        self.col_input = pn.widgets.IntInput(value=self.col, start=0, width=110)
        for widget, name in ((self.layer_select, "layer"), (self.row_input, "row"), (self.col_input, "col")):
            widget.param.watch(partial(self._widget_changed, name), "value")
        self.update_pane = pn.pane.HTML("", sizing_mode="stretch_width", styles={"font-size": "12pt"})
        self.param.watch(lambda e: self._schedule(), ["layer", "row", "col"])
        self.param.watch(lambda e: setattr(self._throttle, "interval", e.new), "refresh_s")
        self.update_heading = pn.pane.Markdown("", margin=(0, 10))
        card = pn.Column(
            self.update_heading,
            pn.Row(self.layer_select, self.row_input, self.col_input),
            self.update_pane, sizing_mode="stretch_width", styles={"border-left": f"3px solid {pal.BLUE}"})
        left = pn.Column(_pane(p), pn.Row(self.recompute, self.surface_note, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")
        return pn.Row(left, card, sizing_mode="stretch_width")

    def _relabel(self) -> None:
        tr = self.tr
        for key, items in self._legend_items.items():
            _relabel_items(items, tr(key))
        self.hover.tooltips = [(tr("plot.loss_tip"), "@image{0.0000}"), (tr("plot.direction", i=1), "$x{0.000}"),
                               (tr("plot.direction", i=2), "$y{0.000}")]
        self.color_bar.title = tr("plot.loss_tip")
        self.recompute.label = tr("plot.recompute")
        self.layer_select.label = tr("plot.weight_layer")
        self.row_input.label = tr("plot.row_input")
        self.col_input.label = tr("plot.col_input")
        self.update_heading.object = tr("plot.update_heading")
        if self._drawn_plane is None:
            _axes(self.fig, tr("plot.direction", i=1), tr("plot.direction", i=2))
            self.fig.title.text = tr("plot.descent")
        else:
            self._draw_plane(*self._drawn_plane)

    def _widget_changed(self, name: str, event) -> None:
        if event.new is not None and getattr(self, name) != event.new:
            setattr(self, name, event.new)

    def _start(self) -> None:
        self._throttle()

    def _on_snapshot(self, *events) -> None:
        self._throttle()  # schedules a redraw itself when it computes a surface
        self._schedule()  # the written-out update is cheap: redraw it every snapshot

    def refresh(self) -> None:
        """Recompute the loss surface now."""
        self._throttle.now()

    def _compute(self) -> None:
        if self.session.snapshot is None:
            return
        plane = self.session.loss_surface(self.resolution)
        with self._plane_lock:
            self._plane = (self.session.snapshot.step, plane)
        self._schedule()

    def dispose(self) -> None:
        self._throttle.close()
        super().dispose()

    def _update(self) -> None:
        with self._plane_lock:
            plane = self._plane
        if plane is not None and plane is not self._drawn_plane:
            self._draw_plane(*plane)
            self._drawn_plane = plane
        self._draw_update()

    def _draw_plane(self, step: int, plane) -> None:
        a, b, loss = plane.alpha, plane.beta, np.asarray(plane.loss, float)
        finite = loss[np.isfinite(loss)]
        low = max(float(finite.min()), 1e-9) if finite.size else 1e-3
        high = max(float(finite.max()), low * 1.0001) if finite.size else 1.0
        da, db = a[1] - a[0], b[1] - b[0]
        set_data(self.image_source, {"image": [loss], "x": [a[0] - da / 2], "y": [b[0] - db / 2],
                                     "dw": [a[-1] - a[0] + da], "dh": [b[-1] - b[0] + db]})
        self.mapper.update(low=low, high=high)
        levels = np.geomspace(low, high, 10)[1:-1]
        self.contours.set_data(contour_data(a, b, np.where(np.isfinite(loss), loss, high), levels,
                                            want_fill=False, want_line=True))
        path = np.asarray(plane.path)
        n = len(path)
        set_data(self.path_source, {"x": path[:, 0], "y": path[:, 1], "age": np.arange(n)[::-1]})
        set_data(self.current_source, {"x": path[-1:, 0], "y": path[-1:, 1]})
        _set_range(self.fig.x_range, a[0] - da / 2, a[-1] + da / 2)
        _set_range(self.fig.y_range, b[0] - db / 2, b[-1] + db / 2)
        e1, e2 = plane.explained
        tr = self.tr
        self.fig.xaxis.axis_label = tr("plot.direction_share", i=1, share=_share(e1))
        self.fig.yaxis.axis_label = tr("plot.direction_share", i=2, share=_share(e2))
        self.fig.title.text = tr("plot.descent_step", step=step)
        moved = "" if e1 + e2 > 0 else tr("plot.not_moved")
        self.surface_note.object = tr("plot.surface_note", n=n, moved=moved)

    def _draw_update(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        n_layers = len(snap.weights)
        options = {self.tr("plot.layer_option", layer=k + 1, rows=w.shape[0], cols=w.shape[1]): k + 1
                   for k, w in enumerate(snap.weights)}
        if self.layer_select.options != options:
            self.layer_select.options = options
        layer = min(max(self.layer, 1), n_layers)
        if self.layer_select.value != layer:
            self.layer_select.value = layer
        rows, cols = snap.weights[layer - 1].shape
        i, j = min(max(self.row, 0), rows - 1), min(max(self.col, 0), cols - 1)
        if self.row_input.end != rows - 1:
            self.row_input.end = rows - 1
        if self.col_input.end != cols - 1:
            self.col_input.end = cols - 1
        self.update_pane.object = self.update_html(snap, layer, i, j, getattr(
            getattr(self.session.trainer, "optimizer", None), "momentum", 0.9), lang=self.lang)

    @staticmethod
    def update_html(snap, layer: int, i: int, j: int, momentum: float = 0.9, lang: str = "en") -> str:
        """The optimizer's rule for weight W[i, j] of `layer` with the last step's numbers."""
        where = t("plot.where", lang, layer=layer, i=i, j=j)
        colon = "：" if lang == "zh" else ": "
        if snap.update is None:
            return f"<p><b>{where}</b>{colon}{t('plot.no_update', lang)}</p>"
        before, grads = snap.update
        w_old = float(before[2 * (layer - 1)][i, j])
        g = float(grads[2 * (layer - 1)][i, j])
        w_new = float(snap.weights[layer - 1][i, j])
        lr = float(snap.lr)
        head = (f"<p style='margin:4px 0'><b>"
                f"{t('plot.update_head', lang, where=where, step=snap.step, optimizer=snap.optimizer)}</b></p>")
        eq = "<div style='font-family: \"DejaVu Sans Mono\", Menlo, monospace; font-size: 12.5pt; " \
             "line-height: 1.7; margin: 6px 0'>"
        if snap.optimizer == "sgd":
            d = w_old - lr * g
            body = (f"{eq}W<sub>new</sub> = W<sub>old</sub> − α·∂L/∂W<br>"
                    f"&emsp;&emsp;= {fmt(w_old)} − {_factor(lr)}·{_factor(g)}<br>"
                    f"&emsp;&emsp;= <b>{fmt(d)}</b></div>"
                    f"<p style='margin:4px 0'>{t('plot.sgd_words', lang, lr=fmt(lr), stored=fmt(w_new))}</p>")
            return head + body + (_zero_gradient(lang) if g == 0 else "")
        step = w_new - w_old
        plain = -lr * g
        rows = [("W<sub>old</sub>", fmt(w_old)), ("∂L/∂W", fmt(g)), (t("plot.row_lr", lang), fmt(lr)),
                (t("plot.row_new", lang), f"<b>{fmt(w_new)}</b>"),
                (t("plot.row_step", lang), fmt(step)),
                (t("plot.row_plain", lang), fmt(plain))]
        if snap.optimizer == "momentum":
            rule = (f"{eq}v = μ·v<sub>prev</sub> − α·∂L/∂W &emsp;(μ = {fmt(momentum)})<br>"
                    f"W<sub>new</sub> = W<sub>old</sub> + v</div>")
            words = t("plot.momentum_words", lang)
        else:
            rule = (f"{eq}m = β₁·m + (1−β₁)·∂L/∂W, &ensp;v = β₂·v + (1−β₂)·(∂L/∂W)²<br>"
                    f"W<sub>new</sub> = W<sub>old</sub> − α·m̂ / (√v̂ + ε)</div>")
            words = t("plot.adam_words", lang)
        table = "".join(f"<tr><td style='padding:1px 12px 1px 0'>{k}</td><td style='text-align:right;"
                        f"font-family: monospace'>{v}</td></tr>" for k, v in rows)
        ratio = t("plot.ratio", lang, ratio=fmt(step / plain, 3)) if plain != 0 else ""
        return (head + rule + f"<table style='border-collapse:collapse'>{table}</table>"
                f"<p style='margin:6px 0'>{words}{ratio}</p>" + (_zero_gradient(lang) if g == 0 else ""))


# ----------------------------------------------------------------------------------------------
class BoundaryPlot(_LiveView):
    """For a 2-D dataset: P(class 1) over the input plane with the train (filled) and test
    (outlined) points on top; for other datasets a short note. Recomputed at most every
    `refresh_s` seconds (the last change is always drawn, late)."""

    refresh_s = param.Number(default=1.0, bounds=(0.0, None), doc="least time between two boundaries")
    resolution = param.Integer(default=80, bounds=(10, 300), doc="grid points per axis")

    def __init__(self, session: TrainingSession, **params):
        self._result = None
        self._drawn_raw = None
        self._result_lock = threading.Lock()
        self._throttle = _Throttle(params.get("refresh_s", 1.0), self._compute, self._served)
        super().__init__(session, **params)

    def _build(self):
        self.image_source = ColumnDataSource({"image": [np.full((2, 2), 0.5)], "x": [-1.0], "y": [-1.0],
                                              "dw": [2.0], "dh": [2.0]})
        self.train_source = ColumnDataSource({"x": [], "y": [], "cls": [], "color": []})
        self.test_source = ColumnDataSource({"x": [], "y": [], "cls": [], "color": []})
        self.mapper = LinearColorMapper(palette=_diverging(CLASS_COLORS[0], CLASS_COLORS[1]), low=0, high=1)
        self.fig = p = _figure("Decision boundary", "feature x₁", "feature x₂", height=440,
                               x_range=Range1d(-1, 1), y_range=Range1d(-1, 1))
        img = p.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self.image_source,
                      color_mapper=self.mapper, alpha=0.7)
        self.boundary = p.contour([0, 1], [0, 1], np.array([[0.0, 1.0], [0.0, 1.0]]), [0.5], line_color=pal.INK,
                                  line_width=2, line_dash="dashed", fill_color=None)
        p.scatter("x", "y", source=self.train_source, size=7, fill_color="color", line_color=pal.INK,
                  line_width=0.6)
        p.scatter("x", "y", source=self.test_source, size=8, fill_color="white", fill_alpha=0.85,
                  line_color="color", line_width=2.2)
        # legend-only glyphs in grey: the class is told by colour (see the colour bar), the split by fill
        # (one NaN point each: never drawn in the plot, but the legend needs a row to draw its glyph)
        p.scatter([math.nan], [math.nan], size=7, fill_color="#777777", line_color=pal.INK, line_width=0.6,
                  legend_label="train (filled)")
        p.scatter([math.nan], [math.nan], size=8, fill_color="white", line_color="#777777", line_width=2.2,
                  legend_label="test (outlined)")
        self.hover = HoverTool(renderers=[img])
        p.add_tools(self.hover)
        self.color_bar = ColorBar(color_mapper=self.mapper, title="P(class 1)", width=12,
                                  title_text_font_size="10pt", major_label_text_font_size="9pt")
        p.add_layout(self.color_bar, "right")
        p.grid.visible = False
        _style_legend(p)
        line_item = LegendItem(label="P = 0.5 (the boundary)", renderers=[self.boundary.line_renderer])
        p.legend[0].items.append(line_item)
        _legend_outside(p, "below")
        self._legend_items = {"plot.train_filled": _items(p, "train (filled)"),
                              "plot.test_outlined": _items(p, "test (outlined)"), "plot.boundary_line": [line_item]}
        self._figures = [p]
        self.note = pn.pane.Alert(BOUNDARY_NOTE, alert_type="info", visible=False, sizing_mode="stretch_width")
        # visibility is toggled on a wrapping Column: a Bokeh pane's own `visible` is synced back
        # from its figure and does not reliably return to True
        self.pane = pn.Column(_pane(p), sizing_mode="stretch_width", margin=0)
        return pn.Column(self.note, self.pane, sizing_mode="stretch_width")

    def _relabel(self) -> None:
        tr = self.tr
        _axes(self.fig, tr("plot.feature", sub="₁"), tr("plot.feature", sub="₂"))
        for key, items in self._legend_items.items():
            _relabel_items(items, tr(key))
        p1 = tr("plot.p_class1")
        self.hover.tooltips = [(p1, "@image{0.000}"), ("x₁", "$x{0.00}"), ("x₂", "$y{0.00}")]
        self.color_bar.title = p1
        if self._result is None:
            self.fig.title.text = tr("plot.boundary")
            self.note.object = tr("plot.boundary_note")

    def _start(self) -> None:
        self._throttle()

    def _on_snapshot(self, *events) -> None:
        self._throttle()

    def refresh(self) -> None:
        """Recompute the boundary now."""
        self._throttle.now()

    def dispose(self) -> None:
        self._throttle.close()
        super().dispose()

    def _compute(self) -> None:
        s = self.session
        with s.lock:
            raw = s.trainer.raw_data
            step = s.trainer.step_count
        if raw.name not in TOYS or raw.x_train.shape[1] != 2:
            result = None
        else:
            pts = np.concatenate([raw.x_train, raw.x_test])
            lo, hi = pts.min(axis=0), pts.max(axis=0)
            pad = 0.08 * (hi - lo)
            lo, hi = lo - pad, hi + pad
            n = self.resolution
            gx, gy = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
            xx, yy = np.meshgrid(gx, gy)
            probs = s.predict(np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32))
            p1 = probs[:, 1] if probs.shape[1] > 1 else probs[:, 0]
            result = {"raw": raw, "step": step, "gx": gx, "gy": gy, "p1": p1.reshape(n, n)}
        with self._result_lock:
            self._result = (raw.name, result)
        self._schedule()

    def _update(self) -> None:
        with self._result_lock:
            if self._result is None:
                return
            name, r = self._result
        if r is None:
            self.note.visible, self.pane.visible = True, False
            note = self.tr("plot.boundary_note")
            self.note.object = note + self.tr("plot.boundary_more_inputs", name=name) if name != "mnist" else note
            return
        self.note.visible, self.pane.visible = False, True
        gx, gy, p1, raw = r["gx"], r["gy"], r["p1"], r["raw"]
        dx, dy = gx[1] - gx[0], gy[1] - gy[0]
        set_data(self.image_source, {"image": [p1], "x": [gx[0] - dx / 2], "y": [gy[0] - dy / 2],
                                     "dw": [gx[-1] - gx[0] + dx], "dh": [gy[-1] - gy[0] + dy]})
        self.boundary.set_data(contour_data(gx, gy, p1, [0.5], want_fill=False, want_line=True))
        if self._drawn_raw is not raw:
            self._drawn_raw = raw
            for source, x, y in ((self.train_source, raw.x_train, raw.y_train),
                                 (self.test_source, raw.x_test, raw.y_test)):
                source.data = {"x": x[:, 0], "y": x[:, 1], "cls": y.astype(int),
                               "color": [_class_color(int(c)) for c in y]}
            _set_range(self.fig.x_range, gx[0] - dx / 2, gx[-1] + dx / 2)
            _set_range(self.fig.y_range, gy[0] - dy / 2, gy[-1] + dy / 2)
        snap = self.snapshot
        acc = (self.tr("plot.boundary_acc", acc=f"{snap.test_accuracy:.0%}")
               if snap and math.isfinite(snap.test_accuracy) else "")
        self.fig.title.text = self.tr("plot.boundary_title", name=name, step=r["step"], acc=acc)


def _rename_tabs(tabs: pn.Tabs, names: list[str]) -> None:
    """Give the tabs new titles in place, without re-rendering what they show.

    Panel keeps a tab's Bokeh TabPanel while its object is unchanged, and the browser redraws the
    tab headers only when the Tabs model's `tabs` list changes: so each rendered Tabs model gets
    new TabPanels (same children, so the plots' views are kept) with the new titles.
    """
    from bokeh.models import TabPanel

    tabs._names = list(names)
    for ref, (model, _parent) in list(getattr(tabs, "_models", {}).items()):
        panels = getattr(tabs, "_panels", {}).get(ref, {})
        new, changed = [], False
        for obj, name, old in zip(tabs.objects, names, model.tabs):
            if old.title == name:
                new.append(old)
                continue
            panel = TabPanel(title=name, name=old.name, child=old.child, closable=old.closable)
            if panels.get(id(obj)) is old:
                panels[id(obj)] = panel
            new.append(panel)
            changed = True
        if changed:
            model.tabs = new


def _share(x: float) -> str:
    """A share as a percentage with enough digits that a small one does not read 0%."""
    return f"{x:.0%}" if x >= 0.095 or x == 0 else f"{x:.1%}" if x >= 0.001 else "<0.1%"


def _class_color(c: int) -> str:
    return CLASS_COLORS[c] if c < len(CLASS_COLORS) else pal.OKABE_ITO[(c + 3) % len(pal.OKABE_ITO)]


# ----------------------------------------------------------------------------------------------
class LivePlots(pn.viewable.Viewer):
    """The live plots of a session: the loss (`loss`, shown on the first screen beside the chip) and,
    in tabs (`tabs()`), the decision boundary, gradient descent, utilisation, energy and the roofline.

    A tab's plot is built when the tab first opens (or when code first asks for it, as in
    `plots.roofline`): a page starts with the loss plot only, so it opens sooner."""

    session = param.ClassSelector(class_=TrainingSession, constant=True)
    highlight_op = param.Integer(default=None, allow_None=True, doc="passed to the roofline")
    lang = param.Selector(default="en", objects=list(LANGUAGES), doc="language of every plot and tab")

    # (tab's i18n key, attribute, view class) in tab order; the last tab, the design space, is the dashboard's
    TABS = (("tab.boundary", "boundary", BoundaryPlot), ("tab.descent", "descent", DescentPlot),
            ("tab.utilization", "utilization", UtilizationPlot), ("tab.energy", "energy", EnergyPlot),
            ("tab.roofline", "roofline", RooflinePlot))
    TAB_KEYS = tuple(key for key, _, _ in TABS) + ("tab.design",)

    def __init__(self, session: TrainingSession, **params):
        super().__init__(session=session, **params)
        self.loss = LossPlot(session, lang=self.lang, compact=True)
        self._built: dict[str, _LiveView] = {}  # attribute -> the tab's view, once built
        self._slots = [pn.Column(sizing_mode="stretch_width", min_height=60) for _ in self.TABS]
        self.param.watch(self._on_highlight, "highlight_op")
        # the design-space tab is built by the dashboard when first opened (a sweep view: widgets, a Dask client)
        self.design_slot = pn.Column(sizing_mode="stretch_width", min_height=60)
        self.on_design_open = None  # set by the dashboard: called once, when the tab first opens
        self._tabs = pn.Tabs(*zip(self.tab_names(), [*self._slots, self.design_slot]), dynamic=True,
                             sizing_mode="stretch_width", tabs_location="above")
        self._tabs.param.watch(self._on_tab, "active")
        self.param.watch(self._on_lang, "lang")
        if served_document() is not None:
            pn.state.on_session_destroyed(lambda ctx: self.dispose())

    def view(self, name: str) -> _LiveView:
        """The tab's view called `name` ("boundary", "roofline", ...), built on first use."""
        if name not in self._built:
            i = [attr for _, attr, _ in self.TABS].index(name)
            cls = self.TABS[i][2]
            extra = {"highlight_op": self.highlight_op} if name == "roofline" else {}
            view = cls(self.session, lang=self.lang, shown=self._tabs.active == i, **extra)
            self._built[name] = view
            self._slots[i].objects = [view]
        return self._built[name]

    boundary = property(lambda self: self.view("boundary"))
    descent = property(lambda self: self.view("descent"))
    utilization = property(lambda self: self.view("utilization"))
    energy = property(lambda self: self.view("energy"))
    roofline = property(lambda self: self.view("roofline"))

    @property
    def views(self) -> tuple:
        """Every view, the loss and each tab's (building those not built yet)."""
        return (self.loss, *(self.view(attr) for _, attr, _ in self.TABS))

    def tabs(self):
        """The tabs, their open tab's plot built (the others' when they open)."""
        self._on_tab()
        return self._tabs

    def __panel__(self):
        return pn.Column(self.loss, self.tabs(), sizing_mode="stretch_width")

    def _on_highlight(self, event) -> None:
        if "roofline" in self._built:
            self._built["roofline"].highlight_op = event.new

    def _on_tab(self, *_):
        active = self._tabs.active
        if active < len(self.TABS):
            self.view(self.TABS[active][1])
        for i, (_, attr, _) in enumerate(self.TABS):  # only the open tab's view redraws as training goes on
            if attr in self._built:
                self._built[attr].shown = i == active
        if active == len(self.TABS) and not self.design_slot.objects and self.on_design_open:
            self.on_design_open()

    def tab_names(self) -> list[str]:
        return [t(key, self.lang) for key in self.TAB_KEYS]

    def _on_lang(self, event) -> None:
        for view in (self.loss, *self._built.values()):
            view.lang = event.new
        _rename_tabs(self._tabs, self.tab_names())

    def dispose(self) -> None:
        for v in (self.loss, *self._built.values()):
            v.dispose()
