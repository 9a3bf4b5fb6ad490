"""A multilayer perceptron whose every matrix multiply runs on the chip.

Forward, layer by layer: Z = X·W + b, Y = f(Z). Backward, from the loss's dL/dZ of the last
layer: dW = Xᵀ·dZ, db = Σ_batch dZ, dX = dZ·Wᵀ, then dZ of the layer below = f'(Z)·dX. The
first layer's dX is not computed: nothing upstream needs it. The GEMMs' names, shapes and
phases are the phase table's (phases.py); the chip's precision decides whether the forward
GEMMs run in int8 (on_chip.ChipRunner).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import activations as act
from .on_chip import ChipRunner
from .phases import BACKWARD_DATA, BACKWARD_WEIGHTS, FORWARD

MAX_HIDDEN_LAYERS = 4
MAX_WIDTH = 512


def check_sizes(sizes) -> tuple[int, ...]:
    """Layer widths input, hidden..., output: 0 to 4 hidden layers of 1 to 512 units."""
    sizes = tuple(sizes)
    if not 2 <= len(sizes) <= MAX_HIDDEN_LAYERS + 2:
        raise ValueError(f"layers must list the input width, 0 to {MAX_HIDDEN_LAYERS} hidden widths and the output "
                         f"width (2 to {MAX_HIDDEN_LAYERS + 2} numbers), got {len(sizes)}: {sizes}")
    for i, width in enumerate(sizes):
        ok = isinstance(width, (int, np.integer)) and not isinstance(width, bool)
        limit = 1_000_000 if i in (0, len(sizes) - 1) else MAX_WIDTH
        if not ok or not 1 <= width <= limit:
            raise ValueError(f"layer {i} width must be a whole number from 1 to {limit}, got {width!r}")
    return tuple(int(w) for w in sizes)


@dataclass
class ForwardCache:
    """What backpropagation needs from the forward pass."""

    inputs: list[np.ndarray]  # X of each layer
    pre: list[np.ndarray]  # Z of each layer
    post: list[np.ndarray]  # Y of each layer


class MLP:
    def __init__(self, sizes, activation: str = "relu", seed: int = 0, init: str | None = None):
        self.sizes = check_sizes(sizes)
        if activation not in act.ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(act.ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        init = init or ("he" if activation == "relu" else "xavier")
        if init not in ("he", "xavier"):
            raise ValueError(f"init must be 'he' or 'xavier', got {init!r}")
        rng = np.random.default_rng(seed)
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            # He: Var = 2/fan_in keeps ReLU activations' scale; Xavier (Glorot): Var = 2/(fan_in + fan_out)
            std = np.sqrt(2 / fan_in) if init == "he" else np.sqrt(2 / (fan_in + fan_out))
            self.weights.append((rng.standard_normal((fan_in, fan_out)) * std).astype(np.float32))
            self.biases.append(np.zeros(fan_out, np.float32))

    @property
    def n_layers(self) -> int:
        return len(self.weights)

    @property
    def params(self) -> list[np.ndarray]:
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    def layer_activation(self, layer: int) -> str:
        """Hidden layers use the chosen activation; the output layer is linear (the loss adds softmax)."""
        return "linear" if layer == self.n_layers - 1 else self.activation

    def forward(self, x: np.ndarray, chip: ChipRunner, phase: str = FORWARD.id):
        """The output and what backpropagation needs. On an int8 chip the GEMMs quantise X and W
        (the chip runner does it); the bias, the activation and everything kept are fp32."""
        cache = ForwardCache([], [], [])
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = chip.matmul(x, w, i + 1, phase)
            z += b
            f = "linear" if i == last else self.activation  # layer_activation(i)
            y = act.forward(f, z)
            chip.vector(z.size, 1 + act.VECTOR_OPS[f][0], i + 1, phase, _forward_op(f))
            cache.inputs.append(x)
            cache.pre.append(z)
            cache.post.append(y)
            x = y
        return x, cache

    def backward(self, cache: ForwardCache, d_out: np.ndarray, chip: ChipRunner):
        """Gradients (dW, db per layer) from dL/dZ of the output layer."""
        n = len(self.weights)
        grads_w = [None] * n
        grads_b = [None] * n
        dz = d_out
        for i in range(n - 1, -1, -1):
            grads_w[i] = chip.matmul(cache.inputs[i].T, dz, i + 1, BACKWARD_WEIGHTS.id)
            grads_b[i] = _add(dz, 0)  # dz.sum(axis=0)
            chip.vector(dz.size, 1, i + 1, BACKWARD_WEIGHTS.id, BACKWARD_WEIGHTS.vector_op)
            if i == 0:  # layer 1's dX: nothing upstream needs it (BACKWARD_DATA.first_layer is False)
                break
            dx = chip.matmul(dz, self.weights[i].T, i + 1, BACKWARD_DATA.id)
            f = "linear" if i - 1 == n - 1 else self.activation  # layer_activation(i - 1)
            dz = act.backward(f, cache.pre[i - 1], cache.post[i - 1], dx)
            chip.vector(dx.size, act.VECTOR_OPS[f][1], i, BACKWARD_DATA.id, _backward_data_op(f))
        return grads_w, grads_b


_add = np.add.reduce  # what ndarray.sum calls, without its Python wrapper


@lru_cache(maxsize=None)
def _forward_op(f: str) -> str:
    return FORWARD.vector_op.format(f=f)


@lru_cache(maxsize=None)
def _backward_data_op(f: str) -> str:
    return BACKWARD_DATA.vector_op.format(f=f)
