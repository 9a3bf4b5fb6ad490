"""The two chip engines against numpy, against each other, against SCALE-Sim's formulas and
against an independent re-statement of memory.py's DRAM/stall policy; and the cycle trace.

Property-based (hypothesis, bounded by the "ci" profile in conftest.py). Headless: no panel,
no bokeh.
"""
from __future__ import annotations

import math
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chipviz.chip import ChipConfig, TraceTooLarge, analyze, gemm
from chipviz.chip import trace as tr
from chipviz.chip.trace import MAC, PRELOAD, STALL, Trace

DATAFLOWS = ("ws", "os", "is")
PRECISIONS = ("fp32", "int8")
AMPLE = dict(ifmap_sram_kib=1024.0, filter_sram_kib=1024.0, ofmap_sram_kib=1024.0, dram_bytes_per_cycle=1e5)
# Dyadic bandwidths: bytes / bandwidth is exact in binary floating point, so the expected
# ceil() below does not depend on rounding.
SMALL_BANDWIDTHS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.5, 4.0, 8.0, 16.0, 32.0, 64.0)
BIG_EXAMPLES = settings.default.max_examples * 5  # for analytic-only properties (cheap)

dims = st.integers(1, 40)
sides = st.integers(1, 12)
ample_memory = st.just(AMPLE)
tight_memory = st.fixed_dictionaries(
    {
        "ifmap_sram_kib": st.sampled_from([1.0, 2.0, 4.0, 1024.0]),
        "filter_sram_kib": st.sampled_from([1.0, 2.0, 4.0, 1024.0]),
        "ofmap_sram_kib": st.sampled_from([1.0, 2.0, 4.0, 1024.0]),
        "dram_bytes_per_cycle": st.sampled_from(SMALL_BANDWIDTHS + (1e5,)),
    }
)
memories = st.one_of(ample_memory, tight_memory)


@st.composite
def chips(draw, memory=memories, side=sides):
    return ChipConfig(
        rows=draw(side), cols=draw(side), dataflow=draw(st.sampled_from(DATAFLOWS)),
        precision=draw(st.sampled_from(PRECISIONS)), **draw(memory),
    )


def operands(m, k, n, precision, seed, kind="normal"):
    rng = np.random.default_rng(seed)
    if precision == "int8":
        return rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    if kind == "ints":
        return rng.integers(-9, 10, (m, k)).astype(np.float32), rng.integers(-9, 10, (k, n)).astype(np.float32)
    if kind == "wide":  # magnitudes from 1e-3 to 1e3, either sign
        def wide(shape):
            return (rng.choice([-1, 1], shape) * 10.0 ** rng.uniform(-3, 3, shape)).astype(np.float32)
        return wide((m, k)), wide((k, n))
    return rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)


def check_product(c, a, b, precision):
    if precision == "int8":
        assert c.dtype == np.int32
        np.testing.assert_array_equal(c, np.asarray(a, np.int32) @ np.asarray(b, np.int32))
    else:
        assert c.dtype == np.float32
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        k = a64.shape[1]
        atol = k * np.abs(a64).max() * np.abs(b64).max() * 1e-6
        np.testing.assert_allclose(c, (a64 @ b64), rtol=1e-5, atol=atol)


def spread(m, k, n, dataflow):
    return {"os": (m, n, k), "ws": (k, n, m), "is": (k, m, n)}[dataflow]


