"""The convolution layer in pictures, linked to the PE array: the input image with the window
of the output pixel being computed, the kernels, the feature maps, and im2col's matrices A
(one row per window) and B (one column per kernel).

What a cell means comes from chipviz.conv_map (headless, tested); this file only draws it.
The dashboard tells the view which conv GEMM the PE array shows, the cycle and the PE
selected; the view marks the pixel, tap, kernel weight and output that PE multiplies then.
Clicking a kernel tap selects that weight: the dashboard outlines the PEs holding it.
"""
from __future__ import annotations

import math

import numpy as np
import panel as pn
import param
from bokeh.events import Tap
from bokeh.models import ColumnDataSource, HoverTool, LinearColorMapper, Range1d, TapTool
from bokeh.palettes import RdBu11
from bokeh.plotting import figure

from .. import palette
from ..conv_map import element, images_from_im2col, pe_element, window_of
from ..chip.mapping import Mapping
from ..i18n import LANGUAGES, t
from .sources import set_data

GAP = 1.0  # cells between two kernels or maps
PART_GAP = 3.0  # cells between the input, the kernels and the maps
DIVERGING = tuple(reversed(RdBu11))  # blue < 0 < red, as the network view's links


def _box_columns(boxes) -> dict:
    """Outlines given as (x, y, width, height, colour) tuples, as a ColumnDataSource's columns."""
    return dict(zip(("x", "y", "w", "h", "color"), (list(c) for c in zip(*boxes))))


def _grid(n: int) -> int:
    return max(1, math.ceil(math.sqrt(n)))


