"""PEArrayView: the systolic array animated cycle by cycle in the browser.

The server packs a window of a :class:`chipviz.chip.trace.Trace` (a "batch" of up to a few
hundred cycles) into one binary payload; the browser decodes it into typed arrays and plays
it with ``requestAnimationFrame`` on a canvas, so the server sends one message per batch
instead of one per cycle. While playing, the browser writes the shown ``cycle`` back to
Python about four times a second and at once when it pauses or reaches the batch's last
cycle; then ``at_end`` turns True and (with ``auto_advance``) the next window of the held
trace is sent.

The payload format and its codec live in the headless :mod:`chipviz.trace_payload`. The
browser code is in the files next to this one: ``pe_array.js`` (the ES module, Panel's
``_esm``) and ``pe_array.css`` (its stylesheet, named in ``_stylesheets``); the colours and
state names reach it as data, the ``palette`` parameter (:func:`browser_palette`), and so do the
dataflow's facts (what its rows, columns, edges and registers hold: the dataflow table's
``Dataflow.roles``), in the payload header and, before a trace is loaded, the ``roles`` parameter.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import param
from panel.custom import JSComponent

from .. import checks
from ..chip.dataflow_table import DATAFLOW_TABLE
from ..chip.trace import Trace
from ..trace_payload import DEFAULT_BATCH_BYTES, MAX_BATCH_BYTES, default_batch_cycles, pack_window
from .. import palette
from ..i18n import texts as _texts

HERE = Path(__file__).resolve().parent
ESM_PATH = HERE / "pe_array.js"
CSS_PATH = HERE / "pe_array.css"
DIMENSION_LABELS = {"M": "rows of A and C", "K": "inner dimension", "N": "columns of B and C"}
STATE_KEYS = palette.STATE_LABELS  # i18n "pe.state.KEY", in palette.STATE_COLORS order
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


def browser_palette() -> dict[str, Any]:
    """What the browser draws with, sent as data (the `palette` parameter): colours, state keys, dimension words.

    ``states`` are the colours of the PE states in trace order (idle, MAC, preload, stall),
    ``state_keys`` their i18n keys ("pe.state.KEY"), ``dims`` the English fallback for the
    GEMM dimensions when ``texts`` lacks "dim.LETTER"; the rest are the named colours of
    :mod:`chipviz.palette`.
    """
    return {
        "states": list(palette.STATE_COLORS), "state_keys": list(STATE_KEYS), "ink": palette.INK,
        "moving": palette.MOVING, "output": palette.OUTPUT, "preload": palette.PRELOAD,
        "stationary": palette.STATIONARY, "highlight": palette.HIGHLIGHT, "selected": palette.SELECTED,
        "dims": dict(DIMENSION_LABELS),
    }


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
    dataflow = param.Selector(default="ws", objects=list(DATAFLOW_TABLE), doc="Dataflow of the loaded trace.")
    frames = param.Bytes(default=None, doc="Packed batch of cycles (see chipviz.trace_payload); set by load_trace.")
    start_cycle = param.Integer(default=0, bounds=(0, None), doc="First GEMM cycle in the batch.")
    n_cycles = param.Integer(default=0, bounds=(0, None), doc="Cycles in the batch.")
    total_cycles = param.Integer(default=0, bounds=(0, None), doc="Cycles of the whole GEMM.")
    cycle = param.Integer(default=0, bounds=(0, None), doc="GEMM cycle shown (0-based).")
    playing = param.Boolean(default=False, doc="Whether the browser is animating.")
    fps = param.Integer(default=8, bounds=(1, 60), doc="Cycles shown per second while playing.")
    caption = param.String(default="", doc="Title line; the view appends the live fold and cycle.")
    labels = param.Dict(default={}, doc="Meaning of GEMM dimensions for axis titles, e.g. {'K': 'input features'}.")
    selected_pe = param.Tuple(default=None, length=2, allow_None=True, doc="(row, col) of the PE last clicked.")
    conv = param.Dict(default={}, doc="A convolution's shapes when the GEMM shown is a conv layer's "
                                      "(chipviz.conv_map.js_geometry): the tooltip names the window, pixel and kernel.")
    highlight = PEList(default=[], item_type=tuple, doc="(row, col) PEs to outline.")
    at_end = param.Boolean(default=False, doc="True while the last cycle of the batch is shown.")
    next_gemm = param.Event(doc="The student asked for the next GEMM (key n); the app answers with load_trace.")
    show_controls = param.Boolean(default=True, doc="Show the play / step / speed bar.")
    auto_advance = param.Boolean(default=True, doc="Send the held trace's next window when a batch ends.")
    batch_bytes = param.Integer(default=DEFAULT_BATCH_BYTES, bounds=(4096, MAX_BATCH_BYTES),
                                doc="Payload size a default window aims at.")
    texts = param.Dict(default=pe_texts("en"), doc="The view's words (i18n 'pe.*' keys without the prefix); "
                                                  "pe_texts(lang) gives them in a language.")
    # data for the browser, not a setting, hence constant. Not hidden with a negative precedence: Panel 1.9
    # leaves such parameters out of the JS data model (get_root then fails with "unexpected attribute").
    palette = param.Dict(default=browser_palette(), constant=True,
                         doc="Colours, state keys and fallback dimension words the browser draws with "
                             "(browser_palette(); from chipviz.palette).")

    roles = param.Dict(default=dict(DATAFLOW_TABLE[dataflow.default].roles), constant=True,
                       doc="What the array's rows, columns, edges and registers hold in `dataflow` "
                           "(DATAFLOW_TABLE[dataflow].roles; follows `dataflow`), for the browser.")

    _esm = ESM_PATH  # Panel reads the file (and watches it under `panel serve --dev`)
    # The stylesheet file beside this module: served, the browser loads it from Panel's component route
    # (the dashboard's template leaves out the page-wide copy Panel would add: dashboard._Page)
    _stylesheets = [CSS_PATH.name]
    _property_mapping = {"auto_advance": None, "batch_bytes": None, "next_gemm": None}

    def __init__(self, **params):
        params.setdefault("sizing_mode", "stretch_width")
        params.setdefault("min_height", 300)
        super().__init__(**params)
        self._on_dataflow()
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

    def clear(self, caption: str = "", rows: int | None = None, cols: int | None = None) -> None:
        """Show no trace: an idle rows×cols array with `caption` until the next load_trace (a new
        network that has not run a step yet has no GEMM to show)."""
        self._trace = None
        self._window = 0
        size = {"rows": rows, "cols": cols} if rows and cols else {}
        self.param.update(frames=None, start_cycle=0, n_cycles=0, total_cycles=0, cycle=0, playing=False,
                          at_end=False, highlight=[], caption=caption, **size)

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
    @param.depends("dataflow", watch=True)
    def _on_dataflow(self):
        roles = dict(DATAFLOW_TABLE[self.dataflow].roles)
        if roles != self.roles:
            with param.edit_constant(self):
                self.roles = roles

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
        elif isinstance(data, dict) and data.get("action") == "next_gemm":
            self.param.trigger("next_gemm")

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
    return checks.whole(name, value, None if allow_negative else 0)


__all__ = ["PEArrayView", "browser_palette", "pe_texts", "strip_status"]
