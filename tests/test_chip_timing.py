"""Hand-worked cycle-by-cycle cases for the cycle engine (SCALE-Sim v3 conventions).

Every expected number below was worked out by hand from the conventions (see the comments),
not computed from the code under test. Cycles count from 0. Trace conventions: state 0 idle,
1 MAC, 2 preload, 3 stall; *_in / bottom_out hold the index along the streamed dimension
(-1 = nothing); psum is the partial-sum register after the cycle's clock edge.
"""
from __future__ import annotations

import numpy as np
import pytest

from chipviz.chip import ChipConfig, analyze, gemm

_, M_, P, S = 0, 1, 2, 3  # idle, MAC, preload, stall
NONE = [-1, -1]
FAST = 1e5  # bytes/cycle: no stalls


def run(a, b, cfg):
    res = gemm(np.array(a, np.float32), np.array(b, np.float32), cfg, engine="cycle", trace_window=(0, 10**6))
    return res, res.trace


def eq(got, want):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


# --- weight stationary --------------------------------------------------------------------------
#
# 2×2 array, A 3×2 (M=3, K=2), B 2×2 (N=2). K on rows, N on columns, M streamed.
# A = [[1,2],[3,4],[5,6]], B = [[7,8],[9,10]]
# C = [[1·7+2·9, 1·8+2·10], [3·7+4·9, 3·8+4·10], [5·7+6·9, 5·8+6·10]] = [[25,28],[57,64],[89,100]]
#
# Preload (R = 2 cycles), last row of the tile first, shifting down one row per cycle:
#   cycle 0: B row 1 (9, 10) enters the top edge into PE row 0
#   cycle 1: B row 1 moves to PE row 1; B row 0 (7, 8) enters PE row 0 -> stationary = B
# Streaming starts at cycle R = 2. A[m, i] enters the left edge of row i at 2 + m + i (skew),
# reaches PE(i, j) at 2 + m + i + j. The partial sum of output (m, j) starts in row 0 at
# 2 + m + j, moves down a row per cycle and leaves the bottom edge at 2 + m + (R-1) + j = 3 + m + j.
# Last output C[2, 1] leaves at 3 + 2 + 1 = 6, so 7 cycles = 2R + C + M - 2 = 4 + 2 + 3 - 2.

WS_A = [[1, 2], [3, 4], [5, 6]]
WS_B = [[7, 8], [9, 10]]
WS_C = [[25, 28], [57, 64], [89, 100]]


def test_ws_2x2_cycle_by_cycle():
    res, t = run(WS_A, WS_B, ChipConfig(2, 2, "ws", dram_bytes_per_cycle=FAST))
    eq(res.c, WS_C)
    assert res.stats.cycles == 7 and res.stats.cycles_per_fold == 7 and res.stats.folds == 1
    assert res.stats.scalesim_cycles == 6
    assert t.n_cycles == 7
    eq(t.fold, [0] * 7)
    eq(t.state, [
        [[P, P], [0, 0]],      # 0: B row 1 enters row 0
        [[P, P], [P, P]],      # 1: B row 1 -> row 1, B row 0 -> row 0
        [[M_, 0], [0, 0]],     # 2: A[0,0] at PE(0,0)
        [[M_, M_], [M_, 0]],   # 3: A[1,0]@(0,0), A[0,0]@(0,1), A[0,1]@(1,0)
        [[M_, M_], [M_, M_]],  # 4
        [[0, M_], [M_, M_]],   # 5
        [[0, 0], [0, M_]],     # 6: A[2,1]@(1,1)
    ])
    eq(t.top_in, [[1, 1], [0, 0], NONE, NONE, NONE, NONE, NONE])
    eq(t.stationary[0], [[9, 10], [0, 0]])
    for c in range(1, 7):
        eq(t.stationary[c], WS_B)
    # row i receives A[m, i] at cycle 2 + m + i
    eq(t.left_in, [NONE, NONE, [0, -1], [1, 0], [2, 1], [-1, 2], NONE])
    eq(t.from_left, [
        [[0, 0], [0, 0]],
        [[0, 0], [0, 0]],
        [[1, 0], [0, 0]],  # A[0,0]
        [[3, 1], [2, 0]],  # A[1,0] A[0,0] / A[0,1]
        [[5, 3], [4, 2]],  # A[2,0] A[1,0] / A[1,1] A[0,1]
        [[0, 5], [6, 4]],  # -      A[2,0] / A[2,1] A[1,1]
        [[0, 0], [0, 6]],  #                 -      A[2,1]
    ])
    eq(t.from_top, np.zeros((7, 2, 2)))
    # psum in row 0 = A[m,0]·B[0,j]; in row 1 = C[m,j] (m = cycle - 2 - i - j)
    eq(t.psum, [
        [[0, 0], [0, 0]],
        [[0, 0], [0, 0]],
        [[7, 0], [0, 0]],     # 1·7
        [[21, 8], [25, 0]],   # 3·7, 1·8 / C[0,0]
        [[35, 24], [57, 28]],  # 5·7, 3·8 / C[1,0], C[0,1]
        [[0, 40], [89, 64]],  # 5·8 / C[2,0], C[1,1]
        [[0, 0], [0, 100]],   # C[2,1]
    ])
    # C[m, j] leaves the bottom of column j at 3 + m + j
    eq(t.bottom_out, [NONE, NONE, NONE, [0, -1], [1, 0], [2, 1], [-1, 2]])


