"""The dataflow table states what goes where once; the kernels, the mapping, the memory roles and
the traces must all agree with it.

Headless: no panel, no bokeh.
"""
from __future__ import annotations

import numpy as np
import pytest

from chipviz.chip import DATAFLOWS, ChipConfig, Mapping, analyze, gemm
from chipviz.chip.config import DATAFLOW_NAMES
from chipviz.chip.dataflow_table import DATAFLOW_TABLE, Dataflow, dataflow
from chipviz.chip.dataflows import MODULES
from chipviz.chip.memory import operand_fits

M, K, N = 5, 7, 3


def test_the_table_is_the_list_of_dataflows():
    assert DATAFLOWS == tuple(DATAFLOW_TABLE) == ("ws", "os", "is")
    assert set(MODULES) == set(DATAFLOW_TABLE)
    assert DATAFLOW_NAMES == {"ws": "weight stationary", "os": "output stationary", "is": "input stationary"}
    for key, flow in DATAFLOW_TABLE.items():
        assert flow.key == key and ChipConfig(dataflow=key).flow is flow
        assert sorted((flow.rows, flow.cols, flow.streamed)) == ["K", "M", "N"]
    with pytest.raises(ValueError, match="dataflow must be one of ws, os, is, got 'xs'"):
        dataflow("xs")
    with pytest.raises(ValueError):
        Dataflow("bad", "bad", "M", "M", "N", "A", "A", "-", "", "", "", "", False)


def test_scalesim_conventions():
    """SCALE-Sim v3: os (M, N; K in time), ws (K, N; M), is (K, M; N); os keeps C, ws B, is A."""
    expect = {"os": ("M", "N", "K", "C"), "ws": ("K", "N", "M", "B"), "is": ("K", "M", "N", "A")}
    for key, (rows, cols, streamed, stays) in expect.items():
        f = DATAFLOW_TABLE[key]
        assert (f.rows, f.cols, f.streamed, f.stationary) == (rows, cols, streamed, stays)
    assert [k for k, f in DATAFLOW_TABLE.items() if f.preloads] == ["ws", "is"]
    assert [k for k, f in DATAFLOW_TABLE.items() if f.transposed] == ["is"]


@pytest.mark.parametrize("key", DATAFLOWS)
@pytest.mark.parametrize(("rows", "cols"), [(2, 3), (4, 4), (3, 1)])
def test_mapping_and_cycles_follow_the_table(key, rows, cols):
    flow = DATAFLOW_TABLE[key]
    config = ChipConfig(rows, cols, key)
    mapping = Mapping.of(M, K, N, config)
    size = {"M": M, "K": K, "N": N}
    assert mapping.spread == (size[flow.rows], size[flow.cols], size[flow.streamed])
    # the formula as written, evaluated, is the mapping's cycles per fold
    formula = flow.cycles_per_fold_formula.replace("−", "-").replace("2R", "2*R")
    assert eval(formula, {"R": rows, "C": cols, **size}) == mapping.cycles_per_fold  # noqa: S307
    assert mapping.preload_cycles == (rows if flow.preloads else 0)
    assert analyze(M, K, N, config).cycles_per_fold == mapping.cycles_per_fold


@pytest.mark.parametrize("key", DATAFLOWS)
def test_the_kernels_move_what_the_table_says(key):
    """A traced run on one fold: the left edge takes indices along the streamed dimension, the
    top edge along the row dimension while preloading (or the streamed one in os), the bottom
    edge gives the streamed dimension's outputs (none in os); the trace's roles are the table's."""
    flow = DATAFLOW_TABLE[key]
    size = {"M": M, "K": K, "N": N}
    config = ChipConfig(8, 8, key, dram_bytes_per_cycle=1e5)  # one fold, no stalls
    rng = np.random.default_rng(0)
    a = rng.integers(-3, 4, (M, K)).astype(np.float32)
    b = rng.integers(-3, 4, (K, N)).astype(np.float32)
    result = gemm(a, b, config, engine="cycle", trace_window=(0, 10**6))
    tr = result.trace
    np.testing.assert_array_equal(result.c, a @ b)
    assert tr.roles == flow.roles and tr.roles["stationary"] == flow.stationary
    left = tr.left_in[tr.left_in >= 0]
    assert left.max() == size[flow.streamed] - 1
    top = tr.top_in[tr.top_in >= 0]
    assert top.max() == size[flow.rows if flow.preloads else flow.streamed] - 1
    bottom = tr.bottom_out[tr.bottom_out >= 0]
    if flow.bottom_out == "-":
        assert bottom.size == 0
    else:
        assert bottom.max() == size[flow.streamed] - 1
    # the stationary registers hold the stationary matrix (transposed for is, as Aᵀ: K × M)
    if flow.preloads:
        held = tr.stationary[config.rows - 1][:size[flow.rows], :size[flow.cols]]  # after the preload
        np.testing.assert_array_equal(held, a.T if flow.stationary == "A" else b)


@pytest.mark.parametrize("key", DATAFLOWS)
def test_memory_and_sram_roles_follow_the_table(key):
    """The operand entering the left edge is the 'moving' one for the SRAM policy and its reads."""
    flow = DATAFLOW_TABLE[key]
    # A fits its (ifmap) buffer, B does not fit its (filter) buffer
    config = ChipConfig(2, 2, key, ifmap_sram_kib=1.0, filter_sram_kib=1.0)
    fits = operand_fits(4, 8, 300, key, config)  # A: 32 values, B: 2400 values (9.6 KB)
    assert fits.tolist()[:2] == ([True, False] if flow.moving == "A" else [False, True])
    s = analyze(M, K, N, config)
    if flow.output_stationary:  # both operands stream: A's reads are M·K per column fold, B's K·N per row fold
        assert s.sram_reads_ifmap == M * K * -(-N // 2) and s.sram_reads_filter == K * N * -(-M // 2)
    else:  # the stationary matrix is read once; the moving one once per column fold
        stationary, moving = (s.sram_reads_filter, s.sram_reads_ifmap) if flow.stationary == "B" else (
            s.sram_reads_ifmap, s.sram_reads_filter)
        size = {"A": M * K, "B": K * N}
        assert stationary == size[flow.stationary]
        assert moving == size[flow.moving] * -(-{"M": M, "K": K, "N": N}[flow.cols] // 2)
