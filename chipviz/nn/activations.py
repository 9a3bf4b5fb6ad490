"""Activation functions f in y = f(xW + b), run on the chip's vector unit.

Each has a forward and the derivative needed by backpropagation, written in terms of
the pre-activation z and the output y (whichever is cheaper).
"""
from __future__ import annotations

import numpy as np

ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")


def forward(name: str, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0, dtype=z.dtype)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        # split by sign so exp never overflows
        out = np.empty_like(z)
        pos = z >= 0
        out[pos] = 1 / (1 + np.exp(-z[pos]))
        ez = np.exp(z[~pos])
        out[~pos] = ez / (1 + ez)
        return out
    if name == "linear":
        return z
    raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")


def backward(name: str, z: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dL/dz from dL/dy."""
    if name == "relu":
        return dy * (z > 0)
    if name == "tanh":
        return dy * (1 - y * y)
    if name == "sigmoid":
        return dy * y * (1 - y)
    if name == "linear":
        return dy
    raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")


# Elementwise operations each costs on the vector unit (forward, backward), for its cycle count.
VECTOR_OPS = {"relu": (1, 1), "tanh": (4, 2), "sigmoid": (4, 2), "linear": (0, 0)}
