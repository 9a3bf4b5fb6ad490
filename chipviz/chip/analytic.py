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


def fold_counters(mapping: Mapping, config: ChipConfig) -> np.ndarray:
    """The per-fold counter table (columns as in memory.py) in closed form."""
    tiles = mapping.fold_tiles()
    used_rows = tiles[:, 1] - tiles[:, 0]
    used_cols = tiles[:, 3] - tiles[:, 2]
    rows, cols, steps = mapping.rows, mapping.cols, mapping.spread[2]
    c = np.zeros((mapping.folds, mem.N_COUNTERS), np.int64)
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
    fits = mem.operand_fits(mapping.m, mapping.k, mapping.n, mapping.dataflow, config)
    spec = config.spec
    mem.all_folds_dram(c, mapping.fold_flags(), fits, spec.operand_bytes, spec.accumulator_bytes,
                       float(config.dram_bytes_per_cycle), mapping.cycles_per_fold)
    return c


def analyze(m: int, k: int, n: int, config: ChipConfig) -> GemmStats:
    """Counters and figures for an M×K by K×N GEMM on `config`, without running it."""
    if not (type(m) is int and type(k) is int and type(n) is int and m > 0 and k > 0 and n > 0):
        mapping = Mapping.of(m, k, n, config)  # validates (and converts) before the cache sees them
        m, k, n = mapping.m, mapping.k, mapping.n
    return _analyze(m, k, n, config)


@lru_cache(maxsize=4096)
def _analyze(m: int, k: int, n: int, config: ChipConfig) -> GemmStats:
    """Memoised: a training loop asks for the same few shapes every step."""
    mapping = Mapping.of(m, k, n, config)
    return summarize(fold_counters(mapping, config), mapping, config, engine="analytic")