def cdiv(x, y):
    return -(-x // y)


def reference_memory(m, k, n, cfg):
    """memory.py's documented policy, restated fold by fold (folds: column folds outer, row inner).

    Returns per-fold lists of (operand reads, psum reads, writes, stall cycles) in elements/cycles.
    """
    rows, cols = cfg.rows, cfg.cols
    sr, sc, t = spread(m, k, n, cfg.dataflow)
    op = 1 if cfg.precision == "int8" else 4
    acc = 4
    a_fits = m * k * op <= cfg.ifmap_sram_kib * 1024
    b_fits = k * n * op <= cfg.filter_sram_kib * 1024
    c_fits = m * n * acc <= cfg.ofmap_sram_kib * 1024
    cpf = t + rows + cols - 2 + (0 if cfg.dataflow == "os" else rows)
    row_folds, col_folds = cdiv(sr, rows), cdiv(sc, cols)
    out = []
    for cf in range(col_folds):
        for rf in range(row_folds):
            ur = min(rows, sr - rf * rows)
            uc = min(cols, sc - cf * cols)
            psum_reads = writes = 0
            if cfg.dataflow == "os":
                # A's row tile (ur x K) is first used in column fold 0; B's column tile (K x uc)
                # is reused by the consecutive row folds of its column fold.
                reads = (ur * k if (cf == 0 or not a_fits) else 0) + (k * uc if (rf == 0 or not b_fits) else 0)
                writes = ur * uc
            else:
                moving_fits = b_fits if cfg.dataflow == "is" else a_fits
                # moving tile (T x ur) reused by every column fold; stationary tile read once.
                reads = (t * ur if (cf == 0 or not moving_fits) else 0) + ur * uc
                if rf == row_folds - 1 or not c_fits:
                    writes = t * uc
                if not c_fits and rf > 0:
                    psum_reads = t * uc
            traffic = reads * op + (psum_reads + writes) * acc
            stall = max(0, math.ceil(traffic / cfg.dram_bytes_per_cycle) - cpf)
            out.append((reads, psum_reads, writes, stall))
    return out


# --- results --------------------------------------------------------------------------------------


@given(m=dims, k=dims, n=dims, cfg=chips(), seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from(["normal", "ints", "wide"]))
def test_cycle_engine_product_and_counters_match_numpy_and_analytic(m, k, n, cfg, seed, kind):
    a, b = operands(m, k, n, cfg.precision, seed, kind)
    cyc = gemm(a, b, cfg, engine="cycle")
    ana = gemm(a, b, cfg, engine="analytic")
    check_product(cyc.c, a, b, cfg.precision)
    check_product(ana.c, a, b, cfg.precision)
    assert cyc.c.shape == (m, n)
    assert cyc.stats.engine == "cycle" and ana.stats.engine == "analytic"
    assert cyc.stats.counters == ana.stats.counters
    dc, da = cyc.stats.to_dict(), ana.stats.to_dict()
    dc.pop("engine"), da.pop("engine")
    assert dc == da  # floats too: utilization, mapping_efficiency, energy_pj, seconds, intensity...
    for name in ("utilization", "mapping_efficiency", "seconds", "arithmetic_intensity"):
        assert getattr(cyc.stats, name) == getattr(ana.stats, name)
    assert dict(cyc.stats.energy_pj) == dict(ana.stats.energy_pj)
    assert cyc.trace is None and ana.trace is None


@given(m=dims, k=dims, n=dims, cfg=chips(), seed=st.integers(0, 2**32 - 1))
def test_int8_extremes_are_exact(m, k, n, cfg, seed):
    """All -128 (and -128 against 127) operands: the largest int8 products, exact in int32."""
    cfg = cfg.with_(precision="int8")
    rng = np.random.default_rng(seed)
    a = rng.choice([-128, 127], (m, k))
    b = np.full((k, n), -128)
    res = gemm(a, b, cfg, engine="cycle")
    np.testing.assert_array_equal(res.c, a.astype(np.int32) @ b.astype(np.int32))


@settings(max_examples=BIG_EXAMPLES)
@given(m=dims, k=dims, n=dims, cfg=chips())
def test_scalesim_formulas(m, k, n, cfg):
    s = analyze(m, k, n, cfg)
    R, C = cfg.rows, cfg.cols
    sr, sc, t = spread(m, k, n, cfg.dataflow)
    folds = cdiv(sr, R) * cdiv(sc, C)
    cpf = {"os": k + R + C - 2, "ws": 2 * R + C + m - 2, "is": 2 * R + C + n - 2}[cfg.dataflow]
    assert (s.m, s.k, s.n, s.rows, s.cols) == (m, k, n, R, C)
    assert s.folds == folds
    assert s.cycles_per_fold == cpf
    assert s.compute_cycles == folds * cpf
    assert s.cycles == s.compute_cycles + s.stall_cycles
    assert s.scalesim_cycles == s.cycles - 1
    assert s.macs == m * n * k
    assert s.utilization == pytest.approx(m * n * k / (s.cycles * R * C), rel=1e-12)
    assert 0 < s.utilization <= 1
    assert s.mapping_efficiency == pytest.approx(sr * sc / (R * C * folds), rel=1e-12)
    assert 0 < s.mapping_efficiency <= 1
    ifmap, filt = {
        "os": (m * k * cdiv(n, C), k * n * cdiv(m, R)),
        "ws": (m * k * cdiv(n, C), k * n),
        "is": (m * k, k * n * cdiv(m, C)),
    }[cfg.dataflow]
    assert (s.sram_reads_ifmap, s.sram_reads_filter, s.sram_reads) == (ifmap, filt, ifmap + filt)
    writes = m * n if cfg.dataflow == "os" else m * n * cdiv(k, R)
    assert s.sram_writes == writes
    assert s.scalesim_sram_writes == writes + ((R + C) * folds if cfg.dataflow == "os" else 0)
    assert s.seconds == pytest.approx(s.cycles / (cfg.clock_mhz * 1e6), rel=1e-12)
    assert s.achieved_macs_per_cycle == pytest.approx(s.macs / s.cycles, rel=1e-12)
    assert s.energy_pj["total"] == pytest.approx(sum(v for key, v in s.energy_pj.items() if key != "total"))
    assert s.energy_pj["mac"] == pytest.approx(m * n * k * cfg.energy.mac_pj(cfg.precision))


@settings(max_examples=BIG_EXAMPLES)
@given(m=dims, k=dims, n=dims, cfg=chips(memory=ample_memory))
def test_ample_memory_has_no_stalls_and_reads_each_operand_once(m, k, n, cfg):
    s = analyze(m, k, n, cfg)
    assert s.stall_cycles == 0
    assert s.cycles == s.compute_cycles
    assert s.dram_reads == m * k + k * n
    assert s.dram_writes == m * n
    op = 1 if cfg.precision == "int8" else 4
    assert s.dram_bytes == (m * k + k * n) * op + m * n * 4
    assert s.arithmetic_intensity == pytest.approx(m * n * k / s.dram_bytes)


@settings(max_examples=BIG_EXAMPLES)
@given(m=dims, k=dims, n=dims, cfg=chips(memory=tight_memory))
def test_dram_traffic_and_stalls_follow_the_documented_policy(m, k, n, cfg):
    s = analyze(m, k, n, cfg)
    ref = reference_memory(m, k, n, cfg)
    reads, psum_reads, writes, stalls = (sum(col) for col in zip(*ref))
    op = 1 if cfg.precision == "int8" else 4
    assert s.dram_reads == reads + psum_reads
    assert s.dram_writes == writes
    assert s.dram_bytes == reads * op + (psum_reads + writes) * 4
    assert s.stall_cycles == stalls
    # stalls only when some fold's traffic takes longer than the fold computes
    assert (s.stall_cycles > 0) == any(f[3] > 0 for f in ref)


@settings(max_examples=BIG_EXAMPLES)
@given(m=dims, k=dims, n=dims, cfg=chips(memory=tight_memory))
def test_stalls_non_increasing_in_bandwidth(m, k, n, cfg):
    stalls = [analyze(m, k, n, cfg.with_(dram_bytes_per_cycle=bw)).stall_cycles
              for bw in (0.01, 0.1, 0.5, 1.0, 2.5, 8.0, 64.0, 1e3, 1e6)]
    assert all(x >= y for x, y in zip(stalls, stalls[1:])), stalls
    assert stalls[-1] == 0  # with bandwidth no limit, no stalls
    assert stalls[0] > 0  # 0.01 bytes/cycle is always the limit
    # the traffic itself does not depend on bandwidth
    ref = analyze(m, k, n, cfg.with_(dram_bytes_per_cycle=0.01))
    assert analyze(m, k, n, cfg.with_(dram_bytes_per_cycle=1e6)).dram_bytes == ref.dram_bytes


@given(m=dims, k=dims, n=dims, cfg=chips(memory=tight_memory), seed=st.integers(0, 2**32 - 1))
def test_cycle_engine_stalls_match_policy(m, k, n, cfg, seed):
    a, b = operands(m, k, n, cfg.precision, seed)
    s = gemm(a, b, cfg, engine="cycle").stats
    ref = reference_memory(m, k, n, cfg)
    assert s.stall_cycles == sum(f[3] for f in ref)
    assert s.dram_reads == sum(f[0] + f[1] for f in ref)
    assert s.dram_writes == sum(f[2] for f in ref)


# --- trace ----------------------------------------------------------------------------------------

small = st.integers(1, 10)
small_sides = st.integers(1, 5)


@st.composite
def traced_chips(draw, memory=memories):
    """Small arrays, square or not, for every dataflow."""
    return draw(chips(memory=memory, side=small_sides))


def run_traced(m, k, n, cfg, seed, window=None):
    a, b = operands(m, k, n, cfg.precision, seed, "ints")
    res = gemm(a, b, cfg, engine="cycle", trace_window=window or (0, 10**9))
    return a, b, res


def fold_cycles(trace, f):
    """Cycle indices of fold f's compute (non-stall) cycles, in order."""
    idx = np.flatnonzero(trace.fold == f)
    return np.array([c for c in idx if not np.all(trace.state[c] == STALL)], dtype=np.int64)


@given(m=small, k=small, n=small, cfg=traced_chips(), seed=st.integers(0, 2**32 - 1))
def test_full_trace_invariants(m, k, n, cfg, seed):
    a, b, res = run_traced(m, k, n, cfg, seed)
    s, t = res.stats, res.trace
    assert t.start == 0
    assert t.n_cycles == s.cycles
    assert t.dataflow == cfg.dataflow
    assert t.state.shape == (s.cycles, cfg.rows, cfg.cols)
    assert int((t.state == MAC).sum()) == s.macs
    per_cycle = (t.state == MAC).sum(axis=(1, 2))
    assert per_cycle.max() <= cfg.rows * cfg.cols
    assert np.all(np.diff(t.fold) >= 0)
    assert t.fold[0] == 0 and t.fold[-1] == s.folds - 1
    assert int((t.state == STALL).all(axis=(1, 2)).sum()) == s.stall_cycles
    assert len(t.tiles) == s.folds
    for f, (r0, r1, c0, c1) in enumerate(t.tiles):
        cyc = fold_cycles(t, f)
        assert len(cyc) == s.cycles_per_fold
        assert len(np.flatnonzero(t.fold == f)) >= s.cycles_per_fold
        # MACs happen only in the PEs the fold maps work to
        used = np.zeros((cfg.rows, cfg.cols), bool)
        used[: r1 - r0, : c1 - c0] = True
        assert not np.any((t.state[cyc] == MAC) & ~used)
        assert int((t.state[cyc] == MAC).sum()) == (r1 - r0) * (c1 - c0) * spread(m, k, n, cfg.dataflow)[2]
        if cfg.dataflow in ("ws", "is"):
            stationary_src = b if cfg.dataflow == "ws" else np.asarray(a).T  # is: Aᵀ, K on rows, M on cols
            expect = np.zeros((cfg.rows, cfg.cols), np.float32)
            expect[: r1 - r0, : c1 - c0] = stationary_src[r0:r1, c0:c1]
            preload, stream = cyc[: cfg.rows], cyc[cfg.rows:]
            assert np.all(t.state[preload] != MAC)
            assert np.all(t.state[stream] != PRELOAD)
            for c in stream:
                np.testing.assert_array_equal(t.stationary[c], expect)
        else:
            last = cyc[-1]
            expect = np.zeros((cfg.rows, cfg.cols), np.float32)
            expect[: r1 - r0, : c1 - c0] = res.c[r0:r1, c0:c1]
            np.testing.assert_array_equal(t.psum[last], expect)


@given(m=small, k=small, n=small, cfg=traced_chips(memory=ample_memory),
       seed=st.integers(0, 2**32 - 1), data=st.data())
def test_trace_window_is_slice_of_full_trace(m, k, n, cfg, seed, data):
    _, _, full = run_traced(m, k, n, cfg, seed)
    total = full.stats.cycles
    start = data.draw(st.integers(0, total - 1), label="start")
    stop = data.draw(st.integers(start + 1, total), label="stop")
    _, _, part = run_traced(m, k, n, cfg, seed, window=(start, stop))
    assert part.trace.start == start
    assert part.trace.n_cycles == stop - start
    for name in tr.FIELDS:
        np.testing.assert_array_equal(getattr(part.trace, name), getattr(full.trace, name)[start:stop], err_msg=name)
    np.testing.assert_array_equal(part.c, full.c)
    assert part.stats == full.stats


def test_trace_window_bad_values():
    cfg = ChipConfig(2, 2, "ws")
    a, b = np.ones((3, 2), np.float32), np.ones((2, 2), np.float32)
    for window in [(5, 5), (6, 2), (-1, 3), (0.5, 3), (0, 3.0), (True, 3)]:
        with pytest.raises(ValueError, match="window"):
            gemm(a, b, cfg, engine="cycle", trace_window=window)
    # the run lasts 7 cycles (2R + C + M - 2): a window past the end is cut, one after it refused
    cut = gemm(a, b, cfg.with_(dram_bytes_per_cycle=1e5), engine="cycle", trace_window=(5, 100)).trace
    assert (cut.start, cut.n_cycles) == (5, 2)
    with pytest.raises(ValueError, match="window"):
        gemm(a, b, cfg.with_(dram_bytes_per_cycle=1e5), engine="cycle", trace_window=(7, 9))
    with pytest.raises(ValueError, match="cycle"):
        gemm(a, b, cfg, engine="analytic", trace_window=(0, 3))


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_a_trace_stores_each_register_once(dataflow):
    """os: the partial sum is the stationary register (one array); ws, is: nothing moves down from the
    top (read-only zeros, no memory). The budget counts what is stored, and the planes hold what the
    registers held: the same as a trace that stored every plane apart would."""
    cfg = ChipConfig(3, 4, dataflow, dram_bytes_per_cycle=0.5)  # stalls too
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 6), dtype=np.float32), rng.standard_normal((6, 7), dtype=np.float32)
    cycles = analyze(5, 6, 7, cfg).cycles
    t = gemm(a, b, cfg, engine="cycle", trace_window=(0, cycles)).trace
    assert (t.state == tr.STALL).any()
    # per PE and per row's spare slot, a state byte and three float32 registers; the edges' indices
    assert t.nbytes == cycles * tr.bytes_per_cycle(3, 4, dataflow) == cycles * (3 * 5 * 13 + 4 * (1 + 3 + 8))
    if dataflow == "os":
        assert t.psum is t.stationary and t.from_top.flags.writeable
    else:
        assert not t.from_top.flags.writeable and not t.from_top.any() and t.from_top.shape == t.psum.shape
        assert t.psum is not t.stationary