def test_ws_2x2_counters():
    s = gemm(np.array(WS_A), np.array(WS_B), ChipConfig(2, 2, "ws", dram_bytes_per_cycle=FAST), engine="cycle").stats
    assert s.macs == 12  # 3·2·2
    assert s.utilization == pytest.approx(12 / (7 * 4))
    assert s.mapping_efficiency == 1.0
    assert (s.sram_reads_ifmap, s.sram_reads_filter) == (6, 4)  # A once per column fold, B once
    assert s.sram_writes == 6 and s.scalesim_sram_writes == 6  # M·N·ceil(K/R) = 6·1
    assert (s.dram_reads, s.dram_writes, s.stall_cycles) == (10, 6, 0)


def test_ws_skew_on_a_larger_array():
    """A[m, i] enters row i at R + m + i; C[m, j] leaves column j at R + m + (R-1) + j."""
    # square: traced ws/is on a non-square array crashes (see test_chip_engines.py)
    R, C, M = 3, 3, 5
    rng = np.random.default_rng(1)
    a, b = rng.integers(-5, 6, (M, R)), rng.integers(-5, 6, (R, C))
    res, t = run(a, b, ChipConfig(R, C, "ws", dram_bytes_per_cycle=FAST))
    assert t.n_cycles == 2 * R + C + M - 2 == 12
    for m in range(M):
        for i in range(R):
            assert t.left_in[R + m + i, i] == m
            for j in range(C):
                assert t.from_left[R + m + i + j, i, j] == a[m, i]
                assert t.state[R + m + i + j, i, j] == M_
        for j in range(C):
            assert t.bottom_out[R + m + R - 1 + j, j] == m
            assert t.psum[R + m + R - 1 + j, R - 1, j] == res.c[m, j]
    eq(res.c, a @ b)


# --- output stationary --------------------------------------------------------------------------
#
# 2×2 array, A 2×3 (M=2, K=3), B 3×2 (N=2). M on rows, N on columns, K streamed; no preload.
# A = [[1,2,3],[4,5,6]], B = [[7,8],[9,10],[11,12]]
# C = [[7+18+33, 8+20+36], [28+45+66, 32+50+72]] = [[58,64],[139,154]]
# Row i of A enters the left edge skewed (A[i,k] at cycle k + i), column j of B the top edge
# (B[k,j] at cycle k + j); A[m,k] and B[k,n] meet in PE(m,n) at cycle k + m + n.
# Last meeting: k=2 in PE(1,1) at cycle 4, so K + R + C - 2 = 5 cycles.

OS_A = [[1, 2, 3], [4, 5, 6]]
OS_B = [[7, 8], [9, 10], [11, 12]]
OS_C = [[58, 64], [139, 154]]


