"""The one convolution lowering (chipviz.chip.conv): output sizes in the three conventions,
im2col against a direct convolution, col2im as its adjoint, the GEMM shapes of a layer's
forward and backward, and both engines equal on every counter for conv GEMMs.

Headless: no panel, no bokeh.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chipviz import cli
from chipviz.chip import ChipConfig, analyze, gemm
from chipviz.chip.conv import CONVENTIONS, PADDINGS, ConvGeometry, col2im, im2col, output_size, padding_amounts
from chipviz.chip.topology import CONV_HEADER, parse_topology
from chipviz.nn.phases import PHASE_TABLE


@pytest.mark.parametrize("size, kernel, stride, padding, out, before, after", [
    (9, 3, 2, "valid", 4, 0, 0), (7, 2, 2, "valid", 3, 0, 0), (224, 11, 4, "valid", 54, 0, 0),
    (9, 3, 2, "scalesim", 4, 0, 0), (7, 2, 2, "scalesim", 4, 0, 1), (224, 11, 4, "scalesim", 55, 0, 3),
    (8, 3, 1, "scalesim", 6, 0, 0),  # stride 1: SCALE-Sim and valid agree
    (8, 3, 1, "same", 8, 1, 1), (8, 4, 1, "same", 8, 1, 2), (7, 3, 2, "same", 4, 1, 1), (5, 1, 3, "same", 2, 0, 0),
    (2, 5, 1, "same", 2, 2, 2),  # a kernel larger than the input is fine with padding
])
def test_output_size_conventions(size, kernel, stride, padding, out, before, after):
    assert padding_amounts(size, kernel, stride, padding) == (out, before, after)
    assert output_size(size, kernel, stride, padding) == out


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(kernel_h=9), "kernel height 9 is larger than the input height 8"),
    (dict(kernel_w=9, padding="scalesim"), "kernel width 9 is larger than the input width 8"),
    (dict(stride_h=0), "stride_h must be a whole number >= 1, got 0"),
    (dict(channels=0), "channels must be a whole number >= 1, got 0"),
    (dict(padding="full"), "padding must be one of valid, same, scalesim"),
])
def test_geometry_errors_name_the_value(kwargs, fragment):
    base = dict(in_h=8, in_w=8, channels=2, kernel_h=3, kernel_w=3, filters=4)
    with pytest.raises(ValueError, match=fragment):
        ConvGeometry(**{**base, **kwargs})


def direct_conv(x, w, g: ConvGeometry):
    """A plain loop convolution (zero padding per the geometry), independent of im2col."""
    (oh, top, _), (ow, left, _) = g.rows, g.cols
    kernel = w.reshape(g.kernel_h, g.kernel_w, g.channels, g.filters)
    out = np.zeros((len(x), oh, ow, g.filters))
    for b in range(len(x)):
        for i in range(oh):
            for j in range(ow):
                for dy in range(g.kernel_h):
                    for dx in range(g.kernel_w):
                        y, z = i * g.stride_h + dy - top, j * g.stride_w + dx - left
                        if 0 <= y < g.in_h and 0 <= z < g.in_w:
                            out[b, i, j] += x[b, y, z] @ kernel[dy, dx]
    return out


geometries = st.builds(
    lambda h, w, c, kh, kw, f, sh, sw, padding: ConvGeometry(h, w, c, min(kh, h), min(kw, w), f, sh, sw, padding),
    st.integers(1, 6), st.integers(1, 6), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4),
    st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.sampled_from(CONVENTIONS))


@settings(max_examples=60, deadline=None)
@given(g=geometries, batch=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_im2col_times_filters_is_the_convolution(g, batch, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *g.in_shape))
    w = rng.standard_normal((g.window, g.filters))
    cols = im2col(x, g)
    assert cols.shape == (batch * g.out_pixels, g.window)
    out = (cols @ w).reshape(batch, *g.out_shape)
    np.testing.assert_allclose(out, direct_conv(x, w, g), rtol=1e-10, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(g=geometries, batch=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_col2im_is_the_adjoint_of_im2col(g, batch, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *g.in_shape))
    y = rng.standard_normal((batch * g.out_pixels, g.window))
    assert np.vdot(im2col(x, g), y) == pytest.approx(np.vdot(x, col2im(y, g)), rel=1e-10, abs=1e-10)
    # the round trip multiplies each pixel by the number of windows that read it
    coverage = col2im(im2col(np.ones_like(x), g), g)
    np.testing.assert_allclose(col2im(im2col(x, g), g), x * coverage, rtol=1e-12)


def test_round_trip_is_exact_when_windows_tile_the_input():
    g = ConvGeometry(6, 4, 3, 2, 2, 5, 2, 2, "valid")
    x = np.arange(2 * 6 * 4 * 3, dtype=np.float32).reshape(2, 6, 4, 3)
    np.testing.assert_array_equal(col2im(im2col(x, g), g), x)
    assert im2col(x, g)[0].tolist() == [x[0, 0, 0, c] for c in range(3)] + [x[0, 0, 1, c] for c in range(3)] + \
        [x[0, 1, 0, c] for c in range(3)] + [x[0, 1, 1, c] for c in range(3)]  # kernel row, column, channel


def test_scalesim_overhang_taps_are_zeros():
    g = ConvGeometry(3, 3, 1, 2, 2, 1, 2, 2, "scalesim")  # OH = ceil(1/2) + 1 = 2: the last window overhangs
    x = np.arange(1, 10, dtype=float).reshape(1, 3, 3, 1)
    cols = im2col(x, g)
    assert cols.tolist() == [[1, 2, 4, 5], [3, 0, 6, 0], [7, 8, 0, 0], [9, 0, 0, 0]]


def test_gemm_shapes_are_the_phase_tables():
    g = ConvGeometry(8, 8, 3, 3, 3, 16, 2, 2, "same")
    shapes = g.gemm_shapes(batch=5)
    assert shapes == {"forward": (80, 27, 16), "backward_weights": (27, 80, 16), "backward_data": (80, 16, 27)}
    for phase, shape in shapes.items():
        assert PHASE_TABLE[phase].shape(5 * g.out_pixels, g.window, g.filters) == shape
    assert g.input_pixels_read(5) == 5 * 8 * 8 * 3
    for padding in PADDINGS:
        assert padding in ConvGeometry(4, 4, 1, 3, 3, 1, padding=padding).convention


@settings(max_examples=25, deadline=None)
@given(g=geometries, batch=st.integers(1, 2), dataflow=st.sampled_from(("ws", "os", "is")),
       array=st.tuples(st.integers(1, 5), st.integers(1, 5)), seed=st.integers(0, 2**16))
def test_engines_agree_on_every_counter_for_conv_gemms(g, batch, dataflow, array, seed):
    rng = np.random.default_rng(seed)
    config = ChipConfig(rows=array[0], cols=array[1], dataflow=dataflow)
    cols = im2col(rng.standard_normal((batch, *g.in_shape)).astype(np.float32), g)
    w = rng.standard_normal((g.window, g.filters)).astype(np.float32)
    dz = rng.standard_normal((len(cols), g.filters)).astype(np.float32)
    operands = {"forward": (cols, w), "backward_weights": (cols.T, dz), "backward_data": (dz, w.T)}
    for phase, (a, b) in operands.items():
        assert (a.shape[0], a.shape[1], b.shape[1]) == g.gemm_shapes(batch)[phase]
        fast, slow = gemm(a, b, config, "analytic"), gemm(a, b, config, "cycle")
        assert fast.stats.counters | {"engine": 0} == slow.stats.counters | {"engine": 0}, phase
        assert fast.stats.energy_pj == slow.stats.energy_pj
        np.testing.assert_allclose(slow.c, fast.c, rtol=1e-4, atol=1e-4)


def test_topology_and_geometry_share_the_lowering(tmp_path, capsys):
    (layer,) = parse_topology(CONV_HEADER + "\nc,9,7,3,2,3,4,2,\n")
    assert isinstance(layer.conv, ConvGeometry)
    assert layer.conv == ConvGeometry(9, 7, 3, 3, 2, 4, 2, 2, "scalesim")
    assert (layer.m, layer.k, layer.n) == layer.conv.gemm_shapes()["forward"] == (16, 18, 4)
    path = tmp_path / "c.csv"
    path.write_text(CONV_HEADER + "\nc,9,7,3,2,3,4,2,\n")
    assert cli.main(["gemm", "--topology", str(path)]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()[:2]
    assert "output_size" in header and "ofmap_h" in header
    assert "SCALE-Sim 3.0.0" in row and row.startswith("c,16,18,4,4,4,")
    assert cli.main(["gemm", "--topology", str(path), "--json"]) == 0
    import json
    record = json.loads(capsys.readouterr().out)
    assert "SCALE-Sim 3.0.0" in record["output_size"]
    assert record["layers"][0]["conv"]["ofmap_w"] == 4
    assert record["layers"][0]["cycles"] == analyze(16, 18, 4, ChipConfig()).cycles