def test_trace_too_large_raises_naming_the_budget():
    cfg = ChipConfig(8, 8, "os", dram_bytes_per_cycle=1e5)
    a, b = np.ones((8, 8), np.float32), np.ones((8, 8), np.float32)
    cycles = analyze(8, 8, 8, cfg).cycles  # 8 + 8 + 8 - 2 = 22
    assert cycles == 22
    need = cycles * tr.bytes_per_cycle(8, 8, "os")
    ok = gemm(a, b, cfg, engine="cycle", trace_window=(0, cycles), trace_budget=need)  # exactly fits
    assert ok.trace.n_cycles == cycles and ok.trace.nbytes == need
    with pytest.raises(TraceTooLarge, match="budget") as info:
        gemm(a, b, cfg, engine="cycle", trace_window=(0, cycles), trace_budget=need - 1)
    assert isinstance(info.value, ValueError)
    # default budget (256 MiB) is named in MiB
    big = ChipConfig(256, 256, "ws", dram_bytes_per_cycle=1e5)
    with pytest.raises(TraceTooLarge, match=r"256 MiB budget"):
        gemm(np.ones((300, 256), np.float32), np.ones((256, 256), np.float32), big, engine="cycle",
             trace_window=(0, 10**9))


@given(cfg=traced_chips(), seed=st.integers(0, 2**32 - 1))
def test_trace_save_load_round_trip(tmp_path_factory, cfg, seed):
    _, _, res = run_traced(3, 4, 5, cfg, seed)
    path = tmp_path_factory.mktemp("trace") / "run.npz"
    res.trace.save(path)
    shared = tr.shared_planes(cfg.dataflow)
    with np.load(path, allow_pickle=False) as data:  # plain arrays, no pickle; a shared plane is not written
        assert set(tr.FIELDS) - set(data.files) == set(shared)
        everything = {**data, **{name: np.asarray(getattr(res.trace, name)) for name in shared}}
    older = path.with_name("older.npz")  # as versions that wrote every plane did
    np.savez(older, **everything)
    loaded = [Trace.load(older), Trace.load(path)]
    assert loaded[0].nbytes == loaded[1].nbytes  # the older file's shared planes are shared once loaded
    back = Trace.load(path)
    assert back.start == res.trace.start and back.dataflow == res.trace.dataflow
    assert back.roles == res.trace.roles
    np.testing.assert_array_equal(back.tiles, res.trace.tiles)
    for name in tr.FIELDS:
        got, want = getattr(back, name), getattr(res.trace, name)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("content", [b"hello world\n", bytes(range(256)) * 4], ids=["text", "binary"])
