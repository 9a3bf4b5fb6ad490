"""chipviz.conv_map: what a PE multiplies at a cycle (checked against the cycle engine's own
registers), and which image pixel, tap and filter a conv GEMM element is (checked against im2col).

Headless: no panel, no bokeh.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chipviz.chip import ChipConfig, gemm
from chipviz.chip.conv import ConvGeometry, Im2colOperand
from chipviz.chip.mapping import Mapping
from chipviz.chip.trace import MAC
from chipviz.conv_map import element, images_from_im2col, pe_element, window_of


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 9), k=st.integers(1, 9), n=st.integers(1, 9), rows=st.integers(1, 4), cols=st.integers(1, 4),
       dataflow=st.sampled_from(["ws", "os", "is"]))
def test_pe_element_is_what_the_registers_multiply(m, k, n, rows, cols, dataflow):
    config = ChipConfig(rows=rows, cols=cols, dataflow=dataflow)
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a = rng.integers(1, 9, (m, k)).astype(np.float32)
    b = rng.integers(1, 9, (k, n)).astype(np.float32) * 16  # a and b never mistaken for each other
    trace = gemm(a, b, config, engine="cycle", trace_window=(0, 10**6)).trace
    mapping = Mapping.of(m, k, n, config)
    starts = {int(f): int(np.argmax(trace.fold == f)) for f in np.unique(trace.fold)}
    for c in range(trace.n_cycles):
        fold = int(trace.fold[c])
        for i in range(rows):
            for j in range(cols):
                where = pe_element(mapping, fold, c - starts[fold], i, j)
                assert (trace.state[c, i, j] == MAC) == (where is not None)
                if where is not None:
                    mm, kk, nn = where
                    other = trace.from_top[c, i, j] if dataflow == "os" else trace.stationary[c, i, j]
                    assert trace.from_left[c, i, j] * other == a[mm, kk] * b[kk, nn]


@pytest.mark.parametrize("padding, stride", [("same", 1), ("valid", 2), ("scalesim", 2)])
def test_elements_name_the_pixel_im2col_put_there(padding, stride):
    geometry = ConvGeometry(7, 6, 2, 3, 2, 4, stride, stride, padding)
    x = np.random.default_rng(0).standard_normal((2, 7, 6, 2)).astype(np.float32)
    a = geometry.im2col(x)
    for mm in range(a.shape[0]):
        for kk in range(a.shape[1]):
            e = element(geometry, "forward", mm, kk, 3)
            expected = 0.0 if e.in_y is None else x[e.image, e.in_y, e.in_x, e.channel]
            assert a[mm, kk] == expected
            y0, x0, y1, x1 = window_of(geometry, e.out_y, e.out_x)
            assert e.in_y is None or (y0 <= e.in_y < y1 and x0 <= e.in_x < x1)
            assert element(geometry, "backward_weights", kk, mm, 3) == e
            assert element(geometry, "backward_data", mm, 3, kk) == e
    touched = np.zeros(x.size, bool)
    addresses = Im2colOperand(geometry, 2).addresses()
    touched[addresses[addresses >= 0]] = True
    back = images_from_im2col(a, geometry, 2)
    assert np.array_equal(back, np.where(touched.reshape(x.shape), x, 0))
