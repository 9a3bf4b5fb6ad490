"""Writing the kernels' registers into a trace (chipviz/chip/trace.py describes its fields).

The kernels keep each register plane as one flat buffer with a row stride `s` (a spare column
or row holds what enters at the edge), so a whole plane shifts as one contiguous vector
operation; these helpers copy the R×C window of such a buffer into the trace's cycle k.
Every field of a traced cycle is written, zeros included: trace.allocate hands out uninitialised
(recycled) memory.
"""
from __future__ import annotations

from numba import njit

from ..trace import STALL


# Each helper copies row by row through views (one per row, from index 0): indexing a flat buffer at a
# computed offset would make the compiler check every index for wraparound and gather element by element.
@njit(cache=True, nogil=True, inline='always')
def plane(dst, k, src, s, off):
    """dst[k, i, j] = src[off + i·s + j] (dst: one of the trace's R×C planes per cycle)."""
    out = dst[k]
    rows, cols = out.shape[0], out.shape[1]
    for i in range(rows):
        d, x = out[i], src[off + i * s:off + i * s + cols]
        for j in range(cols):
            d[j] = x[j]


@njit(cache=True, nogil=True, inline='always')
def zero_plane(dst, k):
    """dst[k] = 0: a register plane that holds nothing this cycle."""
    out = dst[k].reshape(dst.shape[1] * dst.shape[2])  # one run of memory: one memset, not one a row
    for y in range(out.shape[0]):
        out[y] = 0


@njit(cache=True, nogil=True, inline='always')
def state_plane(dst, k, x, y, s, off, scale):
    """dst[k, i, j] = (x & y)·scale at off + i·s + j: MAC (1) where both flags are set, PRELOAD (2) likewise."""
    out = dst[k]
    rows, cols = out.shape[0], out.shape[1]
    for i in range(rows):
        d, u, v = out[i], x[off + i * s:off + i * s + cols], y[off + i * s:off + i * s + cols]
        for j in range(cols):
            d[j] = (u[j] & v[j]) * scale


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
def stall(trace, start, g, fold, stationary, s, off):
    """A cycle the array waits for DRAM: every PE idle, the stationary registers kept."""
    k = g - start
    if 0 <= k < trace[0].shape[0]:
        rows, cols = trace[0].shape[1], trace[0].shape[2]
        for i in range(rows):
            for j in range(cols):
                trace[0][k, i, j] = STALL
        plane(trace[1], k, stationary, s, off)
        zero_plane(trace[2], k)
        zero_plane(trace[3], k)
        zero_plane(trace[4], k)
        trace[5][k] = fold
        for i in range(rows):
            trace[6][k, i] = -1
        for j in range(cols):
            trace[7][k, j] = -1
            trace[8][k, j] = -1
