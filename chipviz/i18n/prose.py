"""The sentences built from the simulator's numbers, as Messages, and the one way to write a unit.

A view asks for a Message (what to say) and renders it in its language (`Message.render`);
switching the language renders the same Message again. Numbers are written by the helpers
below, so a count, a share or an energy looks the same in every view.
"""
from __future__ import annotations

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


def op_caption(op, tour_folds: int | None = None) -> Message:
    """The PE array's title for a GEMM: "layer 1 · forward · Y = X·W" (on the tour, which folds it skips)."""
    caption = Message("dash.caption", layer=op.layer, phase=direction(op), name=op.name)
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
