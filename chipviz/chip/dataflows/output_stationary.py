"""Output stationary (os): every PE keeps one element of C and accumulates it in place.

Per fold the array holds an R×C tile of C. Row i of A's tile enters the left edge and
column j of B's tile the top edge, both skewed, so that A[m, k] and B[k, n] meet in
PE(i, j) at cycle k + i + j. There is no preload: the fold lasts K + R + C - 2 cycles,
after which the finished tile is read out to the output buffer.

Layout, for speed: each register plane is one flat buffer of R + 1 rows with stride
s = C + 1; row 0 is the top edge and column 0 the left edge (what enters the array this cycle
is written there), and PE(i, j) sits at (i + 1)·s + 1 + j. One cycle is then, for the whole
array at once, "the new A register at y is the old one at y - 1" (right), "the new B register
at y is the old one at y - s" (down) and "the accumulator at y adds their product": one straight
loop over contiguous memory that the compiler turns into SIMD operations, with the same
multiplications and additions, in the same order, as one PE at a time. The valid bits travel
with the values in one flag plane (A_VALID: A's register holds a value, B_VALID: B's), so a PE
multiplies-and-accumulates (MAC) where both bits are set; each PE adds its flags to one count
a cycle (see A_VALID), which a tally sums now and then. Registers are double-buffered (each
cycle reads last cycle's and writes the next; the two sets alternate, two cycles per pass of
the time loop). An edge column receives junk from the row above's last PE: it is overwritten
before it is read, meets only zeros from B's corner, and the counts leave it out.

The edges are written a cycle ahead, into the buffer set the cycle writes: the top edge before
the shift (row 0 is never written by it), the left edge after it (over the junk). B's column tile
stays for consecutive folds (column folds outer, row folds inner), so it is laid out skewed once
per column fold (_skew_top): the top edge of cycle t is then row t of that table, one contiguous
copy. A's row tile changes every fold; its left edge is read element by element, with selects
instead of branches (a branch here mispredicts as the skew's window slides, and cost a tenth).

The fold loop (_folds) is compiled without numba's reference counting, and indices that are
never negative are made unsigned, so the compiler emits no wraparound code for them: per cycle
at 16×16 these were as costly as the PEs' own work.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..memory import MACS, MOVING_READS, OPERAND_HOPS, OTHER_READS, SRAM_WRITES, STALLS
from ..trace import MAC
from . import record
from .dram import fold_dram

# The flag plane's bits (uint8), numpy scalars so that the flag arithmetic stays narrow (a Python int
# would widen it to 64-bit lanes). Each PE adds its flags to a uint16 count every cycle, plus MAC_UNIT
# when both are set: bits 0-4 count A's hops into it, bits 5-9 B's, bits 10-14 its MACs (at most 1 a
# cycle each). The counts are added into the fold's counters every TALLY_CYCLES cycles (even, and
# <= 31), so no field overflows into the next.
A_VALID, B_VALID, B_SHIFT = np.uint8(1), np.uint8(1 << 5), np.uint8(5)
MAC_UNIT = np.uint16(1 << 10)
TALLY_CYCLES = 30
U = np.uint64


@njit(cache=True, nogil=True)
def run_folds(a_matrix, b_matrix, out, rows, cols, tiles, flags, fits, operand_bytes, accumulator_bytes,
              bytes_per_cycle, counters, trace, trace_start):
    """Simulate every fold cycle by cycle, writing C into `out`; return the cycle count."""
    s = cols + 1
    size = (rows + 1) * s
    acc = np.zeros(size, out.dtype)
    a0, a1 = np.zeros(size, out.dtype), np.zeros(size, out.dtype)
    b0, b1 = np.zeros(size, out.dtype), np.zeros(size, out.dtype)
    f0, f1 = np.zeros(size, np.uint8), np.zeros(size, np.uint8)
    left = np.full(rows, -1, np.int64)
    top = np.full(cols, -1, np.int64)
    bottom = np.full(cols, -1, np.int64)
    reads = np.zeros(2, np.int64)
    # Views made once (making them per cycle costs reference counting): each starts at its source's
    # offset, so the cycle's loop indexes them all from 0, which the compiler vectorises.
    even = _views(a0, b0, f0, a1, b1, f1, s)  # even cycles: buffers 0 -> 1
    odd = _views(a1, b1, f1, a0, b0, f0, s)  # odd cycles: 1 -> 0
    count = np.zeros(size - s, np.uint16)  # per PE, indexed from PE(0, -1): see _cycle's views
    # B's skewed column tile (see _skew_top): a row per cycle of a fold and one more (the edge written
    # ahead of the last cycle)
    height = b_matrix.shape[0] + rows + cols - 1
    skew = (np.zeros((height, cols), out.dtype), np.zeros((height, cols), np.uint8))
    return _folds(a_matrix, b_matrix, out, rows, tiles, flags, fits, operand_bytes, accumulator_bytes,
                  bytes_per_cycle, counters, trace, trace_start, acc, a0, a1, b0, b1, f0, f1, left, top, bottom,
                  reads, count, even, odd, skew)


# Compiled without numba's reference counting (_nrt=False): it allocates nothing, and the arrays that the
# inlined per-cycle helpers receive would otherwise cost an atomic increment and decrement each, every
# cycle.
@njit(cache=True, nogil=True, _nrt=False)
def _folds(a_matrix, b_matrix, out, rows, tiles, flags, fits, operand_bytes, accumulator_bytes, bytes_per_cycle,
           counters, trace, trace_start, acc, a0, a1, b0, b1, f0, f1, left, top, bottom, reads, count, even, odd, skew):
    """run_folds' loop over the folds, on the buffers and views it made."""
    e0, e1, e2, e3, e4, e5, e6 = even
    o0, o1, o2, o3, o4, o5, o6 = odd
    depth = a_matrix.shape[1]
    cols = top.shape[0]
    cycles_per_fold = depth + rows + cols - 2
    s = cols + 1
    first = s + 1  # PE(0, 0)
    acc_ = acc[s:]
    n_trace = trace[0].shape[0]
    g = 0
    skewed = -1  # the column tile in `skew`
    top_values, top_flags = skew
    for f in range(tiles.shape[0]):
        r0, r1, c0, c1 = tiles[f, 0], tiles[f, 1], tiles[f, 2], tiles[f, 3]
        used_rows, used_cols = r1 - r0, c1 - c0
        if c0 != skewed:
            _skew_top(b_matrix, c0, used_cols, top_values, top_flags)
            skewed = c0
        cnt = counters[f]
        acc[:] = 0
        a0[:] = 0
        a1[:] = 0
        b0[:] = 0
        b1[:] = 0
        f0[:] = 0
        f1[:] = 0
        reads[:] = 0
        count[:] = 0
        macs = 0
        hops = 0
        _top_edge(0, depth, used_cols, b0, f0, reads, top_values, top_flags)  # what enters at cycle 0
        _left_edge(a_matrix, 0, r0, used_rows, s, a0, f0, reads)
        for t in range(0, cycles_per_fold, 2):  # two cycles: buffers 0 -> 1, then 1 -> 0
            _cycle(a_matrix, t, r0, used_rows, used_cols, s, a1, b1, f1, e0, e1, e2, e3, e4, e5, e6, acc_, reads,
                   count, top_values, top_flags)
            if 0 <= g - trace_start < n_trace:
                _record(trace, g - trace_start, f, t, depth, used_rows, used_cols, a1, b1, f1, acc, first, left, top,
                        bottom)
            g += 1
            if t + 1 < cycles_per_fold:
                _cycle(a_matrix, t + 1, r0, used_rows, used_cols, s, a0, b0, f0, o0, o1, o2, o3, o4, o5, o6, acc_,
                       reads, count, top_values, top_flags)
                if 0 <= g - trace_start < n_trace:
                    _record(trace, g - trace_start, f, t + 1, depth, used_rows, used_cols, a0, b0, f0, acc, first,
                            left, top, bottom)
                g += 1
            if t % TALLY_CYCLES == TALLY_CYCLES - 2 or t + 2 >= cycles_per_fold:
                m, h = _tally(count, s)
                macs += m
                hops += h
        for i in range(used_rows):
            for j in range(used_cols):
                out[r0 + i, c0 + j] = acc[first + i * s + j]
        cnt[MACS] += macs
        cnt[OPERAND_HOPS] += hops
        cnt[MOVING_READS] += reads[0]
        cnt[OTHER_READS] += reads[1]
        cnt[SRAM_WRITES] += used_rows * used_cols
        fold_dram(cnt, flags[f], fits, operand_bytes, accumulator_bytes, bytes_per_cycle, cycles_per_fold)
        for _ in range(cnt[STALLS]):
            record.stall(trace, trace_start, g, f, acc, first)
            g += 1
    return g