def test_os_2x2_cycle_by_cycle():
    res, t = run(OS_A, OS_B, ChipConfig(2, 2, "os", dram_bytes_per_cycle=FAST))
    eq(res.c, OS_C)
    assert res.stats.cycles == 5 and res.stats.scalesim_cycles == 4
    eq(t.state, [
        [[M_, 0], [0, 0]],
        [[M_, M_], [M_, 0]],
        [[M_, M_], [M_, M_]],
        [[0, M_], [M_, M_]],
        [[0, 0], [0, M_]],
    ])
    eq(t.left_in, [[0, -1], [1, 0], [2, 1], [-1, 2], NONE])
    eq(t.top_in, [[0, -1], [1, 0], [2, 1], [-1, 2], NONE])
    eq(t.from_left, [  # A[i, t - i - j]
        [[1, 0], [0, 0]],
        [[2, 1], [4, 0]],
        [[3, 2], [5, 4]],
        [[0, 3], [6, 5]],
        [[0, 0], [0, 6]],
    ])
    eq(t.from_top, [  # B[t - i - j, j]
        [[7, 0], [0, 0]],
        [[9, 8], [7, 0]],
        [[11, 10], [9, 8]],
        [[0, 12], [11, 10]],
        [[0, 0], [0, 12]],
    ])
    eq(t.psum, [
        [[7, 0], [0, 0]],         # 1·7
        [[25, 8], [28, 0]],       # +2·9 ; 1·8 ; 4·7
        [[58, 28], [73, 32]],     # +3·11 ; +2·10 ; +5·9 ; 4·8
        [[58, 64], [139, 82]],    # +3·12 ; +6·11 ; +5·10
        [[58, 64], [139, 154]],   # +6·12
    ])
    eq(t.stationary, t.psum)  # os: the stationary register is the accumulator
    eq(t.bottom_out, np.full((5, 2), -1))


def test_os_2x2_counters():
    s = gemm(np.array(OS_A), np.array(OS_B), ChipConfig(2, 2, "os", dram_bytes_per_cycle=FAST), engine="cycle").stats
    assert s.macs == 12
    assert (s.sram_reads_ifmap, s.sram_reads_filter) == (6, 6)  # M·K·ceil(N/C), K·N·ceil(M/R)
    assert s.sram_writes == 4  # M·N, the finished tile once
    assert s.scalesim_sram_writes == 4 + (2 + 2) * 1  # SCALE-Sim's spurious R + C per fold


def test_os_meeting_cycle_on_a_larger_array():
    """A[m, k] and B[k, n] meet in PE(m, n) at cycle k + m + n (one fold: M ≤ R, N ≤ C)."""
    R, C, M, K, N = 4, 3, 3, 5, 2
    rng = np.random.default_rng(2)
    a, b = rng.integers(-5, 6, (M, K)), rng.integers(-5, 6, (K, N))
    res, t = run(a, b, ChipConfig(R, C, "os", dram_bytes_per_cycle=FAST))
    assert t.n_cycles == K + R + C - 2 == 10
    for m in range(M):
        for n in range(N):
            for k in range(K):
                assert t.from_left[k + m + n, m, n] == a[m, k]
                assert t.from_top[k + m + n, m, n] == b[k, n]
                assert t.state[k + m + n, m, n] == M_
            assert t.psum[-1, m, n] == res.c[m, n]
    assert int((t.state == M_).sum()) == M * K * N
    eq(res.c, a @ b)


# --- input stationary ---------------------------------------------------------------------------
#
# 2×2 array, A 2×2 (M=2, K=2), B 2×3 (N=3). K on rows, M on columns, N streamed.
# A = [[1,2],[3,4]], B = [[5,6,7],[8,9,10]]
# C = [[5+16, 6+18, 7+20], [15+32, 18+36, 21+40]] = [[21,24,27],[47,54,61]]
# PE(i, j) holds A[j, i] (Aᵀ): preload cycle 0 brings column k=1 of A (2, 4) into PE row 0,
# cycle 1 moves it to row 1 and brings column k=0 (1, 3) into row 0 -> [[1,3],[2,4]].
# B[i, n] enters row i at cycle 2 + n + i; C[m, n] leaves column m at 2 + n + 1 + m.
# Last: C[1, 2] at 2 + 2 + 1 + 1 = 6, so 7 cycles = 2R + C + N - 2 = 4 + 2 + 3 - 2.

