"""What a convolution's matrix multiply means in pictures: which image patch became which row
of A, which kernel became which column of B, and what one PE multiplies at one cycle.

Pure Python and numpy (no panel, no bokeh): the conv view draws what these functions compute,
and the tests check them against the lowering itself (chipviz.chip.conv).

A conv layer's three GEMMs (chipviz.chip.conv's docstring) index the same three things, an
output pixel p = (image, oy, ox), a window tap t = (dy, dx, channel) and a filter f:

| phase            | GEMM         | m | k | n | A[m, k]                  | B[k, n]       |
|------------------|--------------|---|---|---|--------------------------|---------------|
| forward          | Z = A·W      | p | t | f | pixel under tap t of p   | W[t, f]       |
| backward_weights | dW = Aᵀ·dZ   | t | p | f | pixel under tap t of p   | dZ[p, f]      |
| backward_data    | dA = dZ·Wᵀ   | p | f | t | dZ[p, f]                 | W[t, f]       |
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chip.conv import ConvGeometry, Im2colOperand
from .chip.dataflow_table import DATAFLOW_TABLE
from .chip.mapping import Mapping

# (pixel, tap, filter) as (m, k, n) positions, per phase: the table above
ROLES = {"forward": ("p", "t", "f"), "backward_weights": ("t", "p", "f"), "backward_data": ("p", "f", "t")}


def pe_element(mapping: Mapping, fold: int, cycle_in_fold: int, row: int, col: int) -> tuple[int, int, int] | None:
    """(m, k, n): the product A[m, k]·B[k, n] PE (row, col) computes at `cycle_in_fold` of `fold`,
    or None when it computes nothing then (filling, draining, unused PE, preload).

    From the dataflow table: the rows and columns spread two dimensions (the fold's tile starts
    at r0, c0); the streamed index t reaches PE (i, j) at cycle preload + t + i + j (the skew)."""
    flow = DATAFLOW_TABLE[mapping.dataflow]
    tiles = mapping.fold_tiles()
    if not 0 <= fold < len(tiles):
        return None
    r0, r1, c0, c1 = (int(v) for v in tiles[fold])
    if not (0 <= row < r1 - r0 and 0 <= col < c1 - c0):
        return None
    t = cycle_in_fold - mapping.preload_cycles - row - col
    if not 0 <= t < mapping.spread[2]:
        return None
    index = {flow.rows: r0 + row, flow.cols: c0 + col, flow.streamed: t}
    return index["M"], index["K"], index["N"]


@dataclass(frozen=True)
class ConvElement:
    """One term of a conv GEMM in the layer's own words."""

    image: int  # which image of the batch
    out_y: int
    out_x: int  # the output pixel
    tap_y: int
    tap_x: int
    channel: int  # the kernel tap (and input channel)
    filter: int
    in_y: int | None  # the input pixel under the tap (None: a padding zero)
    in_x: int | None


def element(geometry: ConvGeometry, phase: str, m: int, k: int, n: int) -> ConvElement:
    """What GEMM element (m, k, n) of `phase` is: output pixel, tap, filter and input pixel."""
    roles = dict(zip(ROLES[phase], (m, k, n)))
    image, pixel = divmod(roles["p"], geometry.out_pixels)
    out_y, out_x = divmod(pixel, geometry.out_w)
    tap, channel = divmod(roles["t"], geometry.channels)
    tap_y, tap_x = divmod(tap, geometry.kernel_w)
    (_, top, _), (_, left, _) = geometry.rows, geometry.cols
    in_y = out_y * geometry.stride_h + tap_y - top
    in_x = out_x * geometry.stride_w + tap_x - left
    inside = 0 <= in_y < geometry.in_h and 0 <= in_x < geometry.in_w
    return ConvElement(image, out_y, out_x, tap_y, tap_x, channel, roles["f"],
                       in_y if inside else None, in_x if inside else None)


def window_of(geometry: ConvGeometry, out_y: int, out_x: int) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1): the input rectangle (may reach into the padding) one output pixel reads."""
    (_, top, _), (_, left, _) = geometry.rows, geometry.cols
    y0, x0 = out_y * geometry.stride_h - top, out_x * geometry.stride_w - left
    return y0, x0, y0 + geometry.kernel_h, x0 + geometry.kernel_w


def images_from_im2col(a: np.ndarray, geometry: ConvGeometry, batch: int) -> np.ndarray:
    """The input images (batch, H, W, C) back from their unrolled matrix (each pixel from any window
    that holds it; pixels no window reads stay 0)."""
    addresses = Im2colOperand(geometry, batch).addresses()
    flat = np.zeros(batch * geometry.in_h * geometry.in_w * geometry.channels, np.float32)
    real = addresses >= 0
    flat[addresses[real]] = np.asarray(a, np.float32)[real]
    return flat.reshape(batch, *geometry.in_shape)


def js_geometry(geometry: ConvGeometry, phase: str) -> dict:
    """What the PE array's tooltip needs to name, in the browser, the window, pixel, tap and kernel
    of a conv GEMM's element (m, k, n): the same arithmetic as `element`."""
    (_, top, _), (_, left, _) = geometry.rows, geometry.cols
    return {"roles": "".join(ROLES[phase]), "out_pixels": geometry.out_pixels, "out_w": geometry.out_w,
            "kernel_w": geometry.kernel_w, "channels": geometry.channels, "stride_h": geometry.stride_h,
            "stride_w": geometry.stride_w, "top": top, "left": left, "in_h": geometry.in_h, "in_w": geometry.in_w}