def test_trace_load_garbage_gives_value_error(tmp_path, content):
    path = tmp_path / "garbage.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a ChipViz trace"):
        Trace.load(path)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))  # a valid npz, but not a trace
    with pytest.raises(ValueError, match="not a ChipViz trace"):
        Trace.load(other)
    with pytest.raises(ValueError):
        Trace.load(tmp_path / "missing.npz")


# --- regressions: bugs found earlier, each pinned by the test that first showed it ----------------


def test_trace_too_large_message_states_a_tiny_budget_correctly():
    """A budget under 1 MiB is stated in a unit that shows it (it once read 'over the 0 MiB budget').

    Input: ChipConfig(2, 2, "ws"), A 3×2, B 2×2, trace_window=(0, 7), trace_budget=500 (bytes; the
    7 cycles need 7 · 96 = 672). Expected: the message states the budget (500 bytes, about
    0.0005 MiB).
    """
    import re

    cfg = ChipConfig(2, 2, "ws")
    with pytest.raises(TraceTooLarge) as info:
        gemm(np.ones((3, 2), np.float32), np.ones((2, 2), np.float32), cfg, engine="cycle", trace_window=(0, 7),
             trace_budget=500)
    msg = str(info.value)
    units = {"bytes": 1, "b": 1, "kib": 2**10, "kb": 1000, "mib": 2**20, "mb": 10**6}
    found = re.search(r"([\d.,]+)\s*(bytes|B|KiB|kB|MiB|MB)\s+budget", msg, re.IGNORECASE)
    assert found, msg
    stated = float(found.group(1).replace(",", "")) * units[found.group(2).lower()]
    assert stated == pytest.approx(500, rel=0.05), msg


