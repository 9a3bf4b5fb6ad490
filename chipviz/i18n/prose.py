"""The sentences built from the simulator's numbers, as Messages, and the one way to write a unit.

A view asks for a Message (what to say) and renders it in its language (`Message.render`);
switching the language renders the same Message again. Numbers are written by the helpers
below, so a count, a share or an energy looks the same in every view.
"""
from __future__ import annotations

import re

from ..nn.phases import PHASE_TABLE
from . import Message


# ----- units -----
def count(n) -> str:
    """A whole number with thousands separators: 1,746."""
    return f"{int(n):,}"


def percent(share: float, decimals: int = 1) -> str:
    """A share (0..1) as a percentage: 38.1%."""
    return f"{share:.{decimals}%}"


def nanojoules(pj: float) -> str:
    """An energy given in picojoules, written in nanojoules: 401.0 (the unit is in the sentence)."""
    return f"{pj / 1e3:,.1f}"


def shape(m: int, k: int, n: int) -> str:
    """A GEMM's operand shapes: 32×2 · 2×16."""
    return f"{m}×{k} · {k}×{n}"


# ----- what the chip is doing -----
def phase(op) -> Message:
    """The phase of an operation in words (forward, backward (data), ...)."""
    return Message(f"phase.{op.phase}")


def direction(op) -> Message:
    """Forward, backward or update, as the phase table says."""
    return Message(f"direction.{PHASE_TABLE[op.phase].direction}")


def op_caption(op, tour_folds: int | None = None, tour_cycles: tuple[int, int] | None = None) -> Message:
    """The PE array's title for a GEMM: "layer 1 · forward · Y = X·W" (on the tour, what it skips:
    folds 2 to N, or, for a long first fold, every cycle after `tour_cycles` = (shown, total))."""
    caption = Message("dash.caption", layer=op.layer, phase=direction(op), name=op.name)
    if tour_cycles:
        return Message("dash.caption_tour_cycles", caption=caption, shown=count(tour_cycles[0]),
                       total=count(tour_cycles[1]))
    return Message("dash.caption_tour", caption=caption, folds=tour_folds) if tour_folds else caption


def vector_caption(op) -> Message:
    """The PE array's title while the vector unit works (the optimizer's update, a bias and activation…)."""
    if op.layer:
        return Message("dash.vector_caption", layer=op.layer, phase=direction(op), name=op.name)
    return Message("dash.update_caption", name=op.name)


def vector_info(op, step: int) -> Message:
    st = op.stats
    return Message("dash.vector_info", name=op.name, step=step, cycles=count(st.cycles),
                   energy=nanojoules(st.energy_pj["total"]))


def op_option(op) -> Message:
    """A GEMM in the list of the step's GEMMs: "L1 forward: Y = X·W  (32×2 · 2×16)"."""
    st = op.stats
    return Message("dash.op_option", layer=op.layer, phase=Message(f"plot.gemm_phase.{op.phase}"), name=op.name,
                   shape=shape(st.m, st.k, st.n))


def op_info(op, step: int) -> Message:
    """The line above the PE array: the GEMM shown and its numbers."""
    st = op.stats
    return Message("dash.op_info", layer=op.layer, phase=Message(f"plot.gemm_phase.{op.phase}"), name=op.name,
                   step=step, folds=count(st.folds),
                   cycles=count(st.cycles), util=percent(st.utilization), mapping=percent(st.mapping_efficiency),
                   energy=nanojoules(st.energy_pj["total"]))


def no_step(rows: int, cols: int, dataflow: str, precision: str, ran_before: bool) -> Message:
    """Why the PE array shows no GEMM: a new network has run no step yet, or the chip changed since."""
    words = dict(step=Message("ctl.step"), train=Message("ctl.train_word"))
    if ran_before:
        return Message("dash.chip_changed", rows=rows, cols=cols, dataflow=dataflow, precision=precision, **words)
    return Message("dash.no_step", **words)


def too_large(rows: int, cols: int, largest: int) -> Message:
    return Message("dash.too_large", rows=rows, cols=cols, max=largest)


def layer_token(token: str) -> str:
    """A layer as written ("conv3x3x8s2", "pool2", "28x28x1") in the interface's typography."""
    conv = re.fullmatch(r"conv(\d+)x(\d+)(?:x\d+)?x(\d+)(.*)", token)
    if conv:
        kh, kw, filters, rest = conv.groups()
        return f"conv {kh}×{kw}×{filters}{(' ' + rest) if rest else ''}"
    pool = re.fullmatch(r"(max|avg)?pool(\d+)", token)
    if pool:
        kind, size = pool.groups()
        return f"{'avg' if kind == 'avg' else 'max'} pool {size}×{size}"
    return token.replace("x", "×") if re.fullmatch(r"\d+(x\d+)+", token) else token


def network_shape(sizes) -> str:
    """The network's layers, input first: "64 → 32 → 10" or "8×8×1 → conv 3×3×8 → max pool 2×2 → …"."""
    return " → ".join(layer_token(str(s)) for s in sizes if str(s) != "flatten")


def energy(pj: float) -> str:
    """An energy in the unit that reads best: pJ, nJ, µJ, mJ, J, or kWh for a lot of it."""
    joules = pj * 1e-12
    if joules >= 3.6e5:
        return f"{joules / 3.6e6:.3g} kWh"
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9)):
        if joules >= scale:
            return f"{joules / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def duration(seconds: float) -> str:
    """A time in the unit that reads best: ns, µs, ms, s, min, h."""
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"