IS_A = [[1, 2], [3, 4]]
IS_B = [[5, 6, 7], [8, 9, 10]]
IS_C = [[21, 24, 27], [47, 54, 61]]


def test_is_2x2_cycle_by_cycle():
    res, t = run(IS_A, IS_B, ChipConfig(2, 2, "is", dram_bytes_per_cycle=FAST))
    eq(res.c, IS_C)
    assert res.stats.cycles == 7
    eq(t.state, [
        [[P, P], [0, 0]],
        [[P, P], [P, P]],
        [[M_, 0], [0, 0]],
        [[M_, M_], [M_, 0]],
        [[M_, M_], [M_, M_]],
        [[0, M_], [M_, M_]],
        [[0, 0], [0, M_]],
    ])
    eq(t.top_in, [[1, 1], [0, 0], NONE, NONE, NONE, NONE, NONE])
    eq(t.stationary[0], [[2, 4], [0, 0]])
    for c in range(1, 7):
        eq(t.stationary[c], [[1, 3], [2, 4]])
    eq(t.left_in, [NONE, NONE, [0, -1], [1, 0], [2, 1], [-1, 2], NONE])
    eq(t.from_left, [  # B[i, t - 2 - i - j]
        [[0, 0], [0, 0]],
        [[0, 0], [0, 0]],
        [[5, 0], [0, 0]],
        [[6, 5], [8, 0]],
        [[7, 6], [9, 8]],
        [[0, 7], [10, 9]],
        [[0, 0], [0, 10]],
    ])
    eq(t.psum, [  # row 0: B[0,n]·A[j,0]; row 1: C[j, n] with n = t - 3 - j
        [[0, 0], [0, 0]],
        [[0, 0], [0, 0]],
        [[5, 0], [0, 0]],      # 5·1
        [[6, 15], [21, 0]],    # 6·1, 5·3 / C[0,0]
        [[7, 18], [24, 47]],   # 7·1, 6·3 / C[0,1], C[1,0]
        [[0, 21], [27, 54]],   # 7·3 / C[0,2], C[1,1]
        [[0, 0], [0, 61]],     # C[1,2]
    ])
    eq(t.bottom_out, [NONE, NONE, NONE, [0, -1], [1, 0], [2, 1], [-1, 2]])
    s = res.stats
    assert (s.sram_reads_ifmap, s.sram_reads_filter) == (4, 6)  # M·K ; K·N·ceil(M/C)
    assert s.sram_writes == 6  # M·N·ceil(K/R)


# --- partial folds and fold order -----------------------------------------------------------------
#
# ws on 2×2, A 2×3 (M=2, K=3), B 3×3 (N=3): K=3 on 2 rows -> 2 row folds (rows 0-1, then row 2
# alone); N=3 on 2 cols -> 2 column folds. Column folds outer, row folds inner:
#   fold 0: K 0..2, N 0..2   fold 1: K 2..3, N 0..2   fold 2: K 0..2, N 2..3   fold 3: K 2..3, N 2..3
# Every fold, full or partial, lasts 2R + C + M - 2 = 4 + 2 + 2 - 2 = 6 cycles -> 24 cycles.
# A = [[1,2,3],[4,5,6]], B = [[1,2,3],[4,5,6],[7,8,9]]
# C = [[1+8+21, 2+10+24, 3+12+27], [4+20+42, 8+25+48, 12+30+54]] = [[30,36,42],[66,81,96]]
#
# Fold 1 (cycles 6..11) in detail: preload cycle 6 has no tile row 1 to send (idle), cycle 7
# sends B row 2 (7, 8) into PE row 0. Streaming from cycle 8: A[m, 2] enters row 0 at 8 + m;
# PE(0, j) MACs at 8 + m + j; the partial sums still cross the unused row 1 and leave the
# bottom at 8 + m + 1 + j: (3·7=21 at 9 in col 0), (6·7=42 at 10 col 0, 3·8=24 at 10 col 1),
# (6·8=48 at 11 col 1). Row 1 never works, yet the fold takes the full 6 cycles.