class ConvView(pn.viewable.Viewer):
    """One conv layer of the session's network as the chip computes it."""

    lang = param.Selector(default="en", objects=list(LANGUAGES))
    visible = param.Boolean(default=True, doc="shown (a CNN) or not (an MLP)")
    selected_weight = param.Tuple(default=None, length=3, allow_None=True,
                                  doc="(layer, tap, filter): W[tap, filter] of conv layer `layer`, set by a click")

    def __init__(self, **params):
        super().__init__(**params)
        self._state = None  # (snapshot, op index, geometry, phase, A, B, images, kernels, maps)
        self._cells = ColumnDataSource(dict(x=[], y=[], v=[], what=[]))
        self._im2col = ColumnDataSource(dict(x=[], y=[], v=[], what=[]))
        self._marks = ColumnDataSource(dict(x=[], y=[], w=[], h=[], color=[]))
        self._im_marks = ColumnDataSource(dict(x=[], y=[], w=[], h=[], color=[]))
        self._labels = ColumnDataSource(dict(x=[], y=[], text=[]))
        self._im_labels = ColumnDataSource(dict(x=[], y=[], text=[]))
        self._kernel_origin: dict[int, tuple[float, float]] = {}
        self.text = pn.pane.Markdown("", margin=(0, 6), styles={"font-size": "12px"}, sizing_mode="stretch_width",
                                     css_classes=["chipviz-conv-text"])
        self.layer_fig = self._figure(self._cells, self._marks, self._labels, 230)
        self.im2col_fig = self._figure(self._im2col, self._im_marks, self._im_labels, 170)
        self.layer_fig.on_event(Tap, self._on_tap)
        self._element = None
        self._starts_of, self._starts = None, {}
        self._a_origin = self._b_origin = 0.0
        self._map_origin: dict[int, tuple[float, float]] = {}
        # an MLP's page never shows this view: its figures join the page the first time it is shown
        self._layout = pn.Column(sizing_mode="stretch_width", margin=0, visible=self.visible)
        self.param.watch(self._on_visible, "visible")
        self._on_visible()
        self.param.watch(self._on_lang, "lang")

    def _on_visible(self, *_) -> None:
        if self.visible and not self._layout.objects:
            self._layout.objects = [self.text, self.layer_fig, self.im2col_fig]
        self._layout.visible = self.visible

    def _on_lang(self, _) -> None:
        if self._state is not None:
            self._draw()
            if self._element is not None:
                self.mark(self._element[0])

    def _figure(self, cells, marks, labels, height):
        fig = figure(height=height, sizing_mode="stretch_width", toolbar_location=None, match_aspect=True,
                     x_range=Range1d(0, 1), y_range=Range1d(-1, 0), tools="")
        fig.axis.visible = False
        fig.grid.visible = False
        fig.outline_line_color = None
        mapper = LinearColorMapper(palette=DIVERGING, low=-1, high=1)
        cells_r = fig.rect("x", "y", 1, 1, source=cells, line_color=None,
                           fill_color={"field": "v", "transform": mapper})
        fig.rect("x", "y", "w", "h", source=marks, fill_color=None, line_color="color", line_width=2.5)
        fig.text("x", "y", "text", source=labels, text_font_size="9px", text_baseline="bottom",
                 text_color=palette.INK)
        fig.add_tools(HoverTool(renderers=[cells_r], tooltips="@what"), TapTool(renderers=[cells_r]))
        return fig

    # ----- what the dashboard tells the view -----
    def show(self, snap, index: int) -> bool:
        """Draw GEMM `index` of `snap` if it belongs to a conv layer; False (nothing drawn) otherwise."""
        ops = snap.report.ops if snap is not None and snap.report is not None else []
        if not 0 <= index < len(ops) or not ops[index].is_gemm or snap.geometry(ops[index].layer) is None:
            return False
        op = ops[index]
        geometry = snap.geometry(op.layer)
        operands = snap.operands[index] if index < len(snap.operands) else None
        if operands is None:
            return False
        a, b = np.asarray(operands.a, np.float32), np.asarray(operands.b, np.float32)
        kernels = snap.weights[[number for number, _ in snap.conv].index(op.layer)]
        if op.phase == "forward":
            cols = a
        elif op.phase == "backward_weights":
            cols = a.T
        else:  # dA = dZ·Wᵀ: the input is not an operand; show the gradient picture on the shapes alone
            cols = None
        batch = (a.shape[0] if op.phase != "backward_weights" else a.shape[1]) // geometry.out_pixels
        images = images_from_im2col(cols, geometry, batch) if cols is not None else None
        maps = (cols[:geometry.out_pixels] @ kernels).reshape(geometry.out_h, geometry.out_w, -1) \
            if cols is not None else None
        self._state = dict(snap=snap, index=index, op=op, geometry=geometry, a=a, b=b, kernels=kernels,
                           images=images, maps=maps, cols=cols, mapping=Mapping.of(*a.shape, b.shape[1],
                                                                                   operands.config))
        self._draw()
        self.mark(None)
        return True

    def mark(self, where) -> None:
        """Mark GEMM element (m, k, n) (None: the first output pixel, first tap, first filter)."""
        st = self._state
        if st is None:
            return
        g, phase = st["geometry"], st["op"].phase
        where = where or (0, 0, 0)
        m, k, n = where
        e = element(g, phase, m, k, n)
        self._element = (where, e)
        image = e.image
        y0, x0, y1, x1 = window_of(g, e.out_y, e.out_x)
        kx, ky = self._kernel_origin.get(e.filter, (0, 0))
        fx, fy = self._map_origin.get(e.filter, (0, 0))
        # the window on the input image and the pixel under the tap; the tap in its kernel; the output pixel
        boxes = [((x0 + x1 - 1) / 2, -(y0 + y1 - 1) / 2, x1 - x0, y1 - y0, palette.SELECTED)]
        if e.in_y is not None:
            boxes.append((e.in_x, -e.in_y, 1, 1, palette.VERMILLION))
        boxes += [(kx + e.tap_x, ky - e.tap_y, 1, 1, palette.VERMILLION),
                  (kx + (g.kernel_w - 1) / 2, ky - (g.kernel_h - 1) / 2, g.kernel_w + 0.3, g.kernel_h + 0.3,
                   palette.SELECTED),
                  (fx + e.out_x, fy - e.out_y, 1, 1, palette.SELECTED)]
        set_data(self._marks, _box_columns(boxes))
        # im2col: row of A (this image's windows) and column of B
        row = e.out_y * g.out_w + e.out_x
        tap = (e.tap_y * g.kernel_w + e.tap_x) * g.channels + e.channel
        ax, bx = self._a_origin, self._b_origin
        im = _box_columns([(ax + (g.window - 1) / 2, -row, g.window + 0.2, 1, palette.SELECTED),
                           (ax + tap, -row, 1, 1, palette.VERMILLION),
                           (bx + e.filter, -(g.window - 1) / 2, 1, g.window + 0.2, palette.SELECTED),
                           (bx + e.filter, -tap, 1, 1, palette.VERMILLION)])
        set_data(self._im_marks, im)
        self._say(e, image, where)

    def mark_pe(self, trace, cycle: int, pe) -> None:
        """Mark what PE `pe` = (row, col) multiplies at `cycle` of the GEMM shown (kept if it multiplies nothing)."""
        st = self._state
        if st is None or trace is None or pe is None:
            return
        local = cycle - trace.start
        if not 0 <= local < trace.n_cycles:
            return
        fold = int(trace.fold[local])
        first = self._fold_starts(trace)[fold]
        if first == 0 and trace.start > 0:
            return  # the fold began before the cycles held: its cycle count is unknown here
        where = pe_element(st["mapping"], fold, local - first, int(pe[0]), int(pe[1]))
        if where is not None and where != (self._element[0] if self._element else None):
            self.mark(where)

    def _fold_starts(self, trace) -> dict:
        """{fold: its first cycle in `trace`}, found once per trace (the cycle changes many times a second)."""
        if self._starts_of is not trace:
            runs = np.flatnonzero(np.r_[True, np.diff(trace.fold) != 0])
            self._starts_of, self._starts = trace, {int(trace.fold[i]): int(i) for i in runs[::-1]}
        return self._starts

    @property
    def shown_index(self) -> int | None:
        """Which operation of its step the view shows (None: none)."""
        return None if self._state is None else self._state["index"]

    # ----- drawing -----
    def _draw(self) -> None:
        st = self._state
        g, kernels, images, maps = st["geometry"], st["kernels"], st["images"], st["maps"]
        cells = dict(x=[], y=[], v=[], what=[])
        labels = dict(x=[], y=[], text=[])
        tr = lambda key, **kw: t(key, self.lang, **kw)  # noqa: E731
        scale_w = float(np.abs(kernels).max()) or 1.0

        def put(x, y, v, what):
            cells["x"].append(x)
            cells["y"].append(y)
            cells["v"].append(v)
            cells["what"].append(what)

        # the input image (channel 0 of image 0); its values are drawn on [-1, 1] as the others
        x = 0.0
        if images is not None:
            img = images[0, :, :, 0]
            top = float(np.abs(img).max()) or 1.0
            for iy in range(g.in_h):
                for ix in range(g.in_w):
                    put(ix, -iy, float(img[iy, ix]) / top, tr("conv.tip_pixel", y=iy, x=ix, v=f"{img[iy, ix]:.3g}"))
            labels["x"].append(-0.5)
            labels["y"].append(0.8)
            labels["text"].append(tr("conv.input", h=g.in_h, w=g.in_w))
            x = g.in_w + PART_GAP
        # the kernels (channel 0), in a square grid
        per = _grid(g.filters)
        self._kernel_origin = {}
        for f in range(g.filters):
            gx, gy = f % per, f // per
            ox, oy = x + gx * (g.kernel_w + GAP), -gy * (g.kernel_h + GAP)
            self._kernel_origin[f] = (ox, oy)
            for ty in range(g.kernel_h):
                for tx in range(g.kernel_w):
                    w = float(kernels[(ty * g.kernel_w + tx) * g.channels, f])
                    put(ox + tx, oy - ty, w / scale_w, tr("conv.tip_weight", f=f, y=ty, x=tx, v=f"{w:.3g}"))
        labels["x"].append(x - 0.5)
        labels["y"].append(0.8)
        labels["text"].append(tr("conv.kernels", n=g.filters, k=f"{g.kernel_h}×{g.kernel_w}"))
        x += per * (g.kernel_w + GAP) - GAP + PART_GAP
        # the feature maps of image 0 (before the activation)
        self._map_origin = {}
        if maps is not None:
            top = float(np.abs(maps).max()) or 1.0
            for f in range(g.filters):
                gx, gy = f % per, f // per
                ox, oy = x + gx * (g.out_w + GAP), -gy * (g.out_h + GAP)
                self._map_origin[f] = (ox, oy)
                for oy_ in range(g.out_h):
                    for ox_ in range(g.out_w):
                        v = float(maps[oy_, ox_, f])
                        put(ox + ox_, oy - oy_, v / top, tr("conv.tip_output", f=f, y=oy_, x=ox_, v=f"{v:.3g}"))
            labels["x"].append(x - 0.5)
            labels["y"].append(0.8)
            labels["text"].append(tr("conv.maps", n=g.filters))
            x += per * (g.out_w + GAP)
        height = max(g.in_h, _grid(g.filters) * (max(g.kernel_h, g.out_h) + GAP))
        set_data(self._cells, cells)
        set_data(self._labels, labels)
        self._fit(self.layer_fig, x, height)
        # im2col: A's rows of image 0 (one per window) and B (one column per kernel)
        im = dict(x=[], y=[], v=[], what=[])
        im_labels = dict(x=[], y=[], text=[])
        cols = st["cols"]
        self._a_origin = 0.0
        if cols is not None:
            rows = cols[:g.out_pixels]
            top = float(np.abs(rows).max()) or 1.0
            for r in range(g.out_pixels):
                for c in range(g.window):
                    im["x"].append(c)
                    im["y"].append(-r)
                    im["v"].append(float(rows[r, c]) / top)
                    im["what"].append(tr("conv.tip_a", r=r, c=c, v=f"{rows[r, c]:.3g}"))
            im_labels["x"].append(-0.5)
            im_labels["y"].append(0.8)
            im_labels["text"].append(tr("conv.a_rows", m=g.out_pixels, k=g.window))
        self._b_origin = g.window + PART_GAP + 2
        for r in range(g.window):
            for c in range(g.filters):
                w = float(kernels[r, c])
                im["x"].append(self._b_origin + c)
                im["y"].append(-r)
                im["v"].append(w / scale_w)
                im["what"].append(tr("conv.tip_b", r=r, c=c, v=f"{w:.3g}"))
        im_labels["x"].append(self._b_origin - 0.5)
        im_labels["y"].append(0.8)
        im_labels["text"].append(tr("conv.b", k=g.window, n=g.filters))
        set_data(self._im2col, im)
        set_data(self._im_labels, im_labels)
        self._fit(self.im2col_fig, self._b_origin + g.filters + 1, max(g.out_pixels, g.window))

    @staticmethod
    def _fit(fig, width: float, height: float) -> None:
        """Square cells in a card about 330 px wide: the figure's height follows the picture's shape."""
        fig.x_range.update(start=-1.5, end=width + 0.5)
        fig.y_range.update(start=-height - 0.5, end=2.5)
        fig.height = int(min(340, max(110, 330 * (height + 3) / (width + 2))))

    def _say(self, e, image: int, where) -> None:
        st = self._state
        g, op = st["geometry"], st["op"]
        m, k, n = where
        a, b = st["a"], st["b"]
        pixel = (t("conv.pixel", self.lang, y=e.in_y, x=e.in_x) if e.in_y is not None
                 else t("conv.padding", self.lang))
        self.text.object = t("conv.says", self.lang, m=m, k=k, n=n, a=f"{a[m, k]:.3g}", b=f"{b[k, n]:.3g}",
                             image=image + 1, oy=e.out_y, ox=e.out_x, pixel=pixel, ty=e.tap_y, tx=e.tap_x, f=e.filter,
                             phase=t(f"phase.{op.phase}", self.lang), layer=op.layer,
                             window=f"{g.kernel_h}×{g.kernel_w}")

    def _on_tap(self, event) -> None:
        """A click on a kernel tap selects that weight (the dashboard outlines the PEs holding it)."""
        st = self._state
        if st is None:
            return
        g = st["geometry"]
        for f, (ox, oy) in self._kernel_origin.items():
            tx, ty = round(event.x - ox), round(oy - event.y)
            if 0 <= tx < g.kernel_w and 0 <= ty < g.kernel_h:
                tap = (ty * g.kernel_w + tx) * g.channels
                self.selected_weight = (st["op"].layer, tap, f)
                return

    def __panel__(self):
        return self._layout
