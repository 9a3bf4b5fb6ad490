"""The analytic engine: every counter of a GEMM in closed form, without the cycle loop.

Each formula below is what the cycle-accurate kernels count one register move at a time;
the tests hold the two to exact equality.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import memory as mem
from .config import ChipConfig
from .mapping import Mapping
from .stats import GemmStats, summarize


# Every counter is an exact integer: the engines count in int64 and derive figures (time,
# utilisation, the DRAM cycles a fold needs) in float64, exact for integers up to 2^53. A GEMM
# whose counters could pass that is refused up front rather than reported wrong.
COUNT_LIMIT = 2**53


class CountTooLarge(ValueError):
    """A GEMM so large that some counter could pass COUNT_LIMIT: refused, never reported wrapped."""


def counter_bound(mapping: Mapping, config: ChipConfig) -> int:
    """An upper bound, in exact Python integers, on every counter of this GEMM (MACs, reads,
    writes, hops, DRAM bytes, cycles with stalls) and on the DRAM cycles any one fold needs.

    With r ≤ R rows and c ≤ C columns used and T steps, a fold does at most r·c·T MACs,
    r·T + c·T + r·c operand reads, r·c + T·c writes, T·(r·C + c·R) hops (values cross the
    whole array) plus the preload's r·c·(r+1)/2, and DRAM traffic of those reads and writes
    (partial sums spilled both ways), which takes ceil(traffic / bandwidth) cycles.
    """
    rows, cols = config.rows, config.cols
    spread_rows, spread_cols, steps = mapping.spread
    r, c = min(rows, spread_rows), min(cols, spread_cols)
    folds, per_fold = mapping.folds, mapping.cycles_per_fold
    spec = config.spec
    reads = r * steps + c * steps + r * c
    writes = r * c + steps * c
    hops = steps * (r * cols + c * rows) + r * c * (r + 1) // 2
    traffic = reads * spec.operand_bytes + 2 * writes * spec.accumulator_bytes
    num, den = float(config.dram_bytes_per_cycle).as_integer_ratio()
    dram_cycles = -(-traffic * den // num)
    return folds * max(r * c * steps, reads, writes + rows + cols, hops, traffic, per_fold + dram_cycles)


def check_countable(mapping: Mapping, config: ChipConfig) -> None:
    """Raise CountTooLarge, naming the limit, if a counter of this GEMM could pass COUNT_LIMIT."""
    bound = counter_bound(mapping, config)
    if bound > COUNT_LIMIT:
        raise CountTooLarge(
            f"GEMM M={mapping.m} K={mapping.k} N={mapping.n} is too large to count exactly on a "
            f"{config.rows}×{config.cols} {config.dataflow} array: its counters could reach {bound:.3g}, over "
            f"2^53 = {COUNT_LIMIT:,}, the largest count ChipViz keeps exact")


def fold_counters(mapping: Mapping, config: ChipConfig, a_layout=None) -> np.ndarray:
    """The per-fold counter table (columns as in memory.py) in closed form."""
    tiles = mapping.fold_tiles()
    used_rows = tiles[:, 1] - tiles[:, 0]
    used_cols = tiles[:, 3] - tiles[:, 2]
    rows, cols, steps = mapping.rows, mapping.cols, mapping.spread[2]
    c = mem.new_counters(mapping.folds)
    c[:, mem.MACS] = used_rows * used_cols * steps
    if mapping.flow.output_stationary:
        c[:, mem.MOVING_READS] = used_rows * steps  # A's rows enter the left edge
        c[:, mem.OTHER_READS] = used_cols * steps  # B's columns enter the top edge
        c[:, mem.SRAM_WRITES] = used_rows * used_cols  # the finished tile is read out once
        c[:, mem.OPERAND_HOPS] = steps * (used_rows * cols + used_cols * rows)  # each crosses the array
    else:  # an operand stays (ws, is): preloaded once, the other streams, partial sums flow down
        c[:, mem.MOVING_READS] = steps * used_rows
        c[:, mem.OTHER_READS] = used_rows * used_cols  # the stationary tile, preloaded once
        c[:, mem.SRAM_WRITES] = steps * used_cols  # one partial sum per streamed row and used column
        # preload: the weight for row i makes i + 1 hops down; streamed values cross all columns
        c[:, mem.OPERAND_HOPS] = used_cols * used_rows * (used_rows + 1) // 2 + steps * used_rows * cols
        c[:, mem.PSUM_HOPS] = steps * used_cols * rows  # partial sums cross all rows
    fits = dram_inputs(c, mapping, config, a_layout)
    spec = config.spec
    mem.all_folds_dram(c, mapping.fold_flags(), fits, spec.operand_bytes, spec.accumulator_bytes,
                       float(config.dram_bytes_per_cycle), mapping.cycles_per_fold)
    return c


def dram_inputs(counters: np.ndarray, mapping: Mapping, config: ChipConfig, a_layout=None) -> np.ndarray:
    """The DRAM rule's inputs for both engines: which operands fit their SRAM and, for an im2col
    A (`a_layout`, e.g. chipviz.chip.conv.Im2colOperand), the input pixels each fold fetches."""
    if a_layout is None:
        return mem.operand_fits(mapping.m, mapping.k, mapping.n, mapping.dataflow, config)
    check_layout(a_layout, mapping.m, mapping.k)
    fits = mem.operand_fits(mapping.m, mapping.k, mapping.n, mapping.dataflow, config, a_elements=a_layout.touched)
    mem.fold_footprints(counters, mapping, fits, a_layout)
    return fits


def check_layout(a_layout, m: int, k: int) -> None:
    if tuple(a_layout.shape) != (m, k):
        raise ValueError(f"the im2col layout describes a {a_layout.shape[0]}×{a_layout.shape[1]} operand, "
                         f"but A is {m}×{k}")


def analyze(m: int, k: int, n: int, config: ChipConfig, a_layout=None) -> GemmStats:
    """Counters and figures for an M×K by K×N GEMM on `config`, without running it. With
    `a_layout` (an im2col operand, see chipviz.chip.conv.Im2colOperand) DRAM reads each of A's
    input pixels once instead of each unrolled element.

    Raises CountTooLarge (a ValueError) for a GEMM whose counters could pass COUNT_LIMIT."""
    if not (type(m) is int and type(k) is int and type(n) is int and m > 0 and k > 0 and n > 0):
        mapping = Mapping.of(m, k, n, config)  # validates (and converts) before the cache sees them
        m, k, n = mapping.m, mapping.k, mapping.n
    if a_layout is not None:
        check_layout(a_layout, m, k)
    return _analyze(m, k, n, config, a_layout)


@lru_cache(maxsize=4096)
def _analyze(m: int, k: int, n: int, config: ChipConfig, a_layout=None) -> GemmStats:
    """Memoised: a training loop asks for the same few shapes every step."""
    mapping = Mapping.of(m, k, n, config)
    check_countable(mapping, config)
    return summarize(fold_counters(mapping, config, a_layout), mapping, config, engine="analytic")