@njit(cache=True, nogil=True, inline='always')  # a call per cycle would cost more than a small array's work
def _cycle(a_matrix, t, r0, used_rows, used_cols, s, a2, b2, fl2, a_in, b_in, from_left, from_top, a_out, b_out,
           fl_out, acc_, reads, count, top_values, top_flags):
    """Clock t: every register takes its neighbour's value and every PE multiplies-and-accumulates,
    reading one buffer set and writing the other (a2, b2, fl2) through the views from _views; each PE
    adds its MAC and its operand hops (0-2) to its counts (see _tally). acc_ is the accumulator plane
    from the same offset as the writes. The edges of cycle t + 1 go into the set written."""
    _top_edge(t + 1, a_matrix.shape[1], used_cols, b2, fl2, reads, top_values, top_flags)
    for y in range(acc_.shape[0]):
        x = a_in[y]
        u = b_in[y]
        a_out[y] = x
        b_out[y] = u
        acc_[y] += x * u
        v = (from_left[y] & A_VALID) | (from_top[y] & B_VALID)
        fl_out[y] = v
        count[y] += v + (v & (v >> B_SHIFT)) * MAC_UNIT
    _left_edge(a_matrix, t + 1, r0, used_rows, s, a2, fl2, reads)


@njit(cache=True, nogil=True)
def _skew_top(b_matrix, c0, used_cols, values, flags):
    """Lay B's column tile from c0 out as the top edge sees it: row t holds B[t - j, c0 + j] in column j
    while 0 <= t - j < K (the skew), with B_VALID in `flags`; zeros elsewhere and in unused columns."""
    values[:] = 0
    flags[:] = 0
    for j in range(used_cols):
        for k in range(b_matrix.shape[0]):
            values[k + j, j] = b_matrix[k, c0 + j]
            flags[k + j, j] = B_VALID


