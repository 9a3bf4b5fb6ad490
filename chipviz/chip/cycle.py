"""The cycle-accurate engine: runs the dataflow's numba kernel register by register.

C comes out of the simulated array's movements (operands shifting one PE per cycle,
partial sums flowing and draining), never from a matmul; the counters are counted as
the values move.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from . import memory as mem
from . import trace as tr
from .analytic import analyze, check_countable, check_layout, dram_inputs
from .config import ChipConfig
from .dataflows import MODULES
from .mapping import Mapping
from .stats import GemmStats, summarize


class TraceTooLarge(ValueError):
    """A requested trace would exceed the memory budget."""


# How long the kernels take, for estimates before a run: nanoseconds per simulated cycle of a
# fold, per cycle, per array row and per PE. Fitted (rounded up, so estimates err long) to the
# kernels' wall times with the trace off and a warm numba cache on this project's 2-core machine,
# busy (load average 1.4-5.5): 256³ on 1×1 (15-24 ns/cycle), 512×64×64 on 2×2, 2000×64×64 on 4×4,
# 512³ on 16×16, 32×32, 128×128 and 256×256 (21-55 µs/cycle), 1024×512² on 64×64 and 192×192,
# 2048×256² on 256×256, each dataflow. Arrays much wider than tall (e.g. 1×256, 8×256: 1.6-3.9 µs
# a cycle) cost more per cycle than rows and PEs say: the term per column covers them.
NS_PER_CYCLE, NS_PER_ROW_CYCLE, NS_PER_COL_CYCLE, NS_PER_PE_CYCLE = 45.0, 12.0, 12.0, 0.9
# A recorded trace costs extra per PE per traced cycle (benchmarks/bench_chip.py (a): trace on runs
# at about a third of the untraced speed).
NS_PER_TRACED_PE_CYCLE = 6.0


def estimate_seconds(mapping: Mapping, config: ChipConfig, traced_cycles: int = 0) -> float:
    """The cycle-accurate engine's expected wall time for this GEMM, from the constants above.

    Measured as `compute_cycles × (45 + 12·R + 12·C + 0.9·R·C) ns`: against the sweep (without the
    column term) it was 1.1-2.7× the median measured time on square arrays (up to 3.7× on 1×1,
    where the kernels' per-fold cost dominates), never below it; the column term (12·C: 3.1 µs on
    1×256) lifts the wide arrays it fell short on (0.1× on 1×256) above their measured 1.6-3.9 µs.
    Stall cycles are not simulated PE by PE (they only advance the clock), so they are left out.
    """
    per_cycle = (NS_PER_CYCLE + NS_PER_ROW_CYCLE * config.rows + NS_PER_COL_CYCLE * config.cols
                 + NS_PER_PE_CYCLE * config.pes)
    cycles = mapping.folds * mapping.cycles_per_fold
    return (cycles * per_cycle + traced_cycles * config.pes * NS_PER_TRACED_PE_CYCLE) * 1e-9


def engine_bytes(m: int, k: int, n: int, config: ChipConfig) -> int:
    """Memory the cycle-accurate engine allocates for this GEMM besides its prepared operands and
    a trace: accumulator-typed copies of A and B (int8 widens; is transposes), C (is: twice, it is
    transposed back), the per-fold tables (counters, tiles, flags) and, in os, B's skewed column tile
    (values and flags, a row per cycle of a fold: see output_stationary._skew_top)."""
    acc = config.spec.accumulator_bytes
    folds = Mapping.of(m, k, n, config).folds
    skewed = (k + config.rows + config.cols - 1) * config.cols * (acc + 1) if config.dataflow == "os" else 0
    return acc * (m * k + k * n) + 2 * acc * m * n + folds * (mem.N_COUNTERS * 8 + 4 * 8 + 4) + skewed


_LOADED: set[tuple[str, str]] = set()  # (dataflow, precision) whose kernel this process has run
_LOADING = threading.Lock()


def engine_loaded(config: ChipConfig) -> bool:
    """Whether this process has run the kernel of `config`'s dataflow and precision: the first run
    loads it from numba's cache (about a second) or, on a cold cache, compiles it (much longer)."""
    return (config.dataflow, config.precision) in _LOADED


def load_engine(config: ChipConfig) -> None:
    """Load (or compile) the kernel of `config`'s dataflow and precision by running a 2×2 GEMM on it,
    traced like an animation's: afterwards any GEMM on such a chip starts at once."""
    with _LOADING:  # one load at a time: callers waiting on it find it done
        if engine_loaded(config):
            return
        tiny = ChipConfig(rows=2, cols=2, dataflow=config.dataflow, precision=config.precision)
        a = np.ones((2, 2), np.int8 if config.precision == "int8" else np.float32)
        simulate(a, a, tiny, trace_window=(0, 4))


