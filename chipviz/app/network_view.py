"""The network as TensorFlow Playground draws it, linked to the chip.

Layers are columns of unit circles, links are coloured by the weight's sign and drawn wider
and more opaque the larger |w| is. The layer and phase the chip is running (`current_op`, an
index into the last step's operations) are shaded in the forward or backward colour; clicking
a link selects that weight and says where it sits on the PE array (chipviz.weight_map);
a PE selected elsewhere (`selected_pe`, e.g. by the PE array view) marks the weights that PE
holds or uses in fold `fold`.

Everything is drawn from `session.snapshot`; updates change the ColumnDataSources of one
figure that is built once. The training worker publishes snapshots from its own thread, so
changes are handed to the page's thread (chipviz.app.document.Redraw); several snapshots
arriving before it runs are coalesced into one redraw of the latest.

Wide layers are drawn compactly so that a 784-64-64-10 network stays light: a layer of more
than `max_units` units shows `compact_units` of them (the first ones, so fold 1 of an array
that size is exactly what is drawn) and "⋮ N more"; between layers of which one is compact
only the `max_links` strongest of the drawn pairs are linked. Selected weights and the
weights of a selected PE are always drawn (their units are added to the compact layer).
"""
from __future__ import annotations


import numpy as np
import panel as pn
import param
from bokeh.events import Tap
from bokeh.models import ColumnDataSource, HoverTool, Range1d, Scatter, Segment, TapTool, Text
from bokeh.plotting import figure

from .. import palette
from ..i18n import LANGUAGES, STRINGS, join, render, t
from ..nn.phases import PHASE_TABLE
from ..session import TrainingSession
from .document import Redraw
from .sources import set_data
from ..weight_map import WeightMap, WeightPlacement

POSITIVE = palette.SKY_BLUE  # weight > 0 (Playground's blue, from the Okabe–Ito set)
NEGATIVE = palette.ORANGE  # weight < 0
# colour and arrow by a phase's direction (chipviz.nn.phases); PHASE_COLORS: the same per phase id
DIRECTION_COLORS = {"forward": palette.FORWARD, "backward": palette.BACKWARD, "update": palette.BLUISH_GREEN}
DIRECTION_ARROWS = {"forward": "→", "backward": "←", "update": "↻"}
PHASE_COLORS = {p.id: DIRECTION_COLORS[p.direction] for p in PHASE_TABLE.values()}
PE_HALO = palette.YELLOW  # links the selected PE holds or uses
SELECTED_HALO = palette.HIGHLIGHT  # the selected link
INPUT_FILL = "#F4F4F4"
DIM = 0.45  # opacity factor for links of layers the chip is not working on
MAX_WIDTH_PX = 6.0
TAP_TOLERANCE_PX = 5.0  # a click this close to a link selects it (the nearest one wins)


def layer_name(index: int, n_layers: int, lang: str = "en") -> str:
    """Name of unit layer `index` (0 = input, n_layers = output)."""
    if index == 0:
        return t("net.input", lang)
    return t("net.output", lang) if index == n_layers else t("net.hidden", lang, i=index)


# ----- where weights sit on the array, in words (the same sentences as weight_map's describe()) -----

def _wname(layer: int, i: int, j: int, gradient: bool = False) -> str:
    return f"{'dW' if gradient else 'W'}{layer}[{i}, {j}]"


def gemm_label(op, lang: str = "en") -> str:
    """A GEMM's short name, e.g. "L2 fwd Y = X·W" (weight_map.GemmOp.label) in `lang`."""
    return t("wm.gemm", lang, layer=op.layer, phase=t(f"wm.phase.{op.phase}", lang), name=op.name)


def _op_text(op, dataflow: str, lang: str) -> str:
    return t("wm.op", lang, label=gemm_label(op, lang), dataflow=dataflow)


def _fold_text(fold: int, folds: int, lang: str) -> str:
    return t("wm.fold", lang, i=fold + 1, n=folds)


def _list_text(layer: int, pairs, gradient: bool, lang: str, limit: int = 4) -> str:
    pairs = list(pairs)
    shown = join([_wname(layer, i, j, gradient) for i, j in pairs[:limit]], lang)
    return shown + (t("wm.more", lang, n=len(pairs)) if len(pairs) > limit else "")


def _sentence(text: str, note: str, lang: str) -> str:
    return t("wm.sentence", lang, text=text, note=note).strip()


def _note(answer, lang: str) -> str:
    """An answer's note (weight_map's Message) in `lang`; its English text if it carries none."""
    return render(answer.message, lang) if answer.message is not None else answer.note