@njit(cache=True, nogil=True, inline='always')
def _top_edge(t, depth, used_cols, b, fl, reads, top_values, top_flags):
    """Cycle t's top edge into row 0 of a buffer set: row t of the skewed tile (see _skew_top)."""
    values, flags = top_values[t], top_flags[t]
    b_, fl_ = b[1:], fl[1:]
    for j in range(values.shape[0]):
        b_[j] = values[j]
        fl_[j] = flags[j]
    reads[1] += max(0, min(used_cols, t + 1) - max(0, t - depth + 1))


@njit(cache=True, nogil=True, inline='always')
def _left_edge(a_matrix, t, r0, used_rows, s, a, fl, reads):
    """Cycle t's left edge into column 0 of a buffer set: row i receives A[r0 + i, t - i] while
    0 <= t - i < K (the skew), if the fold uses that row; zero otherwise. The load is clamped into A
    so that it is always safe, and a select keeps or drops it."""
    depth = a_matrix.shape[1]
    lo, hi = max(0, t - depth + 1), min(used_rows, t + 1)
    last_row, last_k = max(used_rows - 1, 0), depth - 1
    for i in range(fl.shape[0] // s - 1):  # (indices unsigned, all >= 0 here: no wraparound code per access)
        e = U((i + 1) * s)
        x = a_matrix[U(r0 + min(i, last_row)), U(min(max(t - i, 0), last_k))]
        v = lo <= i < hi
        a[e] = x if v else 0
        fl[e] = A_VALID if v else np.uint8(0)
    reads[0] += max(0, hi - lo)


@njit(cache=True, nogil=True)
def _views(a, b, fl, a2, b2, fl2, s):
    """(A from the left, B from above, their flags likewise, and the new A, B, flags), from PE(0, -1)."""
    size = a.shape[0]
    n = size - s
    return a[s - 1:size - 1], b[:n], fl[s - 1:size - 1], fl[:n], a2[s:], b2[s:], fl2[s:]


@njit(cache=True, nogil=True)
def _tally(count, s):
    """The PEs' MACs and operand hops since the last tally (see TALLY_CYCLES); clears the counts. The
    edge column's slots hold junk and are left out."""
    macs, hops = 0, 0
    for i in range(count.shape[0] // s):
        row = count[i * s + 1:(i + 1) * s]
        m, h = 0, 0
        for j in range(row.shape[0]):
            c = row[j]
            h += (c & 31) + ((c >> 5) & 31)
            m += c >> 10
        macs += m
        hops += h
    count[:] = 0
    return macs, hops


@njit(cache=True, nogil=True)  # not inlined: see weight_stationary._record
def _record(trace, k, f, t, depth, used_rows, used_cols, a, b, fl, acc, first, left, top, bottom):
    """Cycle k of the trace window (0 <= k < its length), the fold's cycle t: the registers, and the
    indices that entered at the edges (as _cycle fed them; nothing leaves at the bottom)."""
    lo, hi = max(0, t - depth + 1), min(used_rows, t + 1)
    for i in range(left.shape[0]):
        left[i] = t - i if lo <= i < hi else -1
    hi = min(used_cols, t + 1)
    for j in range(top.shape[0]):
        top[j] = t - j if lo <= j < hi else -1
    # The partial sum is the stationary register here: the trace stores it once (trace.shared_planes).
    both = A_VALID | B_VALID
    state = trace[0][k]
    n = state.shape[0] - 1
    flags = fl[first:first + n]
    for y in range(n):
        state[y] = MAC if flags[y] & both == both else 0
    record.plane(trace[1], k, acc, first)
    record.plane(trace[2], k, a, first)
    record.plane(trace[3], k, b, first)
    record.edges(trace, k, f, left, top, bottom)
