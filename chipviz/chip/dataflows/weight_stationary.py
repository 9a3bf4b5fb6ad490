"""Weight stationary (ws, TPU v1): B's tile waits in the PEs while A streams through.

Per fold: R preload cycles shift the stationary tile down from the top edge, one row per
cycle; then row m of the moving operand enters row i at the left edge at cycle m + i
(the skew), moves one PE right per cycle, and meets the weight in every column. Partial
sums start at row 0, move one PE down per cycle adding each PE's product, and leave the
bottom edge of column j at cycle m + (R-1) + j into the output buffer, which adds up the
sums of successive row folds (the K reduction).

Input stationary is the same machine on the transposed GEMM (see input_stationary.py), so
this kernel is written in neutral terms: `stationary` (Sr×Sc), `moving` (T×Sr), `out` (T×Sc).
Registers are double-buffered: each cycle reads last cycle's registers and writes the next
ones, as clocked flip-flops do, then the two sets swap.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..memory import MACS, MOVING_READS, OPERAND_HOPS, OTHER_READS, PSUM_HOPS, SRAM_WRITES, STALLS, fold_dram
from ..trace import PRELOAD, record_cycle, record_stall


@njit(cache=True, nogil=True)
def run_folds(moving, stationary, out, rows, cols, tiles, flags, fits, operand_bytes, accumulator_bytes,
              bytes_per_cycle, counters, trace, trace_start):
    """Simulate every fold cycle by cycle, accumulating C into `out`; return the cycle count."""
    steps = moving.shape[0]
    cycles_per_fold = 2 * rows + cols + steps - 2
    w = np.zeros((rows, cols), out.dtype)
    w_valid = np.zeros((rows, cols), np.uint8)
    g = 0
    for f in range(tiles.shape[0]):
        g = _preload(stationary, tiles[f], w, w_valid, counters[f], trace, trace_start, g, f)
        g = _stream(moving, tiles[f], w, w_valid, out, counters[f], trace, trace_start, g, f)
        fold_dram(counters[f], flags[f], fits, operand_bytes, accumulator_bytes, bytes_per_cycle, cycles_per_fold)
        for _ in range(counters[f, STALLS]):
            record_stall(trace, trace_start, g, f, w)
            g += 1
    return g


@njit(cache=True, nogil=True)
def _preload(stationary, tile, w, w_valid, cnt, trace, trace_start, g, f):
    """R cycles: the tile enters at the top edge, its last row first, and shifts down a row per cycle."""
    rows, cols = w.shape
    r0, c0 = tile[0], tile[2]
    used_rows, used_cols = tile[1] - r0, tile[3] - c0
    w[:] = 0
    w_valid[:] = 0
    state = np.zeros((rows, cols), np.uint8)
    idle = np.zeros((rows, cols), w.dtype)
    left = np.full(rows, -1, np.int64)
    top = np.full(cols, -1, np.int64)
    bottom = np.full(cols, -1, np.int64)
    reads = 0
    hops = 0
    tracing = trace[0].shape[0] > 0
    for s in range(rows):
        for i in range(rows - 1, 0, -1):
            for j in range(cols):
                valid = w_valid[i - 1, j]
                w[i, j] = w[i - 1, j]
                w_valid[i, j] = valid
                state[i, j] = valid * PRELOAD
                hops += valid
        row = rows - 1 - s
        for j in range(cols):
            if row < used_rows and j < used_cols:
                w[0, j] = stationary[r0 + row, c0 + j]
                w_valid[0, j] = 1
                top[j] = r0 + row
                reads += 1
            else:
                w[0, j] = 0
                w_valid[0, j] = 0
                top[j] = -1
            state[0, j] = w_valid[0, j] * PRELOAD
            hops += w_valid[0, j]
        if tracing:
            record_cycle(trace, trace_start, g, f, state, w, idle, idle, idle, left, top, bottom)
        g += 1
    cnt[OTHER_READS] += reads
    cnt[OPERAND_HOPS] += hops
    return g


@njit(cache=True, nogil=True)
def _stream(moving, tile, w, w_valid, out, cnt, trace, trace_start, g, f):
    """T + R + C - 2 cycles: skewed inputs move one PE right, partial sums one PE down."""
    rows, cols = w.shape
    steps = moving.shape[0]
    r0, c0 = tile[0], tile[2]
    used_rows, used_cols = tile[1] - r0, tile[3] - c0
    a, a2 = np.zeros((rows, cols), w.dtype), np.zeros((rows, cols), w.dtype)
    a_valid, a2_valid = np.zeros((rows, cols), np.uint8), np.zeros((rows, cols), np.uint8)
    p, p2 = np.zeros((rows, cols), w.dtype), np.zeros((rows, cols), w.dtype)
    p_valid, p2_valid = np.zeros((rows, cols), np.uint8), np.zeros((rows, cols), np.uint8)
    state = np.zeros((rows, cols), np.uint8)
    idle = np.zeros((rows, cols), w.dtype)
    left = np.full(rows, -1, np.int64)
    top = np.full(cols, -1, np.int64)
    bottom = np.full(cols, -1, np.int64)
    macs = 0
    hops = 0
    psum_hops = 0
    reads = 0
    writes = 0
    tracing = trace[0].shape[0] > 0  # a separate branch lets LLVM keep the untraced loop tight
    for t in range(steps + rows + cols - 2):
        for i in range(rows):
            step = t - i
            if i < used_rows and 0 <= step < steps:
                a2[i, 0] = moving[step, r0 + i]
                a2_valid[i, 0] = 1
                left[i] = step
                reads += 1
            else:
                a2[i, 0] = 0
                a2_valid[i, 0] = 0
                left[i] = -1
            for j in range(1, cols):
                a2[i, j] = a[i, j - 1]
                a2_valid[i, j] = a_valid[i, j - 1]
            if i == 0:
                for j in range(cols):
                    p2[0, j] = a2[0, j] * w[0, j]
                    p2_valid[0, j] = a2_valid[0, j] if j < used_cols else 0
            else:
                for j in range(cols):
                    p2[i, j] = p[i - 1, j] + a2[i, j] * w[i, j]
                    p2_valid[i, j] = p_valid[i - 1, j]
            row_macs = 0
            row_hops = 0
            row_psum_hops = 0
            for j in range(cols):
                did = a2_valid[i, j] & w_valid[i, j]
                state[i, j] = did  # MAC == 1, IDLE == 0
                row_macs += did
                row_hops += a2_valid[i, j]
                row_psum_hops += p2_valid[i, j]
            macs += row_macs
            hops += row_hops
            psum_hops += row_psum_hops
        a, a2 = a2, a
        a_valid, a2_valid = a2_valid, a_valid
        p, p2 = p2, p
        p_valid, p2_valid = p2_valid, p_valid
        for j in range(cols):
            bottom[j] = -1
            if p_valid[rows - 1, j]:
                step = t - (rows - 1) - j
                out[step, c0 + j] += p[rows - 1, j]
                bottom[j] = step
                writes += 1
        if tracing:
            record_cycle(trace, trace_start, g, f, state, w, a, idle, p, left, top, bottom)
        g += 1
    cnt[MACS] += macs
    cnt[MOVING_READS] += reads
    cnt[SRAM_WRITES] += writes
    cnt[OPERAND_HOPS] += hops
    cnt[PSUM_HOPS] += psum_hops
    return g
