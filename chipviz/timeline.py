"""A training step laid out in time: where its cycles go (headless geometry for the step timeline).

The chip runs a step's operations one after another, in the order of `StepReport.ops`: each
GEMM on the PE array, each elementwise op on the vector unit. Laid end to end, operation i
occupies cycles [start, end) from the step's start, with end − start = its cycles, and the last
end is the step's cycles. `position` and `op_at` convert between (operation, cycle inside it)
and cycles from the step's start, for a playhead and for clicks.

Drawing to scale hides the small operations (a bias add can be a thousandth of a step), so
`timeline(ops, min_share)` also gives each operation a drawn extent [x0, x1): to scale, except
that no operation is drawn narrower than `min_share` of the bar (the others shrink a little to
make room); the bar still spans [0, step cycles). `Timeline.to_drawn` and `Timeline.op_at_drawn`
map cycles to that drawn axis and back (linear inside each operation), and `Timeline.ticks`
places round cycle counts on it. With min_share=0 the drawn axis is the cycle axis.

numpy only: no panel or bokeh (chipviz.app.timeline_view draws this).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .chip.dataflow_table import DATAFLOW_TABLE
from .nn.phases import PHASE_TABLE

__all__ = ["Segment", "Timeline", "timeline", "position", "op_at", "nice_ticks", "DEFAULT_MIN_SHARE"]

TOUR_STREAM = 128  # streamed rows the tour plays of a fold: a dense layer's whole batch; a conv layer's first windows
DEFAULT_MIN_SHARE = 0.006  # about 7 px of a 1200 px bar: wide enough to see and to click


def direction_of(phase: str) -> str:
    """The phase's direction from chipviz.nn.phases ("forward", "backward", "update")."""
    facts = PHASE_TABLE.get(phase)
    return facts.direction if facts is not None else "update"


@dataclass(frozen=True)
class Segment:
    """One operation of a step, placed in time."""

    index: int  # its index in the step's operation list
    layer: int  # 1-based; 0 for whole-network work (the update)
    phase: str  # chipviz.nn.phases id
    direction: str  # "forward", "backward" or "update"
    name: str  # Operation.name, e.g. "Y = X·W", "+ b, relu", "adam update"
    is_gemm: bool  # on the PE array (True) or the vector unit (False)
    cycles: int
    start: int  # cycles from the step's start
    end: int  # start + cycles
    share: float  # cycles / the step's cycles
    folds: int | None  # GEMMs: folds and cycles per fold; None on the vector unit
    cycles_per_fold: int | None
    x0: float  # drawn extent (see the module's doc): to scale, at least min_share of the bar wide
    x1: float


@dataclass(frozen=True)
class Timeline:
    """A step's operations end to end. `total` is the step's cycles; the drawn axis spans [0, span)."""

    segments: tuple[Segment, ...]
    total: int
    min_share: float

    @property
    def span(self) -> float:
        """Length of the drawn axis: the step's cycles (or one per operation if none has any)."""
        return float(self.segments[-1].x1) if self.segments else 0.0

    def key(self) -> tuple:
        """What the drawing depends on: equal keys, equal pictures (a new step of the same network is equal)."""
        return tuple((s.layer, s.phase, s.name, s.cycles, s.folds, s.cycles_per_fold) for s in self.segments)

    def position(self, op_index: int, cycle_in_op: float) -> float:
        """Cycles from the step's start of cycle `cycle_in_op` of operation `op_index` (clamped to the op)."""
        s = self.segments[op_index]
        return s.start + _clamp(cycle_in_op, s.cycles)

    def op_at(self, cycle: float) -> int | None:
        return _op_at(np.array([s.end for s in self.segments], np.int64), cycle, self.total)

    def drawn(self, op_index: int, cycle_in_op: float) -> float:
        """Where cycle `cycle_in_op` of operation `op_index` is on the drawn axis."""
        s = self.segments[op_index]
        if s.cycles == 0:
            return s.x0
        return s.x0 + (s.x1 - s.x0) * _clamp(cycle_in_op, s.cycles) / s.cycles

    def to_drawn(self, cycle: float) -> float:
        """Cycles from the step's start → the drawn axis (clamped to the step)."""
        if not self.segments:
            return 0.0
        i = self.op_at(min(max(cycle, 0), self.total))
        if i is None:  # every op has 0 cycles
            return 0.0
        return self.drawn(i, cycle - self.segments[i].start)

    def op_at_drawn(self, x: float) -> int | None:
        """The operation drawn at `x` on the drawn axis (every op is at least min_share wide), or None."""
        if not self.segments or not 0 <= x <= self.span:
            return None
        edges = np.array([s.x1 for s in self.segments])
        return int(min(np.searchsorted(edges, x, side="right"), len(edges) - 1))

    def ticks(self, n: int = 6) -> list[tuple[float, int]]:
        """About n round cycle counts from 0 to the step's cycles, as (drawn x, cycles)."""
        return [(self.to_drawn(c), c) for c in nice_ticks(self.total, n)]


