"""DRAM traffic of convolution GEMMs: each input pixel is one DRAM value, however many windows
repeat it (the unrolling happens on chip, as in SCALE-Sim's memory model), while SRAM reads
count the unrolled operand. Both engines agree on every counter, for the forward GEMM
(A = im2col(X)) and the weight gradient's (A = im2col(X)ᵀ).

Headless: no panel, no bokeh.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chipviz.chip import ChipConfig, analyze, gemm
from chipviz.chip.conv import CONVENTIONS, ConvGeometry, Im2colOperand


@st.composite
def layers(draw):
    padding = draw(st.sampled_from(CONVENTIONS))
    size = draw(st.integers(3, 9))
    kernel = draw(st.integers(1, 3))
    return ConvGeometry(size, draw(st.integers(3, 9)), draw(st.integers(1, 4)), kernel, draw(st.integers(1, 3)),
                        draw(st.integers(1, 6)), draw(st.integers(1, 3)), draw(st.integers(1, 3)), padding)


chips = st.builds(ChipConfig, rows=st.integers(1, 6), cols=st.integers(1, 6),
                  dataflow=st.sampled_from(["ws", "os", "is"]),
                  ifmap_sram_kib=st.sampled_from([1, 64]), ofmap_sram_kib=st.sampled_from([1, 64]),
                  dram_bytes_per_cycle=st.sampled_from([1, 4, 64]))


@settings(max_examples=60, deadline=None)
@given(geometry=layers(), batch=st.integers(1, 3), config=chips, seed=st.integers(0, 2**31))
def test_engines_agree_and_pixels_are_read_once(geometry, batch, config, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *geometry.in_shape)).astype(np.float32)
    a = geometry.im2col(x)
    w = rng.standard_normal((geometry.window, geometry.filters)).astype(np.float32)
    dz = rng.standard_normal((a.shape[0], geometry.filters)).astype(np.float32)
    for left, right, layout in ((a, w, Im2colOperand(geometry, batch)),
                                (a.T, dz, Im2colOperand(geometry, batch, transposed=True))):
        cycle = gemm(left, right, config, engine="cycle", a_layout=layout).stats
        fast = gemm(left, right, config, a_layout=layout).stats
        plain = analyze(*left.shape, right.shape[1], config)
        assert cycle.counters == fast.counters
        # SRAM sees the unrolled operand; DRAM never more than the plain GEMM's
        assert (fast.sram_reads, fast.sram_writes, fast.macs) == (plain.sram_reads, plain.sram_writes, plain.macs)
        assert fast.dram_reads <= plain.dram_reads and fast.stall_cycles <= plain.stall_cycles
        assert fast.energy_pj["total"] <= plain.energy_pj["total"]
        # with everything in SRAM, A's DRAM reads are exactly the distinct pixels it touches, B's its size
        roomy = config.with_(ifmap_sram_kib=1024, filter_sram_kib=1024, ofmap_sram_kib=1024)
        whole = analyze(*left.shape, right.shape[1], roomy, layout)
        assert whole.dram_reads == layout.touched + right.size


def test_a_strided_layer_reads_each_pixel_once_not_nine_times():
    geometry = ConvGeometry(28, 28, 1, 3, 3, 8)  # MNIST's first conv: 26×26 windows of 9 pixels
    layout = Im2colOperand(geometry, batch=4)
    config = ChipConfig(rows=8, cols=8, dataflow="ws")
    m, k = layout.shape
    with_rule, plain = analyze(m, k, 8, config, layout), analyze(m, k, 8, config)
    assert with_rule.dram_reads == 4 * 28 * 28 + k * 8  # every pixel is in some window at stride 1
    assert plain.dram_reads == m * k + k * 8  # the unrolled matrix: 2,704 windows × 9
    assert with_rule.sram_reads == plain.sram_reads


def test_padding_zeros_are_made_on_chip():
    geometry = ConvGeometry(4, 4, 1, 3, 3, 1, padding="same")  # per side, windows hold 2, 3, 3, 2 real taps
    a = Im2colOperand(geometry).addresses()
    assert (a >= 0).sum() == 10 * 10 and set(a[a >= 0].ravel()) == set(range(16))


def test_a_layout_of_the_wrong_shape_is_refused():
    layout = Im2colOperand(ConvGeometry(5, 5, 1, 3, 3, 2))
    with pytest.raises(ValueError, match="describes a 9×9 operand, but A is 9×8"):
        analyze(9, 8, 2, ChipConfig(rows=4, cols=4), layout)