def test_trace_window_starting_on_a_stall_cycle_matches_full_trace():
    """A window that begins on a stall cycle records the registers the stall keeps (it once
    recorded zeros in `stationary` and `psum`).

    Input: ChipConfig(2, 2, "ws", dram_bytes_per_cycle=1.0), A = [[1,2],[3,4],[5,6]],
    B = [[1,2],[3,4]]. One fold of 7 cycles moves 64 DRAM bytes at 1 B/cycle: 57 stall cycles
    (7..63). Expected: gemm(..., trace_window=(10, 20)).trace.stationary[0] == full trace's
    stationary[10] == B, and every field of the window equals the full trace's cycles 10..19.
    """
    cfg = ChipConfig(2, 2, "ws", dram_bytes_per_cycle=1.0)
    a = np.array([[1, 2], [3, 4], [5, 6]], np.float32)
    b = np.array([[1, 2], [3, 4]], np.float32)
    full = gemm(a, b, cfg, engine="cycle", trace_window=(0, 64)).trace
    assert full.n_cycles == 64 and np.all(full.state[7:] == STALL)
    np.testing.assert_array_equal(full.stationary[10], b)  # the weights stay put during a stall
    part = gemm(a, b, cfg, engine="cycle", trace_window=(10, 20)).trace
    for name in tr.FIELDS:
        np.testing.assert_array_equal(getattr(part, name), getattr(full, name)[10:20], err_msg=name)


