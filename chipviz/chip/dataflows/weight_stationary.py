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

Layout, for speed: each register plane is one flat buffer of R rows with stride s = C + 1.
Column 0 of a row is the left edge: the value entering that row this cycle is written there,
and PE(i, j) sits at i·s + 1 + j. Then one cycle is, for the whole array at once, "the new
register at y is the old one at y - 1" (operands move right) and "the new partial sum at y is
the old one at y - s plus this PE's product" (partial sums move down): straight loops over
contiguous memory that the compiler turns into SIMD operations, with the same multiplications
and additions, in the same order, as one PE at a time. The valid bits travel with the values
in one flag plane (A_VALID: the operand register holds a value, P_VALID: the partial sum does);
each PE adds its flags to one count a cycle (see A_VALID), which a tally sums now and then.
The two register sets alternate, two cycles per pass of the time loop. (The edge column
receives junk from the row above's last PE; it is overwritten before it is read and its weight
is 0, and the counts leave it out.)

The fold loop (_folds) is compiled without numba's reference counting, and indices that are
never negative are made unsigned, so the compiler emits no wraparound code for them: per cycle
at 16×16 these were as costly as the PEs' own work.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..memory import MACS, MOVING_READS, OPERAND_HOPS, OTHER_READS, PSUM_HOPS, SRAM_WRITES, STALLS
from ..trace import MAC, PRELOAD
from . import record
from .dram import fold_dram

# The flag plane's bits (uint16): its low byte and its high byte. numpy scalars, so that the flag arithmetic
# stays 16-bit (a Python int would widen it to 64-bit lanes).
A_VALID, P_VALID = np.uint16(1), np.uint16(256)
# Each PE adds its flags to a uint16 count every cycle: the low byte counts its operand hops, the high
# byte its partial-sum hops (at most 1 a cycle each). The counts are added into the fold's counters
# every TALLY_CYCLES cycles (even, and <= 255), so neither byte overflows into the next.
TALLY_CYCLES = 254
U = np.uint64


@njit(cache=True, nogil=True)
def run_folds(moving, stationary, out, rows, cols, tiles, flags, fits, operand_bytes, accumulator_bytes,
              bytes_per_cycle, counters, trace, trace_start):
    """Simulate every fold cycle by cycle, accumulating C into `out`; return the cycle count."""
    s = cols + 1
    size = rows * s
    w = np.zeros(size, out.dtype)
    wv = np.zeros(size, np.uint8)
    below, below_v = np.zeros(size, out.dtype), np.zeros(size, np.uint8)  # the preload's previous cycle
    a0, a1 = np.zeros(size, out.dtype), np.zeros(size, out.dtype)
    p0, p1 = np.zeros(size, out.dtype), np.zeros(size, out.dtype)
    f0, f1 = np.zeros(size, np.uint16), np.zeros(size, np.uint16)
    count = np.zeros(size, np.uint16)  # per PE, at its position: operand hops + 256 × partial-sum hops
    left = np.full(rows, -1, np.int64)
    top = np.full(cols, -1, np.int64)
    bottom = np.full(cols, -1, np.int64)
    # Views made once (making them per cycle costs reference counting), each from its source's offset so
    # that the cycle's loops index them all from 0, which the compiler vectorises. Row 0 (partial sums
    # start there), then rows 1..R-1 as one run (edge columns included).
    w_0, wv_0, w_r = w[1:s], wv[1:s], w[s:]
    c_0, c_r = count[1:s], count[s:]
    e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11 = _views(a0, p0, f0, a1, p1, f1, s)  # even cycles: set 0 -> 1
    o0, o1, o2, o3, o4, o5, o6, o7, o8, o9, o10, o11 = _views(a1, p1, f1, a0, p0, f0, s)  # odd cycles: 1 -> 0
    return _folds(moving, stationary, out, rows, tiles, flags, fits, operand_bytes, accumulator_bytes,
                  bytes_per_cycle, counters, trace, trace_start, w, wv, below, below_v, a0, a1, p0, p1, f0, f1, count,
                  left, top, bottom, w_0, wv_0, w_r, c_0, c_r, (e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11),
                  (o0, o1, o2, o3, o4, o5, o6, o7, o8, o9, o10, o11))


