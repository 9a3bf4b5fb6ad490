"""Convolution as a GEMM: the one lowering (im2col) used by topology files and trained layers.

A convolution of an input X (batch × H × W × C, channels last) with F filters of kh × kw × C
becomes one matrix multiply C = A·B when each output pixel's window is unrolled into a row:

    A = im2col(X): M × K with M = batch · OH · OW (one row per output pixel),
                   K = kh · kw · C (the window, in the order kernel row, kernel column, channel:
                   channel fastest, as SCALE-Sim 3.0.0 unrolls its ifmap operand)
    B = the filters: K × N with N = F;  C = A·B: M × N, the output (batch, OH, OW, F)

Training runs two more GEMMs per layer (dZ: M × N, the gradient at the output):

    dW = Aᵀ·dZ   (M = K, K = batch · OH · OW, N = F)
    dA = dZ·Wᵀ   (M = batch · OH · OW, K = F, N = kh · kw · C), then dX = col2im(dA)

col2im adds every unrolled value back onto the input pixel it came from (the adjoint of
im2col), so a pixel read by several windows gets the sum of their gradients.

Output size per side (input I, kernel F, stride S), three conventions:

| padding    | output size     | zeros added                                  | used by         |
|------------|-----------------|----------------------------------------------|-----------------|
| "valid"    | ⌊(I − F)/S⌋ + 1 | none: windows that would overhang are dropped | trained layers  |
| "same"     | ⌈I/S⌉           | (O − 1)·S + F − I: half before (floor), rest after | trained layers |
| "scalesim" | ⌈(I − F)/S⌉ + 1 | after only: the last window may overhang, its | SCALE-Sim 3.0.0 |
|            |                 | missing taps count as zeros                  | topology files  |
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

PADDINGS = ("valid", "same")  # what a trained layer can use
CONVENTIONS = (*PADDINGS, "scalesim")  # ... and SCALE-Sim 3.0.0's, for imported topologies

CONVENTION_TEXT = {
    "valid": "valid: OH = ⌊(IH − FH)/S⌋ + 1 (no padding)",
    "same": "same: OH = ⌈IH/S⌉ (zero padding split before and after)",
    "scalesim": "SCALE-Sim 3.0.0: OH = ⌈(IH − FH)/S⌉ + 1 (the last window overhangs; missing taps are zeros)",
}

__all__ = ["CONVENTIONS", "CONVENTION_TEXT", "PADDINGS", "ConvGeometry", "Im2colOperand", "col2im", "im2col",
           "output_size", "padding_amounts"]


def _whole(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    return int(value)


def padding_amounts(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int, int]:
    """(output size, zeros before, zeros after) along one side; ValueError if no window fits."""
    if padding not in CONVENTIONS:
        raise ValueError(f"padding must be one of {', '.join(CONVENTIONS)}, got {padding!r}")
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2, total - total // 2
    if kernel > size:
        raise ValueError(f"kernel {kernel} is larger than the input {size} (padding {padding!r} adds no zeros "
                         f"around it)")
    if padding == "valid":
        return (size - kernel) // stride + 1, 0, 0
    out = -(-(size - kernel) // stride) + 1  # SCALE-Sim: ceil((I - F + S) / S)
    return out, 0, (out - 1) * stride + kernel - size


def output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """The output's size along one side (see the module's table)."""
    return padding_amounts(size, kernel, stride, padding)[0]


@dataclass(frozen=True)
class ConvGeometry:
    """One convolution layer's shapes: input in_h × in_w × channels, `filters` kernels of
    kernel_h × kernel_w × channels, strides, and a padding convention (CONVENTIONS)."""

    in_h: int
    in_w: int
    channels: int
    kernel_h: int
    kernel_w: int
    filters: int
    stride_h: int = 1
    stride_w: int = 1
    padding: str = "valid"

    def __post_init__(self):
        for name in ("in_h", "in_w", "channels", "kernel_h", "kernel_w", "filters", "stride_h", "stride_w"):
            object.__setattr__(self, name, _whole(name, getattr(self, name)))
        if self.padding not in CONVENTIONS:
            raise ValueError(f"padding must be one of {', '.join(CONVENTIONS)}, got {self.padding!r}")
        for side, size, kernel, stride in (("height", self.in_h, self.kernel_h, self.stride_h),
                                           ("width", self.in_w, self.kernel_w, self.stride_w)):
            try:
                padding_amounts(size, kernel, stride, self.padding)
            except ValueError as exc:
                raise ValueError(f"kernel {side} {kernel} is larger than the input {side} {size} (padding "
                                 f"{self.padding!r} adds no zeros around it)") from exc

    @cached_property  # a training step asks for these a dozen times; the geometry never changes
    def rows(self) -> tuple[int, int, int]:
        """(output height, zeros above, zeros below)."""
        return padding_amounts(self.in_h, self.kernel_h, self.stride_h, self.padding)

    @cached_property
    def cols(self) -> tuple[int, int, int]:
        """(output width, zeros left, zeros right)."""
        return padding_amounts(self.in_w, self.kernel_w, self.stride_w, self.padding)

    @property
    def out_h(self) -> int:
        return self.rows[0]

    @property
    def out_w(self) -> int:
        return self.cols[0]

    @property
    def out_pixels(self) -> int:
        return self.out_h * self.out_w

    @property
    def window(self) -> int:
        """K: the values one output pixel's window holds, kh · kw · C."""
        return self.kernel_h * self.kernel_w * self.channels

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return self.in_h, self.in_w, self.channels

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return self.out_h, self.out_w, self.filters

    @property
    def convention(self) -> str:
        return CONVENTION_TEXT[self.padding]

    def gemm_shapes(self, batch: int = 1) -> dict[str, tuple[int, int, int]]:
        """(M, K, N) of the forward GEMM and of the two backward GEMMs, keyed as the training phases."""
        batch = _whole("batch", batch)
        pixels, window, filters = batch * self.out_pixels, self.window, self.filters
        return {"forward": (pixels, window, filters),  # Z = A·W
                "backward_weights": (window, pixels, filters),  # dW = Aᵀ·dZ
                "backward_data": (pixels, filters, window)}  # dA = dZ·Wᵀ

    def input_pixels_read(self, batch: int = 1) -> int:
        """Input values a conv reads from memory when the unrolling happens on chip: each once."""
        return _whole("batch", batch) * self.in_h * self.in_w * self.channels

    # -------------------------------------------------------------------- the lowering

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1:] != self.in_shape:
            raise ValueError(f"input must be batch × {self.in_h} × {self.in_w} × {self.channels}, got shape "
                             f"{x.shape}")
        return x

    def _taps(self):
        """(dy, dx, rows slice, cols slice) of every kernel tap in the padded input."""
        oh, ow = self.out_h, self.out_w
        for dy in range(self.kernel_h):
            for dx in range(self.kernel_w):
                yield dy, dx, slice(dy, dy + (oh - 1) * self.stride_h + 1, self.stride_h), \
                    slice(dx, dx + (ow - 1) * self.stride_w + 1, self.stride_w)

    def _padded_shape(self, batch: int) -> tuple[int, int, int, int]:
        (_, top, bottom), (_, left, right) = self.rows, self.cols
        return batch, self.in_h + top + bottom, self.in_w + left + right, self.channels

    def im2col(self, x: np.ndarray) -> np.ndarray:
        """A: (batch · OH · OW) × (kh · kw · C), one row per output pixel (batch, row, column order)."""
        x = self._check_input(x)
        batch = x.shape[0]
        (_, top, _), (_, left, _) = self.rows, self.cols
        padded = np.zeros(self._padded_shape(batch), x.dtype)
        padded[:, top:top + self.in_h, left:left + self.in_w] = x
        cols = np.empty((batch, self.out_h, self.out_w, self.kernel_h, self.kernel_w, self.channels), x.dtype)
        for dy, dx, rows, columns in self._taps():
            cols[:, :, :, dy, dx] = padded[:, rows, columns]
        return cols.reshape(batch * self.out_pixels, self.window)

    def col2im(self, cols: np.ndarray) -> np.ndarray:
        """The adjoint of im2col: each unrolled value added back onto its input pixel (padding dropped)."""
        cols = np.asarray(cols)
        if cols.ndim != 2 or cols.shape[1] != self.window or cols.shape[0] % self.out_pixels:
            raise ValueError(f"unrolled matrix must be (batch · {self.out_pixels}) × {self.window}, got shape "
                             f"{cols.shape}")
        batch = cols.shape[0] // self.out_pixels
        cols = cols.reshape(batch, self.out_h, self.out_w, self.kernel_h, self.kernel_w, self.channels)
        padded = np.zeros(self._padded_shape(batch), cols.dtype)
        for dy, dx, rows, columns in self._taps():
            padded[:, rows, columns] += cols[:, :, :, dy, dx]
        (_, top, _), (_, left, _) = self.rows, self.cols
        return padded[:, top:top + self.in_h, left:left + self.in_w]


