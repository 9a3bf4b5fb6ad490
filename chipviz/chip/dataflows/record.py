"""Writing the kernels' registers into a trace (chipviz/chip/trace.py describes its fields).

The kernels keep each register plane as one flat buffer with a row stride `s` = C + 1 (a spare
column or row holds what enters at the edge), so a whole plane shifts as one contiguous vector
operation. A trace's planes have the same row stride (trace.allocate), so these helpers copy a
plane as one contiguous run too: R·s - 1 values from PE(0, 0)'s offset (the spare slots come
along and stay out of the Trace's view; the last one, past the buffer's end, is not written).
Every stored field of a traced cycle is written, zeros included: trace.allocate hands out
uninitialised (recycled) memory; a plane the dataflow shares (trace.shared_planes) has no cycles
and is never written.
"""
from __future__ import annotations

from numba import njit

from ..trace import STALL


# One loop per plane over a contiguous run: a loop per row of a small array costs more in set-up (overlap
# checks before the vectorised body) than the copying itself, about twice the time on 16×16.
@njit(cache=True, nogil=True, inline='always')
def plane(dst, k, src, off):
    """dst[k, i·s + j] = src[off + i·s + j] (dst: one of the trace's planes, flat, of row stride s)."""
    out = dst[k]
    n = out.shape[0] - 1
    x = src[off:off + n]
    for y in range(n):
        out[y] = x[y]


@njit(cache=True, nogil=True, inline='always')
def zero_plane(dst, k):
    """dst[k] = 0: a register plane that holds nothing this cycle (nothing for a plane the dataflow's
    trace does not store: it has no cycles)."""
    if dst.shape[0] == 0:
        return
    out = dst[k]
    for y in range(out.shape[0]):
        out[y] = 0


@njit(cache=True, nogil=True, inline='always')
def state_plane(dst, k, x, y, off, scale):
    """dst[k, i·s + j] = (x & y)·scale at off + i·s + j: MAC (1) where both flags are set, PRELOAD (2) likewise."""
    out = dst[k]
    n = out.shape[0] - 1
    u, v = x[off:off + n], y[off:off + n]
    for j in range(n):
        out[j] = (u[j] & v[j]) * scale


@njit(cache=True, nogil=True, inline='always')
def edges(trace, k, fold, left, top, bottom):
    """The cycle's fold and the indices entering / leaving the edges (-1: nothing)."""
    trace[5][k] = fold
    for i in range(left.shape[0]):
        trace[6][k, i] = left[i]
    for j in range(top.shape[0]):
        trace[7][k, j] = top[j]
        trace[8][k, j] = bottom[j]


@njit(cache=True, nogil=True)
def stall(trace, start, g, fold, stationary, off):
    """A cycle the array waits for DRAM: every PE idle, the stationary registers kept."""
    k = g - start
    if 0 <= k < trace[0].shape[0]:
        rows, cols = trace[6].shape[1], trace[7].shape[1]
        state = trace[0][k]
        for y in range(state.shape[0]):
            state[y] = STALL
        plane(trace[1], k, stationary, off)
        zero_plane(trace[2], k)
        zero_plane(trace[3], k)
        zero_plane(trace[4], k)
        trace[5][k] = fold
        for i in range(rows):
            trace[6][k, i] = -1
        for j in range(cols):
            trace[7][k, j] = -1
            trace[8][k, j] = -1