def describe_pe(pe, wmap: WeightMap, lang: str = "en") -> str:
    """What a PE does with the layer's weights in a fold (weight_map.PEWeights.describe) in `lang`."""
    op = pe.op
    where = t("wm.pe_where", lang, row=pe.row, col=pe.col, fold=_fold_text(pe.fold, pe.folds, lang),
              op=_op_text(op, pe.dataflow, lang))
    if pe.role == "idle":
        return t("wm.pe_idle", lang, where=where, note=_note(pe, lang))
    text = t(f"wm.pe_{pe.role}", lang, where=where, list=_list_text(op.layer, pe.weights, pe.gradient, lang))
    return _sentence(text, _note(pe, lang), lang)


def describe_placement(placement: WeightPlacement, wmap: WeightMap, lang: str = "en") -> str:
    """Where a weight is on the array during a GEMM (weight_map.WeightPlacement.describe) in `lang`."""
    p, op = placement, placement.op
    plain = _wname(p.layer, p.i, p.j)
    if op is None:
        return placement.describe()
    if p.role == "unused":
        return t("wm.w_unused", lang, weight=plain, label=t("wm.quoted", lang, text=gemm_label(op, lang)),
                 op_layer=op.layer, layer=p.layer)
    name = _wname(p.layer, p.i, p.j, p.gradient)
    label = _op_text(op, p.dataflow, lang)
    if p.role in ("holds", "accumulates"):
        f, r, c = p.pes[0]
        text = t(f"wm.w_{p.role}", lang, weight=name, r=r, c=c, fold=_fold_text(f, p.folds, lang), op=label)
        return _sentence(text, _note(p, lang), lang)
    folds = p.fold_indices
    rows = sorted({r for _, r, _ in p.pes})
    cols = sorted({c for _, _, c in p.pes})
    fold_text = t("wm.folds_many" if len(folds) > 1 else "wm.folds_one", lang,
                  list=join([f + 1 for f in folds], lang), n=p.folds)
    if len(cols) == 1:
        line = t("wm.down_column", lang, col=cols[0], first=rows[0], last=rows[-1])
    else:
        line = t("wm.along_row", lang, row=rows[0], first=cols[0], last=cols[-1])
    text = t("wm.w_streams" if p.role == "streams" else "wm.w_sums", lang, weight=name, line=line,
             folds=fold_text, op=label)
    return _sentence(text, _note(p, lang), lang)


def shown_units(size: int, max_units: int, compact: int, pins=(), strength: np.ndarray | None = None) -> np.ndarray:
    """Units of a layer that are drawn: all of them up to `max_units`, else `compact` of them
    (the first, or the strongest when `strength` is given) plus the pinned ones, sorted."""
    if size <= max_units:
        return np.arange(size)
    if strength is None:
        base = np.arange(compact)
    else:
        base = np.sort(np.argsort(-np.asarray(strength), kind="stable")[:compact])
    extra = [p for p in dict.fromkeys(int(p) for p in pins) if 0 <= p < size and p not in set(base.tolist())]
    return np.array(sorted(set(base.tolist()) | set(extra[:compact])), dtype=np.int64)


def unit_y(count: int) -> np.ndarray:
    """Vertical positions of `count` units, top to bottom, centred on 0."""
    return (count - 1) / 2 - np.arange(count, dtype=float)