def test_trace_save_load_round_trip_without_npz_suffix(tmp_path):
    """Trace.save(path) writes exactly `path`, also without an .npz suffix (numpy.savez would add
    one), so Trace.load(path) reads it back.

    Input: a trace saved to tmp_path / "run.trace". Expected: Trace.load(same path) returns it.
    """
    _, _, res = run_traced(3, 2, 2, ChipConfig(2, 2, "ws"), 0)
    path = tmp_path / "run.trace"
    res.trace.save(path)
    back = Trace.load(path)
    np.testing.assert_array_equal(back.state, res.trace.state)


@pytest.mark.parametrize(
    "content",
    [b"", b"PK\x03\x04" + bytes(60), "npy"],
    ids=["empty-file", "truncated-zip", "plain-npy-array"],
)
def test_trace_load_other_garbage_gives_value_error(tmp_path, content):
    """Trace.load turns every garbage file into ValueError ("not a ChipViz trace file").

    These once escaped as other exceptions: an empty file (EOFError, "No data left in file"), a
    file starting with a zip signature but truncated (zipfile.BadZipFile), a plain .npy array
    file (TypeError, "'numpy.ndarray' object does not support the context manager protocol").
    """
    path = tmp_path / "garbage.npz"
    if content == "npy":
        with open(path, "wb") as fh:
            np.save(fh, np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match="not a ChipViz trace"):
        Trace.load(path)


