"""Convolutional networks on the chip: Conv2D, MaxPool, AvgPool, Flatten and Dense layers.

A convolution is a GEMM through chipviz.chip.conv's lowering (the one `chipviz gemm --topology`
uses): the input's windows are unrolled (im2col) into A, one row per output pixel, so that

    forward          Z = A·W      M = batch·OH·OW, K = kh·kw·C,      N = filters
    backward_weights dW = Aᵀ·dZ   M = kh·kw·C,      K = batch·OH·OW, N = filters
    backward_data    dA = dZ·Wᵀ   M = batch·OH·OW, K = filters,      N = kh·kw·C

and col2im adds dA back onto the input pixels, on the vector unit (priced in backward_data).
The forward and weight-gradient GEMMs tell the chip that their A is unrolled (Im2colOperand),
so DRAM reads each input pixel once while SRAM reads count the unrolled matrix.
Every GEMM is a ChipRunner op, named and shaped by the phase table (phases.py: for a conv
layer "batch" counts batch × output pixels, "inputs" the window, "units" the filters); on an
int8 chip the forward GEMMs quantise as dense layers do. Pooling runs on the vector unit:
max pooling costs p² − 1 comparisons per output, average pooling p² operations; their
backward passes one operation per input value. Images are channels last (batch, H, W, C).

The network description is a list of layer tokens (`parse_layer`):

    conv3x3x8        3×3 kernel, 8 filters, stride 1, padding "same"
    conv5x5x16s2     ... stride 2;  conv3x3x8valid / conv3x3x8s2same: the padding
    conv3x3x1x8      ... with the input channels stated (checked against the layer below)
    pool2 / maxpool2 2×2 max pooling, stride 2;  avgpool2: average pooling
    flatten          image to vector (added before the first dense layer if left out)
    32               a dense layer of 32 units

Hidden layers use the network's activation; the last layer is dense and linear (the loss
adds softmax), as in the MLP.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..chip.conv import PADDINGS, ConvGeometry, Im2colOperand
from . import activations as act
from .on_chip import ChipRunner
from .phases import BACKWARD_DATA, BACKWARD_WEIGHTS, FORWARD

__all__ = ["AvgPool", "Conv2D", "ConvNet", "Dense", "Flatten", "LayerError", "MaxPool", "is_conv_description",
           "parse_layer", "square_image"]

MAX_LAYERS = 8  # hidden layers of a ConvNet
MAX_FILTERS = 256
MAX_KERNEL = 16
MAX_WIDTH = 512
COL2IM = "col2im (dA → dX)"

_CONV = re.compile(r"conv(\d+)x(\d+)(?:x(\d+))?x(\d+)(?:s(\d+))?(same|valid)?")
_POOL = re.compile(r"(max|avg)?pool(\d+)")
_SHAPE = re.compile(r"(\d+)x(\d+)x(\d+)")


class LayerError(ValueError):
    """A layer that cannot be built; the message names the layer (number and token) and the value."""


@dataclass(frozen=True)
class ConvSpec:
    kernel_h: int
    kernel_w: int
    filters: int
    stride: int = 1
    padding: str = "same"
    in_channels: int | None = None


@dataclass(frozen=True)
class PoolSpec:
    kind: str  # "max" or "avg"
    size: int


@dataclass(frozen=True)
class FlattenSpec:
    pass


def _limit(token: str, what: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise LayerError(f"{what} must be a whole number from {low} to {high}, got {value}")
    return value


def parse_layer(token) -> ConvSpec | PoolSpec | FlattenSpec | int:
    """One layer of a description: a dense width (int), or a conv, pool or flatten token."""
    if isinstance(token, (int, np.integer)) and not isinstance(token, bool):
        return _limit(str(token), "a dense layer's width", int(token), 1, MAX_WIDTH)
    if not isinstance(token, str):
        raise LayerError(f"a layer must be a width or a token such as conv3x3x8, pool2, flatten; got {token!r}")
    text = token.strip().lower()
    if text.isdigit():
        return _limit(token, "a dense layer's width", int(text), 1, MAX_WIDTH)
    if text == "flatten":
        return FlattenSpec()
    if m := _CONV.fullmatch(text):
        kh, kw, cin, filters, stride, padding = m.groups()
        return ConvSpec(_limit(token, "the kernel height", int(kh), 1, MAX_KERNEL),
                        _limit(token, "the kernel width", int(kw), 1, MAX_KERNEL),
                        _limit(token, "the number of filters", int(filters), 1, MAX_FILTERS),
                        _limit(token, "the stride", int(stride or 1), 1, MAX_KERNEL), padding or "same",
                        None if cin is None else _limit(token, "the input channels", int(cin), 1, MAX_FILTERS))
    if m := _POOL.fullmatch(text):
        return PoolSpec(m.group(1) or "max", _limit(token, "the pool size", int(m.group(2)), 1, MAX_KERNEL))
    raise LayerError(f"{token!r} is not a layer: use a width (32), conv<h>x<w>x<filters>[s<stride>][same|valid] "
                     f"(conv3x3x8), pool<p>, maxpool<p>, avgpool<p> or flatten")


def is_conv_description(hidden) -> bool:
    """Does a list of hidden layers need a ConvNet (any token other than a dense width)?"""
    return any(not isinstance(parse_layer(t), int) for t in hidden)


def square_image(features: int) -> tuple[int, int, int]:
    """The image shape of flat inputs: side × side × 1 (8×8 digits, 28×28 MNIST)."""
    side = int(round(features ** 0.5))
    if side * side != features:
        raise LayerError(f"convolution needs image inputs, but the data's {features} features are not a square "
                         f"image (side × side)")
    return side, side, 1


# ------------------------------------------------------------------------------------ layers


class Layer:
    """A layer of a ConvNet. `weight`/`bias` are None for layers without parameters."""

    activation = "linear"
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    token = ""

    def __init__(self, in_shape: tuple[int, ...]):
        self.in_shape = tuple(in_shape)
        self.out_shape = self.in_shape

    @property
    def has_params(self) -> bool:
        return self.weight is not None

    def forward(self, x, chip: ChipRunner, number: int, phase: str):
        """(output, what backward needs)."""
        raise NotImplementedError

    def backward(self, cache, dz, chip: ChipRunner, number: int, need_dx: bool):
        """(dW, db, dX) from dL/dZ (the gradient at this layer's pre-activation output)."""
        raise NotImplementedError


def _init(rng, fan_in: int, fan_out: int, shape, init: str) -> np.ndarray:
    # He: Var = 2/fan_in keeps ReLU activations' scale; Xavier (Glorot): Var = 2/(fan_in + fan_out)
    std = np.sqrt(2 / fan_in) if init == "he" else np.sqrt(2 / (fan_in + fan_out))
    return (rng.standard_normal(shape) * std).astype(np.float32)


class Dense(Layer):
    """Z = X·W + b, Y = f(Z), on a (batch, inputs) matrix."""

    def __init__(self, in_shape, units: int, activation: str, rng, init: str):
        super().__init__(in_shape)
        if len(self.in_shape) != 1:
            raise LayerError(f"a dense layer needs a vector input, got {_shape(self.in_shape)}")
        self.units, self.activation, self.token = units, activation, str(units)
        self.weight = _init(rng, self.in_shape[0], units, (self.in_shape[0], units), init)
        self.bias = np.zeros(units, np.float32)
        self.out_shape = (units,)

    def forward(self, x, chip, number, phase):
        z = chip.matmul(x, self.weight, number, phase)
        z += self.bias
        y = act.forward(self.activation, z)
        chip.vector(z.size, 1 + act.VECTOR_OPS[self.activation][0], number, phase,
                    FORWARD.vector_op.format(f=self.activation))
        return y, (x, z, y)

    def backward(self, cache, dz, chip, number, need_dx):
        x = cache[0]
        dw = chip.matmul(x.T, dz, number, BACKWARD_WEIGHTS.id)
        db = dz.sum(axis=0)
        chip.vector(dz.size, 1, number, BACKWARD_WEIGHTS.id, BACKWARD_WEIGHTS.vector_op)
        dx = chip.matmul(dz, self.weight.T, number, BACKWARD_DATA.id) if need_dx else None
        return dw, db, dx


class Conv2D(Layer):
    """Z = im2col(X)·W + b, Y = f(Z); W is (kh·kw·C) × filters, stored as a matrix."""

    def __init__(self, in_shape, spec: ConvSpec, activation: str, rng, init: str, token: str = ""):
        super().__init__(in_shape)
        if len(self.in_shape) != 3:
            raise LayerError(f"a convolution needs an image input (height × width × channels), got "
                             f"{_shape(self.in_shape)}")
        h, w, c = self.in_shape
        if spec.in_channels is not None and spec.in_channels != c:
            raise LayerError(f"input channels {spec.in_channels} do not match the {c} channels of its "
                             f"{_shape(self.in_shape)} input")
        if spec.padding not in PADDINGS:
            raise LayerError(f"padding must be one of {', '.join(PADDINGS)}, got {spec.padding!r}")
        for side, size, kernel in (("height", h, spec.kernel_h), ("width", w, spec.kernel_w)):
            if spec.padding == "valid" and kernel > size:
                raise LayerError(f"kernel {side} {kernel} is larger than the input {side} {size} "
                                 f"({_shape(self.in_shape)} input, padding valid)")
        self.geometry = ConvGeometry(h, w, c, spec.kernel_h, spec.kernel_w, spec.filters, spec.stride, spec.stride,
                                     spec.padding)
        self.activation, self.token = activation, token or f"conv{spec.kernel_h}x{spec.kernel_w}x{spec.filters}"
        g = self.geometry
        self.weight = _init(rng, g.window, g.filters, (g.window, g.filters), init)
        self.bias = np.zeros(g.filters, np.float32)
        self.out_shape = g.out_shape

    def forward(self, x, chip, number, phase):
        cols = self.geometry.im2col(x)
        z = chip.matmul(cols, self.weight, number, phase, a_layout=Im2colOperand(self.geometry, x.shape[0]))
        z += self.bias
        y = act.forward(self.activation, z)
        chip.vector(z.size, 1 + act.VECTOR_OPS[self.activation][0], number, phase,
                    FORWARD.vector_op.format(f=self.activation))
        shape = (len(x), *self.out_shape)
        return y.reshape(shape), (cols, z.reshape(shape), y.reshape(shape))

    def backward(self, cache, dz, chip, number, need_dx):
        cols = cache[0]
        dz = dz.reshape(-1, self.geometry.filters)
        batch = cols.shape[0] // self.geometry.out_pixels
        dw = chip.matmul(cols.T, dz, number, BACKWARD_WEIGHTS.id,
                         a_layout=Im2colOperand(self.geometry, batch, transposed=True))
        db = dz.sum(axis=0)
        chip.vector(dz.size, 1, number, BACKWARD_WEIGHTS.id, BACKWARD_WEIGHTS.vector_op)
        if not need_dx:
            return dw, db, None
        dcols = chip.matmul(dz, self.weight.T, number, BACKWARD_DATA.id)
        chip.vector(dcols.size, 1, number, BACKWARD_DATA.id, COL2IM)  # one add per unrolled value
        return dw, db, self.geometry.col2im(dcols)


class _Pool(Layer):
    kind = ""

    def __init__(self, in_shape, size: int, token: str = ""):
        super().__init__(in_shape)
        if len(self.in_shape) != 3:
            raise LayerError(f"pooling needs an image input (height × width × channels), got "
                             f"{_shape(self.in_shape)}")
        h, w, c = self.in_shape
        if size > h or size > w:
            raise LayerError(f"pool size {size} is larger than its {_shape(self.in_shape)} input (the output "
                             f"would have no pixels)")
        self.size, self.token = size, token or f"{self.kind}pool{size}"
        self.out_shape = (h // size, w // size, c)

    def _windows(self, x):
        """(batch, OH, OW, C, p²): each output's window (rows and columns past the last whole window dropped)."""
        p = self.size
        oh, ow, c = self.out_shape
        x = x[:, :oh * p, :ow * p]
        return x.reshape(len(x), oh, p, ow, p, c).transpose(0, 1, 3, 5, 2, 4).reshape(len(x), oh, ow, c, p * p)

    def _unwindow(self, windows, batch):
        p = self.size
        oh, ow, c = self.out_shape
        out = np.zeros((batch, *self.in_shape), windows.dtype)
        out[:, :oh * p, :ow * p] = windows.reshape(batch, oh, ow, c, p, p).transpose(0, 1, 4, 2, 5, 3).reshape(
            batch, oh * p, ow * p, c)
        return out


class MaxPool(_Pool):
    """The largest value of each p × p window (stride p), on the vector unit."""

    kind = "max"

    def forward(self, x, chip, number, phase):
        windows = self._windows(x)
        pick = windows.argmax(axis=-1)
        y = np.take_along_axis(windows, pick[..., None], axis=-1)[..., 0]
        chip.vector(y.size, self.size * self.size - 1, number, phase, f"max pool {self.size}×{self.size}")
        return y, (pick, len(x), y)

    def backward(self, cache, dz, chip, number, need_dx):
        if not need_dx:
            return None, None, None
        pick, batch, _ = cache
        windows = np.zeros((*pick.shape, self.size * self.size), dz.dtype)
        np.put_along_axis(windows, pick[..., None], dz[..., None], axis=-1)
        dx = self._unwindow(windows, batch)
        chip.vector(dx.size, 1, number, BACKWARD_DATA.id, "max pool′ (route to the max)")
        return None, None, dx


class AvgPool(_Pool):
    """The mean of each p × p window (stride p), on the vector unit."""

    kind = "avg"

    def forward(self, x, chip, number, phase):
        y = self._windows(x).mean(axis=-1, dtype=x.dtype)
        chip.vector(y.size, self.size * self.size, number, phase, f"avg pool {self.size}×{self.size}")
        return y, (None, len(x), y)

    def backward(self, cache, dz, chip, number, need_dx):
        if not need_dx:
            return None, None, None
        batch = cache[1]
        share = (dz / np.float32(self.size * self.size)).astype(dz.dtype)
        dx = self._unwindow(np.repeat(share[..., None], self.size * self.size, axis=-1), batch)
        chip.vector(dx.size, 1, number, BACKWARD_DATA.id, "avg pool′ (share the gradient)")
        return None, None, dx


class Flatten(Layer):
    """An image as one vector per sample (a reshape: no work on the chip)."""

    token = "flatten"

    def __init__(self, in_shape):
        super().__init__(in_shape)
        self.out_shape = (int(np.prod(self.in_shape)),)

    def forward(self, x, chip, number, phase):
        return x.reshape(len(x), -1), (None, len(x), None)

    def backward(self, cache, dz, chip, number, need_dx):
        return None, None, dz.reshape(cache[1], *self.in_shape) if need_dx else None


def _shape(shape) -> str:
    return "×".join(map(str, shape))


# ------------------------------------------------------------------------------------ the network


@dataclass
class ForwardCache:
    caches: list  # per layer, what its backward needs (inputs, pre-activations, outputs)


class ConvNet:
    """A stack of conv, pool, flatten and dense layers on flat inputs of `features` values
    (reshaped to `input_shape`, by default a square one-channel image), ending in a linear
    dense layer of `outputs` units. Same interface as MLP: weights, biases, params, forward,
    backward (gradients per layer with parameters, in order)."""

    def __init__(self, input_shape, hidden, outputs: int, activation: str = "relu", seed: int = 0,
                 init: str | None = None):
        if activation not in act.ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(act.ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        init = init or ("he" if activation == "relu" else "xavier")
        if init not in ("he", "xavier"):
            raise ValueError(f"init must be 'he' or 'xavier', got {init!r}")
        self.input_shape = tuple(int(s) for s in input_shape)
        hidden = tuple(hidden)
        if len(hidden) > MAX_LAYERS:
            raise LayerError(f"at most {MAX_LAYERS} layers between the input and the output, got {len(hidden)}")
        rng = np.random.default_rng(seed)
        self.layers: list[Layer] = []
        shape = self.input_shape
        tokens = [*hidden, outputs]
        for i, token in enumerate(tokens):
            number = len(self.layers) + 1
            try:
                spec = parse_layer(token)
                last = i == len(tokens) - 1
                if last and not isinstance(spec, int):
                    raise LayerError("the output layer must be a dense width (the number of classes)")
                if isinstance(spec, int) and len(shape) != 1:
                    self.layers.append(Flatten(shape))  # implicit, before the first dense layer
                    shape = self.layers[-1].out_shape
                    number += 1
                f = "linear" if last else activation
                if isinstance(spec, int):
                    layer = Dense(shape, spec, f, rng, init)
                elif isinstance(spec, ConvSpec):
                    layer = Conv2D(shape, spec, f, rng, init, token=str(token))
                elif isinstance(spec, PoolSpec):
                    layer = (MaxPool if spec.kind == "max" else AvgPool)(shape, spec.size, token=str(token))
                else:
                    layer = Flatten(shape)
            except (LayerError, ValueError) as exc:
                raise LayerError(f"layer {number} ({token}): {exc}") from None
            self.layers.append(layer)
            shape = layer.out_shape
        self.weights = [layer.weight for layer in self.layers if layer.has_params]
        self.biases = [layer.bias for layer in self.layers if layer.has_params]

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def params(self) -> list[np.ndarray]:
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    @property
    def sizes(self) -> tuple[str, ...]:
        """The description, input first: ("8x8x1", "conv3x3x8", "pool2", "flatten", "10")."""
        return ("x".join(map(str, self.input_shape)), *(layer.token for layer in self.layers))

    def layer_activation(self, layer: int) -> str:
        return self.layers[layer].activation

    def forward(self, x: np.ndarray, chip: ChipRunner, phase: str = FORWARD.id):
        """The output and what backpropagation needs (layers numbered from 1, flatten included)."""
        x = x.reshape(len(x), *self.input_shape)
        caches = []
        for number, layer in enumerate(self.layers, 1):
            x, cache = layer.forward(x, chip, number, phase)
            caches.append(cache)
        return x, ForwardCache(caches)

    def backward(self, cache: ForwardCache, d_out: np.ndarray, chip: ChipRunner):
        """Gradients (dW, db per layer with parameters) from dL/dZ of the output layer. A layer's
        dX is computed only when a layer with parameters lies below it."""
        grads_w, grads_b = [], []
        dz = d_out
        below = [any(layer.has_params for layer in self.layers[:i]) for i in range(self.n_layers)]
        for i in range(self.n_layers - 1, -1, -1):
            layer = self.layers[i]
            dw, db, dx = layer.backward(cache.caches[i], dz, chip, i + 1, below[i])
            if layer.has_params:
                grads_w.append(dw)
                grads_b.append(db)
            if not below[i]:
                break
            f = self.layers[i - 1].activation
            if f == "linear":
                dz = dx
            else:
                _, pre, post = cache.caches[i - 1]
                dz = act.backward(f, pre, post, dx)
                chip.vector(dx.size, act.VECTOR_OPS[f][1], i, BACKWARD_DATA.id,
                            BACKWARD_DATA.vector_op.format(f=f))
        return grads_w[::-1], grads_b[::-1]


def describe_shapes(net: ConvNet) -> list[str]:
    """Each layer and its output shape, for reports: "conv3x3x8 → 8×8×8"."""
    return [f"{layer.token} → {_shape(layer.out_shape)}" for layer in net.layers]
