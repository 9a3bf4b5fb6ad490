"""Writing the kernels' registers into a trace (chipviz/chip/trace.py describes its fields).

The kernels keep each register plane as one flat buffer with a row stride `s` (a spare column
or row holds what enters at the edge), so a whole plane shifts as one contiguous vector
operation; these helpers copy the R×C window of such a buffer into the trace's cycle k.
Every field of a traced cycle is written, except zeros in the register planes (trace.allocate
makes those planes zeros; writing zeros again would only cost memory bandwidth).
"""
from __future__ import annotations

from numba import njit

from ..trace import STALL


@njit(cache=True, nogil=True, inline='always')
def plane(dst, k, src, s, off):
    """dst[k, i, j] = src[off + i·s + j] (dst: one of the trace's R×C planes per cycle).
    Indexing dst directly (no per-row views) keeps reference counting out of the loop."""
    rows, cols = dst.shape[1], dst.shape[2]
    for i in range(rows):
        base = off + i * s
        for j in range(cols):
            dst[k, i, j] = src[base + j]


@njit(cache=True, nogil=True, inline='always')
def state_plane(dst, k, x, y, s, off, scale):
    """dst[k, i, j] = (x & y)·scale at off + i·s + j: MAC (1) where both flags are set, PRELOAD (2) likewise."""
    rows, cols = dst.shape[1], dst.shape[2]
    for i in range(rows):
        base = off + i * s
        for j in range(cols):
            dst[k, i, j] = (x[base + j] & y[base + j]) * scale


@njit(cache=True, nogil=True, inline='always')
def flag_plane(dst, k, flags, s, off, mask, value):
    """dst[k, i, j] = value where every bit of `mask` is set in the flags at off + i·s + j, else 0 (IDLE)."""
    rows, cols = dst.shape[1], dst.shape[2]
    for i in range(rows):
        base = off + i * s
        for j in range(cols):
            dst[k, i, j] = value if flags[base + j] & mask == mask else 0


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
        plane(trace[1], k, stationary, s, off)  # from_left, from_top, psum: zeros already
        trace[5][k] = fold
        for i in range(rows):
            trace[6][k, i] = -1
        for j in range(cols):
            trace[7][k, j] = -1
            trace[8][k, j] = -1