class NetworkView(pn.viewable.Viewer):
    """Playground-style drawing of the session's network, linked to the GEMM on the chip."""

    session = param.ClassSelector(class_=TrainingSession, doc="the training session drawn")
    current_op = param.Integer(default=0, bounds=(0, None),
                               doc="index into the last step's operations: the one on the chip now")
    fold = param.Integer(default=0, bounds=(0, None), doc="fold of the current GEMM (for selected_pe)")
    selected_weight = param.Tuple(default=None, length=3, allow_None=True,
                                  doc="(layer, i, j): W[layer][i, j], layer 1-based, set by clicking a link")
    selected_pe = param.Tuple(default=None, length=2, allow_None=True,
                              doc="(row, col) of a PE selected elsewhere; its weights are marked")
    max_units = param.Integer(default=16, bounds=(2, 64), doc="layers wider than this are drawn compactly")
    compact_units = param.Integer(default=8, bounds=(1, 32), doc="units drawn of a compact layer")
    max_links = param.Integer(default=40, bounds=(1, 4096),
                              doc="links drawn between two layers when one of them is compact (the strongest)")
    unit_choice = param.Selector(default="first", objects=["first", "strongest"],
                                 doc="which units a compact layer shows: the first ones (stable, like fold 1) "
                                     "or those with the largest total |w| (re-chosen at every update)")
    height = param.Integer(default=380, bounds=(200, 2000))
    description = param.String(default="", doc="what the selection means, in words (Markdown)")
    summary = param.String(default="", doc="the operation on the chip and what is drawn (HTML)")
    lang = param.Selector(default="en", objects=list(LANGUAGES), doc="language of the words")

    def __init__(self, session: TrainingSession, **params):
        super().__init__(session=session, **params)
        self._schedule = Redraw(self._refresh, lambda: self.figure.document)
        self._highlight_pairs: list[tuple[int, int]] = []  # links of the selected PE (layer self._pe_layer)
        self._pe_layer = 0
        self.drawn_links = 0
        self.total_links = 0
        self._build_figure()
        self._info = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self._header = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        self._clear = pn.widgets.Button(label=t("net.clear", self.lang), color="light", width=130, margin=(0, 10))
        self._clear.on_click(lambda _event: self.clear_selection())
        self._legend = pn.pane.HTML(self._legend_html(), sizing_mode="stretch_width", margin=(0, 10))
        self._layout = pn.Column(
            self._header,
            pn.pane.Bokeh(self.figure, sizing_mode="stretch_width"),
            pn.Row(self._legend, pn.layout.HSpacer(), self._clear, sizing_mode="stretch_width"),
            self._info,
            sizing_mode="stretch_width",
        )
        self.param.watch(self._on_description, ["description"])
        self.param.watch(self._on_summary, ["summary"])
        self._session_watcher = session.param.watch(self._schedule, ["snapshot"])
        self.param.watch(self._schedule, ["current_op", "fold", "selected_weight", "selected_pe", "max_units",
                                          "compact_units", "max_links", "unit_choice", "lang"])
        self.param.watch(self._on_lang, ["lang"])
        self._refresh()

    def __panel__(self):
        return self._layout

    # ----- figure (built once) -----
    def _build_figure(self) -> None:
        self._band = ColumnDataSource(dict(left=[], right=[], bottom=[], top=[], color=[]))
        self._pe_links = ColumnDataSource(dict(x0=[], y0=[], x1=[], y1=[], width=[], color=[]))
        self._sel_links = ColumnDataSource(dict(x0=[], y0=[], x1=[], y1=[], width=[], color=[]))
        self._links = ColumnDataSource(dict(x0=[], y0=[], x1=[], y1=[], color=[], width=[], alpha=[], w=[],
                                            layer=[], i=[], j=[], path=[]))
        self._units = ColumnDataSource(dict(x=[], y=[], fill=[], fill_alpha=[], line=[], line_width=[],
                                            name=[], bias=[]))
        self._labels = ColumnDataSource(dict(x=[], y=[], text=[]))
        self._titles = ColumnDataSource(dict(x=[], y=[], text=[]))
        self._more = ColumnDataSource(dict(x=[], y=[], text=[]))

        p = figure(name="network", height=self.height, sizing_mode="stretch_width", tools="", toolbar_location=None,
                   x_range=Range1d(-0.5, 1.5), y_range=Range1d(-2, 2), min_border=4, outline_line_color=None)
        p.axis.visible = False
        p.grid.visible = False
        p.background_fill_color = "#FFFFFF"
        p.quad(left="left", right="right", bottom="bottom", top="top", source=self._band, fill_color="color",
               fill_alpha=0.10, line_color="color", line_width=2, line_alpha=0.9)
        seg = dict(x0="x0", y0="y0", x1="x1", y1="y1")
        visible = Segment(**seg, line_color="color", line_width="width", line_alpha="alpha")
        links = p.add_glyph(self._links, visible, selection_glyph=visible, nonselection_glyph=visible)
        # Marked links are drawn again above the others: a halo, then the link itself at full opacity.
        for source, halo_color, extra in ((self._pe_links, PE_HALO, 9.0), (self._sel_links, SELECTED_HALO, 5.0)):
            p.segment("x0", "y0", "x1", "y1", source=source, line_color=halo_color,
                      line_width={"field": "width", "transform": _Plus(extra)}, line_alpha=0.95, line_cap="round")
            p.segment("x0", "y0", "x1", "y1", source=source, line_color="color", line_width="width", line_alpha=1.0)
        # A transparent, wide copy of the links catches taps and hovers on thin lines.
        catcher = Segment(**seg, line_color="#000000", line_width=2 * TAP_TOLERANCE_PX, line_alpha=0.0)
        hits = p.add_glyph(self._links, catcher, selection_glyph=catcher, nonselection_glyph=catcher,
                           hover_glyph=Segment(**seg, line_color=palette.INK, line_width=3, line_alpha=0.6))
        base = Scatter(x="x", y="y", size=15, fill_color="#FFFFFF", line_color=None)
        p.add_glyph(self._units, base, selection_glyph=base, nonselection_glyph=base)  # links don't show through
        dots = Scatter(x="x", y="y", size=15, fill_color="fill", fill_alpha="fill_alpha", line_color="line",
                       line_width="line_width")
        units = p.add_glyph(self._units, dots, selection_glyph=dots, nonselection_glyph=dots)
        p.add_glyph(self._labels, Text(x="x", y="y", text="text", text_font_size="10px", text_color="#555555",
                                       text_align="right", text_baseline="middle", x_offset=-11))
        p.add_glyph(self._titles, Text(x="x", y="y", text="text", text_font_size="13px", text_color=palette.INK,
                                       text_align="center", text_baseline="bottom", text_font_style="bold"))
        p.add_glyph(self._more, Text(x="x", y="y", text="text", text_font_size="12px", text_color="#555555",
                                     text_align="center", text_baseline="top"))
        self._link_hover = HoverTool(renderers=[hits], tooltips=self._link_tooltips(), line_policy="interp",
                                     point_policy="follow_mouse")
        self._unit_hover = HoverTool(renderers=[units], tooltips=self._unit_tooltips())
        p.add_tools(self._link_hover, self._unit_hover, TapTool(renderers=[hits]))
        self._links_renderer, self._hit_renderer = links, hits
        p.on_event(Tap, self._on_tap)
        self.figure = p

    def _link_tooltips(self):
        # the weight is formatted in the browser: its numbers change every snapshot, the words never
        return [(t("net.tip_weight", self.lang), "W@layer[@i, @j] = @w{+0.0000}"),
                (t("net.tip_link", self.lang), "@path")]

    def _unit_tooltips(self):
        return [(t("net.tip_unit", self.lang), "@name"), (t("net.tip_bias", self.lang), "@bias")]

    def _on_lang(self, *_events) -> None:
        """Relabel the static words (the drawing's own words follow with the redraw)."""
        self._clear.label = t("net.clear", self.lang)
        self._legend.object = self._legend_html()
        self._link_hover.tooltips = self._link_tooltips()
        self._unit_hover.tooltips = self._unit_tooltips()

    def _legend_html(self) -> str:
        lang = self.lang

        def swatch(color, text, line=False):
            shape = (f"display:inline-block;width:22px;height:4px;background:{color};vertical-align:middle"
                     if line else f"display:inline-block;width:12px;height:12px;background:{color};"
                                  f"opacity:.6;vertical-align:middle;border:1px solid {color}")
            return f"<span style='margin-right:12px;white-space:nowrap'><span style='{shape}'></span> {text}</span>"

        html = (swatch(POSITIVE, "w &gt; 0", True) + swatch(NEGATIVE, "w &lt; 0", True)
                + f"<span style='margin-right:12px;white-space:nowrap'>{t('net.legend_width', lang)}</span>"
                + f"<span style='margin-right:12px;white-space:nowrap'>{t('net.legend_bias', lang)}</span>"
                + swatch(palette.FORWARD, t("net.legend_forward", lang))
                + swatch(palette.BACKWARD, t("net.legend_backward", lang))
                + swatch(PE_HALO, t("net.legend_pe", lang), True)
                + swatch(SELECTED_HALO, t("net.legend_selected", lang), True))
        return f"<div style='font-size:12px;color:{palette.INK}'>{html}</div>"

    # ----- what is on the chip -----
    def operations(self) -> list:
        snap = self.session.snapshot
        return list(snap.report.ops) if snap is not None and snap.report is not None else []

    def operation(self):
        """The Operation at `current_op` (clamped to the last step's list), or None before the first step."""
        ops = self.operations()
        return ops[min(self.current_op, len(ops) - 1)] if ops else None

    def weight_map(self) -> WeightMap | None:
        op = self.operation()
        return WeightMap.for_operation(op) if op is not None else None

    def _pe_weights(self, wmap: WeightMap | None):
        """weights_on_pe of the selected PE in the current fold, or (None, reason)."""
        if self.selected_pe is None:
            return None, ""
        row, col = self.selected_pe
        lang = self.lang
        if wmap is None:
            op = self.operation()
            what = t("net.runs_on_vector", lang, name=op.name) if op is not None else t("net.no_step_yet", lang)
            return None, t("net.pe_no_weights", lang, row=row, col=col, what=what)
        if not (0 <= row < wmap.rows and 0 <= col < wmap.cols):
            return None, t("net.pe_outside", lang, row=row, col=col, rows=wmap.rows, cols=wmap.cols)
        return wmap.weights_on_pe(row, col, min(self.fold, wmap.folds - 1)), ""

    # ----- drawing -----
    def _refresh(self) -> None:
        snap = self.session.snapshot
        if snap is None or snap.conv:  # this view draws dense networks; a CNN is drawn by conv_view.py
            return
        weights = [np.asarray(w) for w in snap.weights]
        biases = [np.asarray(b) for b in snap.biases]
        n_layers = len(weights)
        sizes = [weights[0].shape[0]] + [w.shape[1] for w in weights]
        op = self.operation()
        wmap = WeightMap.for_operation(op) if op is not None else None
        pe, pe_reason = self._pe_weights(wmap)
        sel = self._valid_selection(weights)

        # units each layer draws (pins: the selected link's ends, then the selected PE's links)
        pins: list[list[int]] = [[] for _ in sizes]
        if sel is not None:
            layer, i, j = sel
            pins[layer - 1].append(i)
            pins[layer].append(j)
        pe_pairs = pe.pairs if pe is not None else np.zeros((0, 2), np.int64)
        if pe is not None and len(pe_pairs):
            pins[pe.layer - 1].extend(dict.fromkeys(pe_pairs[:, 0].tolist()))
            pins[pe.layer].extend(dict.fromkeys(pe_pairs[:, 1].tolist()))
        shown = []
        for idx, size in enumerate(sizes):
            strength = None
            if self.unit_choice == "strongest" and size > self.max_units:
                strength = np.zeros(size)
                if idx > 0:
                    strength += np.abs(weights[idx - 1]).sum(axis=0)
                if idx < n_layers:
                    strength += np.abs(weights[idx]).sum(axis=1)
            shown.append(shown_units(size, self.max_units, self.compact_units, pins[idx], strength))
        ys = [dict(zip(s.tolist(), unit_y(len(s)))) for s in shown]
        n_max = max(len(s) for s in shown)

        # which gap (1-based layer of weights) and phase the chip is on
        op_layer = op.layer if op is not None else -1
        op_is_gemm = op is not None and op.is_gemm
        focus = op_layer if op_is_gemm else None

        # links
        cols = {k: [] for k in self._links.data}
        pe_set = {tuple(p) for p in pe_pairs.tolist()} if pe is not None else set()
        drawn_total = 0
        for gap, w in enumerate(weights, start=1):
            src, dst = shown[gap - 1], shown[gap]
            ii, jj = np.meshgrid(src, dst, indexing="ij")
            ii, jj = ii.ravel(), jj.ravel()
            vals = w[ii, jj]
            keep = np.ones(len(vals), bool)
            compact = sizes[gap - 1] > self.max_units or sizes[gap] > self.max_units
            if compact and len(vals) > self.max_links:
                keep[:] = False
                keep[np.argsort(-np.abs(vals), kind="stable")[: self.max_links]] = True
                forced = [(gap, a, b) == sel or (gap == self._pe_gap(pe) and (a, b) in pe_set)
                          for a, b in zip(ii.tolist(), jj.tolist())]
                keep |= np.array(forced, bool)
            ii, jj, vals = ii[keep], jj[keep], vals[keep]
            drawn_total += len(vals)
            cols["x0"].append(np.full(len(vals), gap - 1.0))
            cols["x1"].append(np.full(len(vals), float(gap)))
            cols["y0"].append(np.array([ys[gap - 1][a] for a in ii.tolist()], float))
            cols["y1"].append(np.array([ys[gap][b] for b in jj.tolist()], float))
            cols["w"].append(vals.astype(float))
            cols["layer"].append(np.full(len(vals), gap))
            cols["i"].append(ii)
            cols["j"].append(jj)
            dim = 1.0 if focus is None or focus == gap else DIM
            cols["alpha"].append(np.full(len(vals), dim))  # scaled by |w| below
            src_name, dst_name = layer_name(gap - 1, n_layers, self.lang), layer_name(gap, n_layers, self.lang)
            cols["path"].extend(f"{src_name} {a} → {dst_name} {b}" for a, b in zip(ii.tolist(), jj.tolist()))
        for k in ("x0", "x1", "y0", "y1", "w", "layer", "i", "j", "alpha"):
            cols[k] = np.concatenate(cols[k]) if cols[k] else np.zeros(0)
        cols["layer"] = cols["layer"].astype(np.int64)
        cols["i"] = cols["i"].astype(np.int64)
        cols["j"] = cols["j"].astype(np.int64)
        mag = np.abs(cols["w"])
        scale = float(mag.max()) if len(mag) and mag.max() > 0 else 1.0
        rel = np.clip(mag / scale, 0, 1)
        cols["width"] = 0.6 + (MAX_WIDTH_PX - 0.6) * rel
        cols["alpha"] = cols["alpha"] * (0.25 + 0.75 * rel)
        cols["color"] = np.where(cols["w"] >= 0, POSITIVE, NEGATIVE).tolist()

        # halos: the selected PE's links and the selected link
        pe_gap = self._pe_gap(pe)
        pe_mask = np.array([lay == pe_gap and (a, b) in pe_set for lay, a, b in
                            zip(cols["layer"].tolist(), cols["i"].tolist(), cols["j"].tolist())], bool)
        sel_mask = np.array([(lay, a, b) == sel for lay, a, b in
                             zip(cols["layer"].tolist(), cols["i"].tolist(), cols["j"].tolist())], bool)

        def halo(mask):
            mask = mask if len(mask) else np.zeros(0, bool)
            return {k: cols[k][mask] for k in ("x0", "y0", "x1", "y1", "width")} | {
                "color": [c for c, keep in zip(cols["color"], mask) if keep]}

        # units
        ux, uy, fill, falpha, line, lwidth, names, bias_text = [], [], [], [], [], [], [], []
        bscale = max((float(np.abs(b).max()) for b in biases if b.size), default=0.0) or 1.0
        lab_x, lab_y, lab_t, more_x, more_y, more_t, tit_x, tit_y, tit_t = ([] for _ in range(9))
        top = (n_max - 1) / 2
        sel_units = {(sel[0] - 1, sel[1]), (sel[0], sel[2])} if sel is not None else set()
        for idx, units in enumerate(shown):
            name = layer_name(idx, n_layers, self.lang)
            for u in units.tolist():
                ux.append(float(idx))
                uy.append(ys[idx][u])
                if idx == 0:
                    fill.append(INPUT_FILL)
                    falpha.append(1.0)
                    bias_text.append("—")
                else:
                    b = float(biases[idx - 1][u])
                    fill.append(POSITIVE if b >= 0 else NEGATIVE)
                    falpha.append(0.05 + 0.55 * min(abs(b) / bscale, 1.0))
                    bias_text.append(f"{b:+.4f}")
                emphasised = (idx, u) in sel_units or (not op_is_gemm and op is not None and op.layer == idx)
                line.append(PHASE_COLORS.get(op.phase, palette.INK) if (not op_is_gemm and op is not None
                                                                       and op.layer == idx) else palette.INK)
                if (idx, u) in sel_units:
                    line[-1] = SELECTED_HALO
                lwidth.append(3.0 if emphasised else 1.0)
                names.append(f"{name} {u}")
            if sizes[idx] > self.max_units or not np.array_equal(units, np.arange(len(units))):
                lab_x.extend([float(idx)] * len(units))
                lab_y.extend(ys[idx][u] for u in units.tolist())
                lab_t.extend(str(u) for u in units.tolist())
            if len(units) < sizes[idx]:
                more_x.append(float(idx))
                more_y.append(-(len(units) - 1) / 2 - 0.55)
                more_t.append(t("net.more", self.lang, n=sizes[idx] - len(units)))
            tit_x.append(float(idx))
            tit_y.append(top + 0.9)
            tit_t.append(f"{name} · {sizes[idx]}")

        # the band of the operation on the chip
        band = dict(left=[], right=[], bottom=[], top=[], color=[])
        if op is not None:
            color = PHASE_COLORS.get(op.phase, palette.INK)
            if op_is_gemm:
                lo, hi = op.layer - 1, op.layer
            elif op.layer == 0:
                lo, hi = 0, n_layers
            else:
                lo = hi = op.layer
            span = max(len(shown[x]) for x in range(lo, hi + 1))
            band = dict(left=[lo - 0.3], right=[hi + 0.3], bottom=[-(span - 1) / 2 - 0.6],
                        top=[(span - 1) / 2 + 0.6], color=[color])

        with pn.io.hold(self.figure.document) if self.figure.document is not None else _nothing():
            self.figure.x_range.update(start=-0.55, end=n_layers + 0.45)
            self.figure.y_range.update(start=-top - 1.3, end=top + 1.6)
            set_data(self._band, band)
            set_data(self._pe_links, halo(pe_mask))
            set_data(self._sel_links, halo(sel_mask))
            set_data(self._links, cols)
            set_data(self._units, dict(x=ux, y=uy, fill=fill, fill_alpha=falpha, line=line, line_width=lwidth,
                                       name=names, bias=bias_text))
            set_data(self._labels, dict(x=lab_x, y=lab_y, text=lab_t))
            set_data(self._titles, dict(x=tit_x, y=tit_y, text=tit_t))
            set_data(self._more, dict(x=more_x, y=more_y, text=more_t))

        self.drawn_links = drawn_total
        self.total_links = int(sum(w.size for w in weights))
        self._highlight_pairs = [tuple(p) for p in pe_pairs.tolist()]
        self._pe_layer = pe_gap
        self.summary = self._summary_html(op, sizes, snap.step)
        self.description = self._describe(sel, weights, op, wmap, pe, pe_reason)
        if self._info.object != self.description:
            self._info.object = self.description
        if self._header.object != self.summary:
            self._header.object = self.summary

    @staticmethod
    def _pe_gap(pe) -> int:
        return pe.layer if pe is not None and pe.role != "idle" else -1

    def _valid_selection(self, weights):
        if self.selected_weight is None:
            return None
        layer, i, j = (int(v) for v in self.selected_weight)
        if 1 <= layer <= len(weights) and 0 <= i < weights[layer - 1].shape[0] and 0 <= j < weights[layer - 1].shape[1]:
            return layer, i, j
        return None

    # ----- words -----
    def _summary_html(self, op, sizes, step) -> str:
        shape = "-".join(str(s) for s in sizes)
        lang = self.lang
        if op is None:
            now = t("net.no_step", lang)
        else:
            color = PHASE_COLORS.get(op.phase, palette.INK)
            direction = PHASE_TABLE[op.phase].direction if op.phase in PHASE_TABLE else None
            arrow = DIRECTION_ARROWS.get(direction, "↻")
            where = t("net.layer", lang, layer=op.layer) if op.layer else t("net.all_layers", lang)
            unit = t("net.pe_array" if op.is_gemm else "net.vector_unit", lang)
            phase = t(f"phase.{op.phase}", lang) if f"phase.{op.phase}" in STRINGS else op.phase
            what = f"<b style='color:{color}'>{arrow} {where} · {phase} · {op.name}</b>"
            now = t("net.now", lang, i=self.current_op_index() + 1, n=len(self.operations()), step=step,
                    what=what, unit=unit)
        compact = [i for i, s in enumerate(sizes) if s > self.max_units]
        note = ""
        if compact:
            words = t("net.compact", lang, shape=shape, max=self.max_units, compact=self.compact_units,
                      links=self.max_links, drawn=f"{self.drawn_links:,}", total=f"{self.total_links:,}")
            note = f"<br><span style='color:#555'>{words}</span>"
        return f"<div style='font-size:13px;color:{palette.INK}'>{now}{note}</div>"

    def current_op_index(self) -> int:
        return min(self.current_op, max(len(self.operations()) - 1, 0))

    def _describe(self, sel, weights, op, wmap, pe, pe_reason) -> str:
        lines = []
        lang = self.lang
        if self.selected_weight is not None and sel is None:
            lines.append(t("net.sel_gone", lang, weight=self.selected_weight))
        if sel is not None:
            layer, i, j = sel
            n_layers = len(weights)
            value = float(weights[layer - 1][i, j])
            lines.append(t("net.sel_weight", lang, weight=f"W{layer}[{i}, {j}]", value=f"{value:+.4f}",
                           src=layer_name(layer - 1, n_layers, lang), i=i, dst=layer_name(layer, n_layers, lang),
                           j=j))
            if wmap is not None:
                placement = wmap.pes_for_weight(layer, i, j)
                lines.append(describe_placement(placement, wmap, lang) if placement.role != "unused" else
                             t("net.other_layer", lang, label=gemm_label(wmap.op, lang), layer=wmap.op.layer))
            elif op is not None:
                lines.append(t("net.on_vector", lang, name=op.name))
            others = [o for o in self.operations() if o.is_gemm and o.layer == layer and o is not op]
            if others:
                maps = [WeightMap.for_operation(o) for o in others]
                where = [describe_placement(m.pes_for_weight(layer, i, j), m, lang) for m in maps]
                lines.append(t("net.others", lang, layer=layer) + "\n"
                             + "\n".join(f"- {text}" for text in where))
        if pe_reason:
            lines.append(pe_reason)
        elif pe is not None:
            text = describe_pe(pe, wmap, lang)
            if pe.role != "idle":
                drawn = int(sum(1 for _ in self._drawn_of(pe)))
                if drawn < len(pe.weights):
                    text += t("net.drawn_of", lang, drawn=drawn, n=len(pe.weights))
            lines.append((t("net.yellow", lang) if pe.role != "idle" else "") + text)
        if not lines:
            lines.append(t("net.click", lang))
        return "\n\n".join(lines)

    def _drawn_of(self, pe):
        data = self._links.data
        pairs = {tuple(p) for p in pe.pairs.tolist()}
        for lay, a, b in zip(data["layer"], data["i"], data["j"]):
            if int(lay) == pe.layer and (int(a), int(b)) in pairs:
                yield lay, a, b

    def _on_description(self, event) -> None:
        self._info.object = event.new

    def _on_summary(self, event) -> None:
        self._header.object = event.new

    # ----- interaction -----
    def _on_tap(self, event) -> None:
        """A click on the plot: select the link nearest to it (a click beside the links keeps the selection)."""
        index = self.nearest_link(event.x, event.y)
        if index is not None:
            self.select_link(index)

    def _pixels_per_unit(self) -> tuple[float, float]:
        """Screen pixels per data unit along x and y (the browser reports the plot's inner size)."""
        p = self.figure
        try:
            width, height = float(p.inner_width), float(p.inner_height)
        except Exception:  # not rendered yet: assume a typical 1200-pixel-wide view
            width, height = 1200.0, float(self.height) - 10
        return (width / max(p.x_range.end - p.x_range.start, 1e-9),
                height / max(p.y_range.end - p.y_range.start, 1e-9))

    def nearest_link(self, x: float, y: float, tolerance_px: float = TAP_TOLERANCE_PX) -> int | None:
        """Row of the links source whose segment passes nearest to data point (x, y), within
        `tolerance_px` screen pixels (plus half the link's width); None when there is none."""
        d = self._links.data
        if x is None or y is None or not len(d["x0"]):
            return None
        kx, ky = self._pixels_per_unit()
        x0, y0 = np.asarray(d["x0"]) * kx, np.asarray(d["y0"]) * ky
        x1, y1 = np.asarray(d["x1"]) * kx, np.asarray(d["y1"]) * ky
        px, py = x * kx, y * ky
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((px - x0) * dx + (py - y0) * dy) / np.maximum(dx * dx + dy * dy, 1e-12), 0, 1)
        dist = np.hypot(x0 + t * dx - px, y0 + t * dy - py) - np.asarray(d["width"]) / 2
        best = int(np.argmin(dist))
        return best if dist[best] <= tolerance_px else None

    def select_link(self, index: int) -> None:
        """Select the link drawn at row `index` of the links source (what a click does)."""
        data = self._links.data
        if 0 <= index < len(data["layer"]):
            self.selected_weight = (int(data["layer"][index]), int(data["i"][index]), int(data["j"][index]))

    def dispose(self) -> None:
        """Stop following the session (call when the page closes; the session may outlive the view)."""
        self.session.param.unwatch(self._session_watcher)

    def clear_selection(self) -> None:
        self.selected_weight = None

    def links_table(self) -> dict:
        """The drawn links: {(layer, i, j): weight} (for tests and lessons)."""
        d = self._links.data
        return {(int(lay), int(a), int(b)): float(w) for lay, a, b, w in zip(d["layer"], d["i"], d["j"], d["w"])}

    def highlighted_links(self) -> set[tuple[int, int, int]]:
        """(layer, i, j) of the drawn links marked for the selected PE."""
        pairs = set(self._highlight_pairs)
        return {(lay, a, b) for lay, a, b in self.links_table() if lay == self._pe_layer and (a, b) in pairs}


def _Plus(amount: float):
    """A Bokeh transform adding a constant (halo widths are the link's width plus a margin)."""
    from bokeh.models import CustomJSTransform

    return CustomJSTransform(args=dict(amount=amount), v_func="return xs.map((x) => x + amount)",
                             func="return x + amount")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


__all__ = ["NetworkView", "POSITIVE", "NEGATIVE", "PHASE_COLORS", "DIRECTION_COLORS", "shown_units", "unit_y",
           "layer_name"]