def _clamp(cycle_in_op: float, cycles: int) -> float:
    return min(max(cycle_in_op, 0), cycles)


def _op_at(ends: np.ndarray, cycle: float, total: int) -> int | None:
    """Index of the op holding `cycle` (start <= cycle < end); the step's end belongs to the last op
    with cycles; None outside [0, total] or when no op has cycles. Ops with 0 cycles hold none."""
    if len(ends) == 0 or total <= 0 or not 0 <= cycle <= total:
        return None
    if cycle == total:
        return int(np.searchsorted(ends, total, side="left"))  # the first op ending there: the last with cycles
    return int(np.searchsorted(ends, cycle, side="right"))


def _cycles(ops: Sequence) -> np.ndarray:
    return np.array([int(op.cycles) for op in ops], np.int64)


def position(ops: Sequence, op_index: int, cycle_in_op: float) -> float:
    """Cycles from the step's start of cycle `cycle_in_op` (clamped to [0, the op's cycles]) of
    operation `op_index` of `ops` (a step's operations in order: anything with `.cycles`)."""
    cycles = _cycles(ops)
    if not 0 <= op_index < len(cycles):
        raise IndexError(f"operation {op_index} of a step with {len(cycles)} operations")
    return int(cycles[:op_index].sum()) + _clamp(cycle_in_op, int(cycles[op_index]))


def op_at(ops: Sequence, cycle: float) -> int | None:
    """Index of the operation running at `cycle` cycles from the step's start: the one with
    start <= cycle < end (the step's last cycle count, its end, belongs to the last op). None
    outside the step. op_at(ops, position(ops, i, c)) == i for every 0 <= c < ops[i].cycles."""
    cycles = _cycles(ops)
    ends = np.cumsum(cycles)
    return _op_at(ends, cycle, int(ends[-1]) if len(ends) else 0)


def _drawn_widths(cycles: np.ndarray, min_share: float) -> np.ndarray:
    """Widths summing to cycles.sum(): proportional to cycles, but none below min_share of the sum."""
    n = len(cycles)
    total = float(cycles.sum())
    if n == 0:
        return np.zeros(0)
    if total <= 0:
        return np.ones(n)  # nothing to scale by: equal widths
    m = min(max(min_share, 0.0), 0.5 / n) * total  # at most half the bar goes to the minimum widths
    if m <= 0:
        return cycles.astype(float)
    tiny = cycles < m
    while True:
        scale = (total - tiny.sum() * m) / cycles[~tiny].sum()
        grown = tiny | (cycles * scale < m)
        if (grown == tiny).all():
            break
        tiny = grown
    return np.where(tiny, m, cycles * scale)


def timeline(ops: Sequence, min_share: float = 0.0) -> Timeline:
    """The geometry of a step's operations (chipviz.nn.on_chip.Operation, in step order): each
    one's start and end in cycles, and a drawn extent at least `min_share` of the bar wide."""
    cycles = _cycles(ops)
    ends = np.cumsum(cycles)
    total = int(ends[-1]) if len(ends) else 0
    widths = _drawn_widths(cycles, min_share)
    x1 = np.cumsum(widths)
    if len(x1) and total > 0:
        x1[-1] = total  # exact, whatever the rounding
    segments = []
    for i, op in enumerate(ops):
        stats = op.stats
        gemm = bool(op.is_gemm)
        segments.append(Segment(
            index=i, layer=int(op.layer), phase=op.phase, direction=direction_of(op.phase), name=op.name,
            is_gemm=gemm, cycles=int(cycles[i]), start=int(ends[i] - cycles[i]), end=int(ends[i]),
            share=float(cycles[i] / total) if total else 0.0,
            folds=int(stats.folds) if gemm else None, cycles_per_fold=int(stats.cycles_per_fold) if gemm else None,
            x0=float(x1[i - 1]) if i else 0.0, x1=float(x1[i])))
    return Timeline(tuple(segments), total, float(min_share))


def nice_ticks(total: float, n: int = 6) -> list[int]:
    """Whole round numbers (1, 2, 2.5 or 5 × 10^k apart) from 0 to `total`, at most about n+1 of them."""
    if total <= 0 or n < 1:
        return [0]
    raw = total / n
    power = 10 ** math.floor(math.log10(raw))
    factors = (1, 2, 2.5, 5, 10) if power >= 10 else (1, 2, 5, 10)  # whole cycles only
    step = max(1, int(next(f * power for f in factors if f * power >= raw)))
    return list(range(0, int(total) + 1, step))


def tour_stop(stats) -> int:
    """The cycle at which the tour leaves a GEMM (a GemmStats): the end of its first fold, or,
    when a fold streams more than TOUR_STREAM rows (a convolution's batch × pixels), the cycle at
    which its first TOUR_STREAM rows have passed through the array. Never past the GEMM's end."""
    flow = DATAFLOW_TABLE[stats.dataflow]
    streamed = flow.spread(stats.m, stats.k, stats.n)[2]
    return min(stats.cycles, flow.cycles_per_fold(stats.rows, stats.cols, min(streamed, TOUR_STREAM)))