@pytest.mark.parametrize("dataflow", ["ws", "is"])
@pytest.mark.parametrize("rows, cols", [(2, 1), (3, 2), (2, 3)])
def test_trace_of_non_square_ws_is_array(dataflow, rows, cols):
    """Tracing a ws or is run on a non-square array works, and keeps `bottom_out` per column.

    Input: gemm(np.ones((1, 1)), np.ones((1, 1)), ChipConfig(2, 1, "ws"), engine="cycle",
    trace_window=(0, 100)) (likewise 3×2, 2×3, and "is"). Expected: a trace of 2R + C − 1 cycles.
    (The preload once passed the per-row `left` array, length R, as `bottom`, length C, and the
    kernel crashed; the traced hypothesis tests above now draw non-square arrays too.)
    """
    cfg = ChipConfig(rows, cols, dataflow, dram_bytes_per_cycle=1e5)
    a, b = np.ones((1, 1), np.float32), np.ones((1, 1), np.float32)
    assert gemm(a, b, cfg, engine="cycle").stats.cycles == 2 * rows + cols - 1  # untraced: fine
    res = gemm(a, b, cfg, engine="cycle", trace_window=(0, 100))
    assert res.trace.n_cycles == 2 * rows + cols - 1
    assert res.trace.bottom_out.shape == (res.trace.n_cycles, cols)