PF_A = [[1, 2, 3], [4, 5, 6]]
PF_B = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
PF_C = [[30, 36, 42], [66, 81, 96]]


def test_partial_fold_takes_a_full_fold_and_fold_order():
    res, t = run(PF_A, PF_B, ChipConfig(2, 2, "ws", dram_bytes_per_cycle=FAST))
    eq(res.c, PF_C)
    s = res.stats
    assert (s.folds, s.cycles_per_fold, s.cycles) == (4, 6, 24)
    eq(t.tiles, [[0, 2, 0, 2], [2, 3, 0, 2], [0, 2, 2, 3], [2, 3, 2, 3]])
    eq(t.fold, [0] * 6 + [1] * 6 + [2] * 6 + [3] * 6)
    # the weights held while streaming (cycles 2..5 of each fold), zero on unused PEs
    held = {0: [[1, 2], [4, 5]], 1: [[7, 8], [0, 0]], 2: [[3, 0], [6, 0]], 3: [[9, 0], [0, 0]]}
    for f, w in held.items():
        for c in range(6 * f + 2, 6 * f + 6):
            eq(t.stationary[c], w)
    # fold 1 cycle by cycle
    eq(t.state[6:12], [
        [[0, 0], [0, 0]],    # 6: nothing to preload for the missing tile row
        [[P, P], [0, 0]],    # 7: B row 2 enters row 0
        [[M_, 0], [0, 0]],   # 8: A[0,2]·B[2,0]
        [[M_, M_], [0, 0]],  # 9: A[1,2]·B[2,0], A[0,2]·B[2,1]
        [[0, M_], [0, 0]],   # 10: A[1,2]·B[2,1]
        [[0, 0], [0, 0]],    # 11: last partial sum drains through row 1
    ])
    eq(t.top_in[6:8], [NONE, [2, 2]])
    eq(t.left_in[6:12], [NONE, NONE, [0, -1], [1, -1], NONE, NONE])
    eq(t.bottom_out[6:12], [NONE, NONE, NONE, [0, -1], [1, 0], [-1, 1]])
    eq(t.psum[9:12, 1], [[21, 0], [42, 24], [0, 48]])
    assert int((t.state[6:12] == M_).sum()) == 4  # 1 row · 2 cols · M=2
    # partial sums written once per row fold: M·N·ceil(K/R) = 2·3·2
    assert s.sram_writes == 12
    assert s.mapping_efficiency == pytest.approx((3 * 3) / (4 * 4))  # Sr·Sc / (R·C·folds)


def test_partial_fold_same_cycles_as_full():
    """K = 3 or 4 on a 2-row array: both 2 row folds of the same length."""
    for k in (3, 4):
        s = analyze(5, k, 2, ChipConfig(2, 2, "ws", dram_bytes_per_cycle=FAST))
        assert (s.folds, s.cycles) == (2, 2 * (4 + 2 + 5 - 2))
    for m in (3, 4):  # os: M = 3 or 4 on 2 rows
        s = analyze(m, 5, 2, ChipConfig(2, 2, "os", dram_bytes_per_cycle=FAST))
        assert (s.folds, s.cycles) == (2, 2 * (5 + 2 + 2 - 2))


def test_os_fold_order_column_folds_outer():
    # os on 2×2, M=3 (rows: 2 folds), N=3 (cols: 2 folds); tiles over (M rows, N cols)
    res, t = run(np.ones((3, 1)), np.ones((1, 3)), ChipConfig(2, 2, "os", dram_bytes_per_cycle=FAST))
    eq(t.tiles, [[0, 2, 0, 2], [2, 3, 0, 2], [0, 2, 2, 3], [2, 3, 2, 3]])
    cpf = 1 + 2 + 2 - 2  # 3
    eq(t.fold, [0] * cpf + [1] * cpf + [2] * cpf + [3] * cpf)
    # final accumulators of each fold: only its tile's PEs hold C = 1
    eq(t.psum[2], [[1, 1], [1, 1]])
    eq(t.psum[5], [[1, 1], [0, 0]])
    eq(t.psum[8], [[1, 0], [1, 0]])
    eq(t.psum[11], [[1, 0], [0, 0]])