def im2col(x: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    return geometry.im2col(x)


def col2im(cols: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    return geometry.col2im(cols)


@dataclass(frozen=True)
class Im2colOperand:
    """Where the elements of an im2col GEMM operand live in DRAM: the input pixels of `batch`
    images, each stored once. The forward GEMM's A is im2col(X) (M × K); the weight gradient's
    A is its transpose (`transposed`: K × M). Passed to the engines as `a_layout`, it makes DRAM
    count each input pixel once (chipviz.chip.memory.fold_footprints)."""

    geometry: ConvGeometry
    batch: int = 1
    transposed: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.batch * self.geometry.out_pixels, self.geometry.window
        return (cols, rows) if self.transposed else (rows, cols)

    @property
    def pixels(self) -> int:
        """Input values in DRAM: batch · H · W · C."""
        return self.geometry.input_pixels_read(self.batch)

    @property
    def touched(self) -> int:
        """Input values some window reads (fewer than `pixels` when the stride skips some): what SRAM holds."""
        return _touched(self)

    def addresses(self) -> np.ndarray:
        """The operand's elements as input pixel numbers (row-major in batch, H, W, C); -1 for padding."""
        index = np.arange(1, self.pixels + 1, dtype=np.int64).reshape(self.batch, *self.geometry.in_shape)
        a = self.geometry.im2col(index) - 1  # padding is 0 before the shift, -1 after
        return a.T if self.transposed else a


@lru_cache(maxsize=256)
def _touched(layout: Im2colOperand) -> int:
    a = layout.addresses()
    return int(np.unique(a[a >= 0]).size)
