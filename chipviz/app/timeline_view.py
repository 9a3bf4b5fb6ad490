"""StepTimeline: one training step as a bar of its operations, sized by cycles, with a playhead.

It answers at a glance "where does a training step spend its cycles?": each operation of the
newest step (chipviz.timeline lays them end to end) is a rectangle as wide as its cycles,
coloured by direction (forward, backward, update: `palette.DIRECTION_COLORS`), solid on the PE
array and pale on the vector unit. Operations too small to see are drawn `min_share` of the bar
wide, so every one can be hovered and clicked. A black line marks `cycle` of `current_op` (what
the PE array shows); clicking an operation sets `selected_op` (the dashboard watches it).

Cost: the bars are recomputed only when the step's shape (its operations and their cycles) or
the language changes, and `set_data` sends only changed columns; a new step of the same network
sends just the title. The playhead is one small source of its own, so moving it several times a
second sends one number.
"""
from __future__ import annotations

import html
import re

import panel as pn
import param
from bokeh.events import Tap
from bokeh.core.properties import value
from bokeh.models import ColumnDataSource, FixedTicker, HoverTool, LabelSet, Range1d
from bokeh.plotting import figure

from .. import settings
from ..i18n import t
from ..timeline import DEFAULT_MIN_SHARE, Timeline, timeline
from .. import palette as pal
from .document import Redraw
from .plots import FONT, _LiveView
from .sources import set_data

__all__ = ["StepTimeline"]

BAR_BOTTOM, BAR_TOP = 0.0, 1.0
PLAYHEAD_Y = (-0.12, 1.12)
MARKER_Y = 1.2
VECTOR_ALPHA = 0.4  # the vector unit's ops are pale, the PE array's solid
GEMM_ALPHA = 0.95
CHAR_SHARE = 0.006  # the share of the bar one label character needs (~7 px of a 1150 px bar)
_WIDE = re.compile(r"[\u2e80-\u9fff\uff00-\uffef]")  # CJK: about twice as wide as a Latin letter
_COLUMNS = ("index", "left", "right", "color", "alpha", "label", "label_x", "text_color", "name", "layer", "phase",
            "unit", "cycles", "when", "folds", "share")


def _cycles_text(c: float) -> str:
    c = int(round(c))
    return f"{c / 1e6:g}M" if c >= 1_000_000 and c % 100_000 == 0 else f"{c:,}"


def _share_text(x: float) -> str:
    """A share as a percentage with enough digits that a small one does not read 0%."""
    return f"{x:.0%}" if x >= 0.095 or x == 0 else f"{x:.1%}" if x >= 0.001 else "<0.1%"


def _label_width(text: str) -> int:
    return len(text) + len(_WIDE.findall(text))


