"""The cycle-accurate engine: runs the dataflow's numba kernel register by register.

C comes out of the simulated array's movements (operands shifting one PE per cycle,
partial sums flowing and draining), never from a matmul; the counters are counted as
the values move.
"""
from __future__ import annotations

import numpy as np

from . import memory as mem
from . import trace as tr
from .analytic import analyze
from .config import ChipConfig
from .dataflows import MODULES
from .mapping import Mapping
from .stats import GemmStats, summarize


class TraceTooLarge(ValueError):
    """A requested trace would exceed the memory budget."""


def simulate(a: np.ndarray, b: np.ndarray, config: ChipConfig, trace_window: tuple[int, int] | None = None,
             trace_budget: int = tr.DEFAULT_BUDGET_BYTES) -> tuple[np.ndarray, GemmStats, tr.Trace | None]:
    """Run C = A·B cycle by cycle on `config`; optionally record cycles [start, stop) of it.

    Operands must already be in the chip's operand type (see chipviz.chip.prepare_operands).
    """
    m, k = a.shape
    n = b.shape[1]
    mapping = Mapping.of(m, k, n, config)
    spec = config.spec
    flow = config.flow
    left, top = flow.operand_order(a, b)  # the operand entering the left edge, and the other one
    transposed = flow.transposed  # is: the ws kernel on Cᵀ = Bᵀ·Aᵀ (Bᵀ streams, Aᵀ stays)
    if transposed:
        left, top = left.T, top.T
    acc = spec.accumulator_dtype
    left = np.ascontiguousarray(left, dtype=acc)
    top = np.ascontiguousarray(top, dtype=acc)
    out = np.zeros((n, m) if transposed else (m, n), acc)
    trace_arrays, start = _trace_arrays(trace_window, mapping, config, trace_budget)
    tiles = mapping.fold_tiles()
    counters = np.zeros((mapping.folds, mem.N_COUNTERS), np.int64)
    fits = mem.operand_fits(m, k, n, config.dataflow, config)
    total = MODULES[config.dataflow].run_folds(left, top, out, config.rows, config.cols, tiles, mapping.fold_flags(),
                                               fits, spec.operand_bytes, spec.accumulator_bytes,
                                               float(config.dram_bytes_per_cycle), counters, trace_arrays, start)
    stats = summarize(counters, mapping, config, engine="cycle")
    assert total == stats.cycles, "kernel cycle count disagrees with its own fold counters"
    trace = None
    if trace_window is not None:
        trace = tr.Trace(start, *trace_arrays, dataflow=config.dataflow, tiles=tiles, roles=flow.roles)
    return (out.T.copy() if transposed else out), stats, trace


def _trace_arrays(window, mapping: Mapping, config: ChipConfig, budget: int):
    if window is None:
        return tr.allocate(config.rows, config.cols, 0), 0
    total = analyze(mapping.m, mapping.k, mapping.n, config).cycles
    start, stop = window
    whole = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (start, stop))
    if not whole or not 0 <= start < stop:
        raise ValueError(f"trace window must be whole numbers with 0 <= start < stop, got {window!r}")
    if start >= total:
        raise ValueError(f"trace window starts at cycle {start}, but this GEMM runs only {total} cycles "
                         f"(0 to {total - 1})")
    stop = min(stop, total)  # a window past the end is cut at the last cycle
    n_cycles = stop - start
    need = n_cycles * tr.bytes_per_cycle(config.rows, config.cols)
    if need > budget:
        raise TraceTooLarge(
            f"a trace of {n_cycles:,} cycles on a {config.rows}×{config.cols} array needs {_size(need)}, "
            f"over the {_size(budget)} budget: record a shorter window of cycles "
            f"(at most {budget // tr.bytes_per_cycle(config.rows, config.cols):,} cycles)")
    return tr.allocate(config.rows, config.cols, n_cycles), start


def _size(n_bytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{n_bytes} bytes"
