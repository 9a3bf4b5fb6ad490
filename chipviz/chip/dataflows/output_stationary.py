"""Output stationary (os): every PE keeps one element of C and accumulates it in place.

Per fold the array holds an R×C tile of C. Row i of A's tile enters the left edge and
column j of B's tile the top edge, both skewed, so that A[m, k] and B[k, n] meet in
PE(i, j) at cycle k + i + j. There is no preload: the fold lasts K + R + C - 2 cycles,
after which the finished tile is read out to the output buffer.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..memory import MACS, MOVING_READS, OPERAND_HOPS, OTHER_READS, SRAM_WRITES, STALLS, fold_dram
from ..trace import record_cycle, record_stall


@njit(cache=True, nogil=True)
def run_folds(a_matrix, b_matrix, out, rows, cols, tiles, flags, fits, operand_bytes, accumulator_bytes,
              bytes_per_cycle, counters, trace, trace_start):
    """Simulate every fold cycle by cycle, writing C into `out`; return the cycle count."""
    depth = a_matrix.shape[1]
    cycles_per_fold = depth + rows + cols - 2
    acc = np.zeros((rows, cols), out.dtype)
    a = np.zeros((rows, cols), out.dtype)
    a_valid = np.zeros((rows, cols), np.uint8)
    b = np.zeros((rows, cols), out.dtype)
    b_valid = np.zeros((rows, cols), np.uint8)
    state = np.zeros((rows, cols), np.uint8)
    left = np.full(rows, -1, np.int64)
    top = np.full(cols, -1, np.int64)
    bottom = np.full(cols, -1, np.int64)
    tracing = trace[0].shape[0] > 0  # a separate branch lets LLVM keep the untraced loop tight
    g = 0
    for f in range(tiles.shape[0]):
        r0, r1, c0, c1 = tiles[f, 0], tiles[f, 1], tiles[f, 2], tiles[f, 3]
        used_rows, used_cols = r1 - r0, c1 - c0
        cnt = counters[f]
        acc[:] = 0
        a[:] = 0
        a_valid[:] = 0
        b[:] = 0
        b_valid[:] = 0
        for t in range(cycles_per_fold):
            for i in range(rows):
                for j in range(cols - 1, 0, -1):
                    a[i, j] = a[i, j - 1]
                    a_valid[i, j] = a_valid[i, j - 1]
                k = t - i
                if i < used_rows and 0 <= k < depth:
                    a[i, 0] = a_matrix[r0 + i, k]
                    a_valid[i, 0] = 1
                    left[i] = k
                    cnt[MOVING_READS] += 1
                else:
                    a[i, 0] = 0
                    a_valid[i, 0] = 0
                    left[i] = -1
            for i in range(rows - 1, 0, -1):
                for j in range(cols):
                    b[i, j] = b[i - 1, j]
                    b_valid[i, j] = b_valid[i - 1, j]
            for j in range(cols):
                k = t - j
                if j < used_cols and 0 <= k < depth:
                    b[0, j] = b_matrix[k, c0 + j]
                    b_valid[0, j] = 1
                    top[j] = k
                    cnt[OTHER_READS] += 1
                else:
                    b[0, j] = 0
                    b_valid[0, j] = 0
                    top[j] = -1
            macs = 0
            hops = 0
            for i in range(rows):
                for j in range(cols):
                    acc[i, j] += a[i, j] * b[i, j]
                    did = a_valid[i, j] & b_valid[i, j]
                    macs += did
                    hops += a_valid[i, j] + b_valid[i, j]
                    state[i, j] = did  # MAC == 1, IDLE == 0
            cnt[MACS] += macs
            cnt[OPERAND_HOPS] += hops
            if tracing:
                record_cycle(trace, trace_start, g, f, state, acc, a, b, acc, left, top, bottom)
            g += 1
        for i in range(used_rows):
            for j in range(used_cols):
                out[r0 + i, c0 + j] = acc[i, j]
        cnt[SRAM_WRITES] += used_rows * used_cols
        fold_dram(cnt, flags[f], fits, operand_bytes, accumulator_bytes, bytes_per_cycle, cycles_per_fold)
        for _ in range(cnt[STALLS]):
            record_stall(trace, trace_start, g, f, acc)
            g += 1
    return g