class StepTimeline(_LiveView):
    """The newest step's operations end to end (sized by cycles) with a playhead; click one to select it.

    Inputs: `session`, `lang`, `current_op` (index into the newest step's operations, or None:
    no playhead), `cycle` (the cycle inside that operation, 0-based). Output: `selected_op`, the
    index of the operation last clicked (GEMM or vector op; clicking it again triggers it again).
    """

    current_op = param.Integer(default=None, allow_None=True, bounds=(0, None),
                               doc="index into the newest step's operations of the one shown (the playhead's "
                                   "operation), or None")
    cycle = param.Number(default=0, bounds=(0, None), doc="cycle inside current_op where the playhead is (0-based)")
    selected_op = param.Integer(default=None, allow_None=True, doc="output: the operation the user last clicked")
    min_share = param.Number(default=DEFAULT_MIN_SHARE, bounds=(0, 0.05),
                             doc="no operation is drawn narrower than this share of the bar")
    height = param.Integer(default=118, bounds=(80, 400), doc="height of the bar's figure in pixels")

    # ----- building -----
    def _build(self):
        self.timeline: Timeline = timeline([])
        self._drawn_key = None
        self.bar_source = ColumnDataSource({k: [] for k in _COLUMNS})
        self.playhead_source = ColumnDataSource({"x": [], "x0": [], "x1": []}, name="timeline-playhead")  # (tests)
        self.fig = p = figure(name="timeline", height=self.height, sizing_mode="stretch_width", min_width=280, tools="",
                              toolbar_location=None, x_range=Range1d(0, 1), y_range=Range1d(-0.18, 1.34))
        p.title.text_font_size = "12pt"
        p.title.text_font = FONT
        p.title.text_font_style = "bold"
        p.title.text_color = pal.INK
        p.outline_line_color = None
        p.grid.grid_line_color = None
        p.yaxis.visible = False
        p.min_border_left = p.min_border_right = 8
        p.min_border_top = 4
        self.ticker = FixedTicker(ticks=[])
        axis = p.xaxis[0]
        axis.ticker = self.ticker
        axis.major_label_text_font_size = "9pt"
        axis.axis_line_color = axis.major_tick_line_color = "#AAAAAA"
        axis.minor_tick_line_color = None
        bars = p.quad(left="left", right="right", bottom=BAR_BOTTOM, top=BAR_TOP, source=self.bar_source,
                      fill_color="color", fill_alpha="alpha", line_color="white", line_width=1,
                      hover_fill_alpha=1.0, hover_line_color=pal.INK, hover_line_width=2, hover_fill_color="color")
        p.add_layout(LabelSet(x="label_x", y=(BAR_BOTTOM + BAR_TOP) / 2, text="label", source=self.bar_source,
                              text_align="center", text_baseline="middle", text_font_size="9pt", text_font=value(FONT),
                              text_color="text_color"))
        # the operation shown on the PE array: outlined, with a line at the cycle shown
        p.quad(left="x0", right="x1", bottom=BAR_BOTTOM, top=BAR_TOP, source=self.playhead_source,
               fill_color=None, line_color=pal.INK, line_width=2)
        p.segment(x0="x", x1="x", y0=PLAYHEAD_Y[0], y1=PLAYHEAD_Y[1], source=self.playhead_source,
                  line_color=pal.INK, line_width=2)
        p.scatter(x="x", y=MARKER_Y, source=self.playhead_source, marker="inverted_triangle", size=11,
                  fill_color=pal.INK, line_color=pal.INK)
        self.hover = HoverTool(renderers=[bars], point_policy="follow_mouse", attachment="below")
        p.add_tools(self.hover)
        p.on_event(Tap, self._on_tap)
        self._figures = [p]
        self.legend = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        self._playhead_redraw = Redraw(self._draw_playhead, lambda: self._document())
        return pn.Column(pn.pane.Bokeh(p, sizing_mode="stretch_width"), self.legend, sizing_mode="stretch_width")

    def _start(self) -> None:
        # a chip setting changes which step is "the newest on this chip" (session.operations()) without a snapshot
        self._watchers.append(self.session.param.watch(self._safe_on_snapshot, list(settings.CHIP)))
        self.param.watch(lambda *_: self._schedule_playhead(), ["current_op", "cycle"])
        self.param.watch(lambda *_: self._schedule(), ["min_share"])
        self.param.watch(lambda e: setattr(self.fig, "height", e.new), ["height"])
        super()._start()

    # ----- words -----
    def _relabel(self) -> None:
        tr = self.tr
        self.hover.tooltips = [
            (tr("timeline.operation"), "@name"), (tr("plot.layer"), "@layer"), (tr("plot.phase_tip"), "@phase"),
            (tr("timeline.runs_on"), "@unit"), (tr("plot.cycles"), "@cycles"), (tr("timeline.when"), "@when"),
            (tr("plot.folds"), "@folds"), (tr("timeline.share"), "@share")]
        self.legend.object = self._legend_html()

    def _legend_html(self) -> str:
        tr = self.tr

        def swatch(color: str, text: str, alpha: float = GEMM_ALPHA) -> str:
            box = (f"display:inline-block;width:12px;height:12px;background:{color};opacity:{alpha};"
                   "vertical-align:middle")
            return (f"<span style='margin-right:12px;white-space:nowrap'><span style='{box}'></span> "
                    f"{html.escape(text)}</span>")

        line = (f"<span style='margin-right:12px;white-space:nowrap'><span style='display:inline-block;width:2px;"
                f"height:13px;background:{pal.INK};vertical-align:middle'></span> "
                f"{html.escape(tr('timeline.legend_playhead'))}</span>")
        hint = f"<span style='color:#666;white-space:nowrap'>{html.escape(tr('timeline.hint'))}</span>"
        parts = [swatch(pal.DIRECTION_COLORS[d], tr(f"direction.{d}")) for d in ("forward", "backward", "update")]
        parts.append(swatch("#777777", tr("timeline.legend_vector"), VECTOR_ALPHA))
        return f"<div style='font-size:11px;color:{pal.INK};font-family:{FONT}'>{''.join(parts)}{line}{hint}</div>"

    # ----- data -----
    def operations(self) -> list:
        """The newest step's operations on the chip the settings describe (none after a chip change)."""
        return self.session.operations()

    def _bar_data(self, tl: Timeline) -> dict:
        tr, lang = self.tr, self.lang
        data = {k: [] for k in _COLUMNS}
        span = tl.span or 1.0
        for s in tl.segments:
            if s.is_gemm:
                label = f"L{s.layer} {t(f'plot.gemm_phase.{s.phase}', lang)}"
                folds = tr("timeline.folds_value", folds=f"{s.folds:,}", per_fold=f"{s.cycles_per_fold:,}")
            else:
                label = f"L{s.layer} {s.name}" if s.layer else s.name
                folds = tr("timeline.no_folds")
            fits = (s.x1 - s.x0) / span >= CHAR_SHARE * (_label_width(label) + 1)
            data["index"].append(s.index)
            data["left"].append(s.x0)
            data["right"].append(s.x1)
            data["color"].append(pal.DIRECTION_COLORS.get(s.direction, pal.INK))
            data["alpha"].append(GEMM_ALPHA if s.is_gemm else VECTOR_ALPHA)
            data["label"].append(label if fits else "")
            data["label_x"].append((s.x0 + s.x1) / 2)
            data["text_color"].append("white" if s.is_gemm else pal.INK)
            data["name"].append(s.name)
            data["layer"].append(tr("timeline.layer_n", layer=s.layer) if s.layer else tr("timeline.whole_network"))
            data["phase"].append(t(f"phase.{s.phase}", lang))
            data["unit"].append(tr("timeline.pe_array") if s.is_gemm else tr("timeline.vector_unit"))
            data["cycles"].append(f"{s.cycles:,}")
            data["when"].append(f"{s.start:,} – {s.end:,}")
            data["folds"].append(folds)
            data["share"].append(_share_text(s.share))
        return data

    def _update(self) -> None:
        tl = timeline(self.operations(), self.min_share)
        key = (tl.key(), self.lang, self.min_share)
        if key != self._drawn_key:
            self._drawn_key = key
            set_data(self.bar_source, self._bar_data(tl))
            ticks = tl.ticks(6) if tl.segments else []
            self.ticker.ticks = [x for x, _ in ticks]
            self.fig.xaxis[0].major_label_overrides = {x: _cycles_text(c) for x, c in ticks}
            span = tl.span or 1.0
            pad = span * 0.006  # room for the playhead's marker at either end
            self.fig.x_range.update(start=-pad, end=span + pad, reset_start=-pad, reset_end=span + pad)
        self.timeline = tl
        self.fig.title.text = self._title(tl)
        self._draw_playhead()

    def _title(self, tl: Timeline) -> str:
        snap = self.snapshot
        if not tl.segments or snap is None:
            return self.tr("timeline.title") + self.tr("timeline.no_step")
        gemm = sum(s.share for s in tl.segments if s.is_gemm)
        return self.tr("timeline.title") + self.tr("timeline.title_step", step=snap.step, cycles=f"{tl.total:,}",
                                                   gemm=_share_text(gemm))

    # ----- the playhead -----
    def playhead(self) -> float | None:
        """The playhead's place in cycles from the step's start, or None when there is none."""
        i, tl = self.current_op, self.timeline
        if i is None or not 0 <= i < len(tl.segments):
            return None
        return tl.position(i, self.cycle)

    def _playhead_data(self) -> dict:
        i, tl = self.current_op, self.timeline
        if i is None or not 0 <= i < len(tl.segments):
            return {"x": [], "x0": [], "x1": []}
        s = tl.segments[i]
        return {"x": [tl.drawn(i, self.cycle)], "x0": [s.x0], "x1": [s.x1]}

    def _draw_playhead(self) -> None:
        set_data(self.playhead_source, self._playhead_data())

    def _schedule_playhead(self) -> None:
        if self._constructing:
            self._draw_playhead()
        else:
            self._playhead_redraw()

    # ----- clicks -----
    def _on_tap(self, event) -> None:
        """A click on the figure (a bokeh Tap event, in data coordinates): select the operation there."""
        if event.x is None or (event.y is not None and not PLAYHEAD_Y[0] <= event.y <= MARKER_Y + 0.1):
            return
        i = self.timeline.op_at_drawn(event.x)
        if i is None:
            return
        if self.selected_op == i:
            self.param.trigger("selected_op")  # the same op again: still a request to show it
        else:
            self.selected_op = i