# --- the stall model (memory.py) -------------------------------------------------------------------
#
# Policy: per fold, DRAM moves the first use of each operand tile (every use if the operand
# does not fit its SRAM), the outputs when final (and partial sums out and back if C does not
# fit the ofmap SRAM); a fold stalls by max(0, ceil(bytes / bandwidth) - cycles_per_fold).


def test_stall_single_fold_ws_fp32():
    # WS case above: one fold of 7 cycles. DRAM: A 6 + B 4 elements = 10 · 4 B = 40 B read,
    # C 6 · 4 B = 24 B written -> 64 B at 4 B/cycle = 16 cycles -> 16 - 7 = 9 stall cycles.
    res, t = run(WS_A, WS_B, ChipConfig(2, 2, "ws", dram_bytes_per_cycle=4.0))
    s = res.stats
    assert (s.dram_reads, s.dram_writes, s.dram_bytes) == (10, 6, 64)
    assert (s.compute_cycles, s.stall_cycles, s.cycles, s.scalesim_cycles) == (7, 9, 16, 15)
    assert s.utilization == pytest.approx(12 / (16 * 4))
    eq(res.c, WS_C)
    assert t.n_cycles == 16
    assert np.all(t.state[7:] == S) and not np.any(t.state[:7] == S)
    eq(t.fold, [0] * 16)
    for c in range(7, 16):
        eq(t.stationary[c], WS_B)  # the weights stay put during the stall


def test_stall_single_fold_ws_int8():
    # int8: operands 1 B, accumulators 4 B: 10 B read + 24 B written = 34 B at 4 B/cycle
    # = ceil(8.5) = 9 cycles -> 9 - 7 = 2 stall cycles.
    s = gemm(np.array(WS_A), np.array(WS_B), ChipConfig(2, 2, "ws", "int8", dram_bytes_per_cycle=4.0),
             engine="cycle").stats
    assert (s.dram_bytes, s.stall_cycles, s.cycles) == (34, 2, 9)


def test_stall_os_int8_and_is_fp32():
    # os 2×2 int8, A 2×3, B 3×2 at 1 B/cycle: read 6 + 6 B, write 4 · 4 = 16 B -> 28 cycles;
    # the fold computes 5 -> 23 stall cycles, 28 in all.
    s = gemm(np.array(OS_A), np.array(OS_B), ChipConfig(2, 2, "os", "int8", dram_bytes_per_cycle=1.0),
             engine="cycle").stats
    assert (s.dram_bytes, s.stall_cycles, s.cycles) == (28, 23, 28)
    # is 2×2 fp32, A 2×2, B 2×3 at 4 B/cycle: read (4 + 6) · 4 = 40 B, write 6 · 4 = 24 B
    # -> 16 cycles; the fold computes 7 -> 9 stall cycles.
    s = gemm(np.array(IS_A), np.array(IS_B), ChipConfig(2, 2, "is", dram_bytes_per_cycle=4.0), engine="cycle").stats
    assert (s.dram_bytes, s.stall_cycles, s.cycles) == (64, 9, 16)


def test_stall_two_folds_ws():
    # ws 2×2 fp32, M=3, K=3, N=2 at 2 B/cycle: 2 row folds of 2R + C + M - 2 = 7 cycles.
    # fold 0 (K rows 0,1): A[:, 0:2] 6 + B[0:2, :] 4 = 10 elements = 40 B; C not final, no
    #   write -> 20 cycles -> 13 stall.
    # fold 1 (K row 2): A[:, 2] 3 + B[2, :] 2 = 5 elements = 20 B; C 6 · 4 = 24 B written
    #   -> 44 B -> 22 cycles -> 15 stall.
    # total 14 + 13 + 15 = 42 cycles; DRAM reads 15 = M·K + K·N; writes 6 = M·N.
    rng = np.random.default_rng(3)
    a, b = rng.integers(-9, 10, (3, 3)), rng.integers(-9, 10, (3, 2))
    res, t = run(a, b, ChipConfig(2, 2, "ws", dram_bytes_per_cycle=2.0))
    s = res.stats
    assert (s.folds, s.cycles_per_fold, s.stall_cycles, s.cycles) == (2, 7, 28, 42)
    assert (s.dram_reads, s.dram_writes, s.dram_bytes) == (15, 6, 84)
    eq(t.fold, [0] * 20 + [1] * 22)
    eq(res.c, a @ b)