# Compiled without numba's reference counting (_nrt=False): it allocates nothing, and the arrays that the
# inlined per-cycle helpers receive would otherwise cost an atomic increment and decrement each, every
# cycle (a quarter of the run's time on 32×32).
@njit(cache=True, nogil=True, _nrt=False)
def _folds(moving, stationary, out, rows, tiles, flags, fits, operand_bytes, accumulator_bytes, bytes_per_cycle,
           counters, trace, trace_start, w, wv, below, below_v, a0, a1, p0, p1, f0, f1, count, left, top, bottom,
           w_0, wv_0, w_r, c_0, c_r, even, odd):
    """run_folds' loop over the folds, on the buffers and views it made."""
    e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11 = even
    o0, o1, o2, o3, o4, o5, o6, o7, o8, o9, o10, o11 = odd
    steps = moving.shape[0]
    cols = top.shape[0]
    cycles_per_fold = 2 * rows + cols + steps - 2
    stream_cycles = steps + rows + cols - 2
    s = cols + 1
    last = (rows - 1) * s + 1  # PE(R-1, 0): the bottom row, where partial sums leave
    n_trace = trace[0].shape[0]
    g = 0
    for f in range(tiles.shape[0]):
        cnt = counters[f]
        tile = tiles[f]
        g = _preload(stationary, tile, w, wv, below, below_v, rows, cols, cnt, trace, trace_start, g, f, left, top,
                     bottom)
        r0, c0 = tile[0], tile[2]
        used_rows = tile[1] - r0
        a0[:] = 0
        a1[:] = 0
        p0[:] = 0
        p1[:] = 0
        f0[:] = 0
        f1[:] = 0
        count[:] = 0
        macs = 0
        hops = 0
        psum_hops = 0
        reads = 0
        writes = 0
        for t in range(0, stream_cycles, 2):  # two cycles: register set 0 -> 1, then 1 -> 0
            reads += _cycle(moving, t, r0, used_rows, s, a0, f0, e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11,
                            w_0, wv_0, w_r, c_0, c_r, left)
            writes += _drain(out, t, rows, c0, p1, f1, last, cols)
            if 0 <= g - trace_start < n_trace:
                _record(trace, g - trace_start, f, t, steps, used_rows, last, a1, p1, f1, w, wv, left, top, bottom)
            g += 1
            if t + 1 < stream_cycles:
                reads += _cycle(moving, t + 1, r0, used_rows, s, a1, f1, o0, o1, o2, o3, o4, o5, o6, o7, o8, o9, o10,
                                o11, w_0, wv_0, w_r, c_0, c_r, left)
                writes += _drain(out, t + 1, rows, c0, p0, f0, last, cols)
                if 0 <= g - trace_start < n_trace:
                    _record(trace, g - trace_start, f, t + 1, steps, used_rows, last, a0, p0, f0, w, wv, left, top,
                            bottom)
                g += 1
            if t % TALLY_CYCLES == TALLY_CYCLES - 2 or t + 2 >= stream_cycles:
                m, h, q = _tally(count, wv, s)
                macs += m
                hops += h
                psum_hops += q
        cnt[MACS] += macs
        cnt[MOVING_READS] += reads
        cnt[SRAM_WRITES] += writes
        cnt[OPERAND_HOPS] += hops
        cnt[PSUM_HOPS] += psum_hops
        fold_dram(cnt, flags[f], fits, operand_bytes, accumulator_bytes, bytes_per_cycle, cycles_per_fold)
        for _ in range(cnt[STALLS]):
            record.stall(trace, trace_start, g, f, w, 1)
            g += 1
    return g


@njit(cache=True, nogil=True)
def _views(a, p, fl, a2, p2, fl2, s):
    """Reading (a, p, fl) and writing (a2, p2, fl2): row 0's operand in, operand out, flags in, flags out,
    partial sum out; then rows 1..R-1's operand in, partial sum in, flags from the left, flags from
    above, operand out, partial sum out, flags out."""
    size = a.shape[0]
    n = size - s
    return (a[0:s - 1], a2[1:s], fl[0:s - 1], fl2[1:s], p2[1:s],
            a[s - 1:size - 1], p[:n], fl[s - 1:size - 1], fl[:n], a2[s:], p2[s:], fl2[s:])


@njit(cache=True, nogil=True)
def _preload(stationary, tile, w, wv, below, below_v, rows, cols, cnt, trace, trace_start, g, f, left, top, bottom):
    """R cycles: the tile enters at the top edge, its last row first, and shifts down a row per cycle."""
    s = cols + 1
    size = w.shape[0]
    r0, c0 = tile[0], tile[2]
    used_rows, used_cols = tile[1] - r0, tile[3] - c0
    w[:] = 0
    wv[:] = 0
    left[:] = -1
    bottom[:] = -1
    reads = 0
    hops = 0
    for t in range(rows):
        # every row takes the one above it: through `below` (a copy), as a flat shift by one row
        for y in range(size):
            below[y] = w[y]
            below_v[y] = wv[y]
        w_down, wv_down, w_from, wv_from = w[s:], wv[s:], below[:size - s], below_v[:size - s]
        for y in range(w_down.shape[0]):
            w_down[y] = w_from[y]
            wv_down[y] = wv_from[y]
        row = rows - 1 - t
        for j in range(cols):
            if row < used_rows and j < used_cols:
                w[1 + j] = stationary[r0 + row, c0 + j]
                wv[1 + j] = 1
                top[j] = r0 + row
                reads += 1
            else:
                w[1 + j] = 0
                wv[1 + j] = 0
                top[j] = -1
        h = 0
        for y in range(size):  # the edge column's weight slots stay 0
            h += wv[y]
        hops += h
        k = g - trace_start
        if 0 <= k < trace[0].shape[0]:
            record.state_plane(trace[0], k, wv, wv, 1, PRELOAD)
            record.plane(trace[1], k, w, 1)
            record.zero_plane(trace[2], k)  # nothing moves yet
            record.zero_plane(trace[4], k)
            record.edges(trace, k, f, left, top, bottom)
        g += 1
    top[:] = -1
    cnt[OTHER_READS] += reads
    cnt[OPERAND_HOPS] += hops
    return g