def simulate(a: np.ndarray, b: np.ndarray, config: ChipConfig, trace_window: tuple[int, int] | None = None,
             trace_budget: int = tr.DEFAULT_BUDGET_BYTES, on_folds=None,
             chunk_seconds: float = 0.25, a_layout=None) -> tuple[np.ndarray, GemmStats, tr.Trace | None]:
    """Run C = A·B cycle by cycle on `config`; optionally record cycles [start, stop) of it.
    `a_layout`: A is an im2col operand (see analyze), so DRAM reads each input pixel once.

    Operands must already be in the chip's operand type (see chipviz.chip.prepare_operands).
    With `on_folds`, the folds run in chunks of about `chunk_seconds` each (timed as they run)
    and `on_folds(done, total)` is called after each: progress for a caller, and a point where
    Ctrl-C (KeyboardInterrupt) stops the run. Without it the folds run in one kernel call.
    Raises CountTooLarge if a counter could pass the exact range (analytic.COUNT_LIMIT).
    """
    m, k = a.shape
    n = b.shape[1]
    mapping = Mapping.of(m, k, n, config)
    check_countable(mapping, config)
    if a_layout is not None:
        check_layout(a_layout, m, k)
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
    trace_arrays, start = _trace_arrays(trace_window, mapping, config, trace_budget, a_layout)
    tiles = mapping.fold_tiles()
    counters = mem.new_counters(mapping.folds)
    fits = dram_inputs(counters, mapping, config, a_layout)
    run = MODULES[config.dataflow].run_folds
    flags = mapping.fold_flags()
    memory = (fits, spec.operand_bytes, spec.accumulator_bytes, float(config.dram_bytes_per_cycle))
    if on_folds is None:
        total = run(left, top, out, config.rows, config.cols, tiles, flags, *memory, counters, trace_arrays, start)
    else:
        # Folds are independent runs of the kernel (each fills and drains; C accumulates in `out`), so a
        # chunk of them is a kernel call on slices of the fold tables. Its cycles count from 0: the trace
        # window is shifted by the cycles already run. Chunks grow until one lasts about chunk_seconds.
        total, done, folds, chunk = 0, 0, mapping.folds, 1
        while done < folds:
            stop = min(folds, done + chunk)
            began, before = time.perf_counter(), total
            total += run(left, top, out, config.rows, config.cols, tiles[done:stop], flags[done:stop], *memory,
                         counters[done:stop], trace_arrays, start - total)
            took = time.perf_counter() - began
            if trace_window is not None:  # the kernel numbered this chunk's folds from 0
                first, last = max(0, before - start), max(0, min(len(trace_arrays[5]), total - start))
                trace_arrays[5][first:last] += done
            done = stop
            on_folds(done, folds)
            chunk = max(1, min(chunk * 4, int(chunk * chunk_seconds / took) if took > 0 else chunk * 4))
    stats = summarize(counters, mapping, config, engine="cycle")
    assert total == stats.cycles, "kernel cycle count disagrees with its own fold counters"
    _LOADED.add((config.dataflow, config.precision))
    trace = None
    if trace_window is not None:
        trace = tr.Trace.of(start, trace_arrays, config.dataflow, tiles, flow.roles)
    return (out.T.copy() if transposed else out), stats, trace


def _trace_arrays(window, mapping: Mapping, config: ChipConfig, budget: int, a_layout=None):
    if window is None:
        return tr.allocate(config.rows, config.cols, 0, config.dataflow), 0
    total = analyze(mapping.m, mapping.k, mapping.n, config, a_layout).cycles
    start, stop = window
    whole = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (start, stop))
    if not whole or not 0 <= start < stop:
        raise ValueError(f"trace window must be whole numbers with 0 <= start < stop, got {window!r}")
    if start >= total:
        raise ValueError(f"trace window starts at cycle {start}, but this GEMM runs only {total} cycles "
                         f"(0 to {total - 1})")
    stop = min(stop, total)  # a window past the end is cut at the last cycle
    n_cycles = stop - start
    need = n_cycles * tr.bytes_per_cycle(config.rows, config.cols, config.dataflow)
    if need > budget:
        raise TraceTooLarge(
            f"a trace of {n_cycles:,} cycles on a {config.rows}×{config.cols} array needs {_size(need)}, "
            f"over the {_size(budget)} budget: record a shorter window of cycles "
            f"(at most {budget // tr.bytes_per_cycle(config.rows, config.cols, config.dataflow):,} cycles)")
    return tr.allocate(config.rows, config.cols, n_cycles, config.dataflow), start


def _size(n_bytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{n_bytes} bytes"