def test_stall_operand_does_not_fit_sram():
    # ws 2×2 fp32, M=65, K=4, N=4: 2 row folds × 2 column folds = 4 folds of
    # 2·2 + 2 + 65 - 2 = 69 cycles (276 compute). A is 65·4·4 = 1040 B > 1 KiB; B 64 B; C 1040 B.
    # Fold order (K rows, N cols): (0-1, 0-1), (2-3, 0-1), (0-1, 2-3), (2-3, 2-3).
    rng = np.random.default_rng(4)
    a, b = rng.integers(-9, 10, (65, 4)), rng.integers(-9, 10, (4, 4))

    # (1) A does not fit (ifmap 1 KiB), C fits (ofmap 2 KiB): every fold re-reads its A tile
    #     65·2 = 130 elements and its B tile 4 -> 134 elements = 536 B per fold;
    #     C written on the final row folds 1 and 3: 65·2 = 130 each = 520 B.
    #     At 8 B/cycle: folds 0, 2: 536 B = 67 cycles <= 69, no stall; folds 1, 3: 1056 B
    #     = 132 cycles -> 63 stall each. Stalls 126, cycles 402.
    cfg = ChipConfig(2, 2, "ws", ifmap_sram_kib=1.0, filter_sram_kib=1.0, ofmap_sram_kib=2.0,
                     dram_bytes_per_cycle=8.0)
    for engine in ("analytic", "cycle"):
        s = gemm(a, b, cfg, engine=engine).stats
        assert (s.dram_reads, s.dram_writes, s.dram_bytes) == (536, 260, 536 * 4 + 260 * 4)
        assert (s.compute_cycles, s.stall_cycles, s.cycles) == (276, 126, 402)

    # (2) A fits (ifmap 2 KiB), C does not (ofmap 1 KiB): A read in column fold 0 only
    #     (folds 0, 1: 130 each), B 4 per fold; partial sums of every fold go out (130 each,
    #     4 folds = 520) and come back for the second row fold (folds 1, 3: 130 each).
    #     fold 0: 134·4 + 130·4 = 1056 B -> 132 cycles -> 63 stall
    #     fold 1: 134·4 + (130 + 130)·4 = 1576 B -> 197 -> 128
    #     fold 2: 4·4 + 130·4 = 536 B -> 67 -> 0
    #     fold 3: 4·4 + (130 + 130)·4 = 1056 B -> 132 -> 63
    #     reads 268 + 8 operands + 260 psums = 536; writes 520; bytes 276·4 + 780·4 = 4224.
    cfg = cfg.with_(ifmap_sram_kib=2.0, ofmap_sram_kib=1.0)
    for engine in ("analytic", "cycle"):
        res = gemm(a, b, cfg, engine=engine)
        s = res.stats
        assert (s.dram_reads, s.dram_writes, s.dram_bytes) == (536, 520, 4224)
        assert (s.stall_cycles, s.cycles) == (254, 530)
        eq(res.c, a @ b)


def test_no_stall_when_bandwidth_just_suffices():
    # WS case: 64 B in a 7-cycle fold: 64 / 7 = 9.14 B/cycle -> at 10 B/cycle ceil(6.4) = 7,
    # no stall; at 9 B/cycle ceil(7.1) = 8 -> 1 stall cycle.
    assert analyze(3, 2, 2, ChipConfig(2, 2, "ws", dram_bytes_per_cycle=10.0)).stall_cycles == 0
    assert analyze(3, 2, 2, ChipConfig(2, 2, "ws", dram_bytes_per_cycle=9.0)).stall_cycles == 1