@njit(cache=True, nogil=True, inline='always')  # a call per cycle would cost more than a small array's work
def _cycle(moving, t, r0, used_rows, s, a, fl, a_in0, a_out0, f_in0, f_out0, p_out0, a_in, p_in, f_left, f_up, a_out,
           p_out, f_out, w_0, wv_0, w_r, c_0, c_r, left):
    """One clock of the stream: the left edge takes the skewed inputs, then every operand moves one PE
    right and every partial sum one PE down adding the PE's product. Reads the register set (a, fl),
    writes the other, through the views from _views; each PE adds its new flags to its count (see
    _tally). Returns the operands read at the edge."""
    steps = moving.shape[0]
    rows = left.shape[0]
    # the left edge: row i receives moving[t - i] while 0 <= t - i < T (the skew), if the fold uses it; zero
    # otherwise. The load is clamped into `moving`, so it is always safe, and a select keeps or drops it (a branch
    # here mispredicts as the skew's window slides: 8 % slower)
    lo, hi = max(0, t - steps + 1), min(used_rows, t + 1)
    last_row, last_col = steps - 1, max(used_rows - 1, 0)
    for i in range(rows):  # (indices unsigned, all >= 0 here: no wraparound code per access)
        e = U(i * s)
        x = moving[U(min(max(t - i, 0), last_row)), U(r0 + min(i, last_col))]
        v = lo <= i < hi
        a[e] = x if v else 0
        fl[e] = A_VALID if v else np.uint16(0)
    reads = max(0, hi - lo)
    for y in range(a_out0.shape[0]):  # row 0: partial sums start here, where the weight is valid
        x = a_in0[y]
        a_out0[y] = x
        p_out0[y] = x * w_0[y]
        v = f_in0[y] & A_VALID
        v |= (v & wv_0[y]) * P_VALID
        f_out0[y] = v
        c_0[y] += v
    for y in range(a_out.shape[0]):  # rows 1..R-1
        x = a_in[y]
        a_out[y] = x
        p_out[y] = p_in[y] + x * w_r[y]
        v = (f_left[y] & A_VALID) | (f_up[y] & P_VALID)
        f_out[y] = v
        c_r[y] += v
    return reads


@njit(cache=True, nogil=True, inline='always')
def _drain(out, t, rows, c0, p, fl, last, cols):
    """The bottom edge: finished partial sums go to the output buffer. Returns how many."""
    writes = 0
    for j in range(cols):
        y = U(last + j)  # unsigned: no wraparound code (every index here is >= 0)
        if fl[y] & P_VALID:
            out[U(t - (rows - 1) - j), U(c0 + j)] += p[y]
            writes += 1
    return writes


@njit(cache=True, nogil=True)
def _tally(count, wv, s):
    """The PEs' MACs, operand hops and partial-sum hops since the last tally; clears the counts. An operand
    reaching a PE whose weight is valid is a MAC (the weights stay put while the operands stream). The
    edge column's slots hold junk and are left out."""
    macs, hops, psum_hops = 0, 0, 0
    for i in range(count.shape[0] // s):
        row, valid = count[i * s + 1:(i + 1) * s], wv[i * s + 1:(i + 1) * s]
        m, h, q = 0, 0, 0
        for j in range(row.shape[0]):
            c = row[j]
            h += c & 255
            m += (c & 255) * valid[j]
            q += c >> 8
        macs += m
        hops += h
        psum_hops += q
    count[:] = 0
    return macs, hops, psum_hops


# Inlined: a call per traced cycle, with its fifteen arguments, cost about a third of the recording. (os's
# _record is not: inlined there, it slowed os's untraced cycle loop by a sixth.)
@njit(cache=True, nogil=True, inline='always')
def _record(trace, k, f, t, steps, used_rows, last, a, p, fl, w, wv, left, top, bottom):
    """Cycle k of the trace window (0 <= k < its length), the fold's stream cycle t: the registers, and
    the indices that entered at the left edge (as _cycle fed them) and left at the bottom (as _drain)."""
    rows = left.shape[0]
    lo, hi = max(0, t - steps + 1), min(used_rows, t + 1)
    for i in range(rows):
        left[i] = t - i if lo <= i < hi else -1
    for j in range(bottom.shape[0]):
        bottom[j] = t - (rows - 1) - j if fl[last + j] & P_VALID else -1
    # (nothing moves down from the top: the trace stores no such plane, see trace.shared_planes)
    record.state_plane(trace[0], k, fl, wv, 1, MAC)  # the operand's valid bit and the weight's: a MAC
    record.plane(trace[1], k, w, 1)
    record.plane(trace[2], k, a, 1)
    record.plane(trace[4], k, p, 1)
    record.edges(trace, k, f, left, top, bottom)
