"""The loss over a 2-D plane through weight space, to draw gradient descent's path.

The plane passes through the latest weights and is spanned by the two main directions
(principal components) of the recent weight trajectory, so the steps just taken lie close
to it. Every loss on the grid is a forward pass on the runner's chip, in its precision (an
int8 chip quantises the forward GEMMs, as in training).
"""
from __future__ import annotations

import copy

from dataclasses import dataclass

import numpy as np

from . import losses
from .network import MLP
from .on_chip import ChipRunner


@dataclass(frozen=True)
class LossPlane:
    alpha: np.ndarray  # grid coordinates along the first direction
    beta: np.ndarray  # ... and the second
    loss: np.ndarray  # (len(beta), len(alpha))
    path: np.ndarray  # (n, 2) the trajectory projected on the plane, oldest first
    explained: tuple[float, float]  # share of the trajectory's variance along each direction


def directions(trajectory: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Two orthonormal directions of largest movement (random ones if the weights have not moved)."""
    centered = trajectory - trajectory.mean(axis=0)
    if len(trajectory) >= 3 and np.linalg.norm(centered) > 0:
        _, s, vt = np.linalg.svd(centered, full_matrices=False)
        if len(s) >= 2 and s[1] > 0:
            var = s**2 / np.sum(s**2)
            return vt[0], vt[1], (float(var[0]), float(var[1]))
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((trajectory.shape[1], 2)))
    return q[:, 0], q[:, 1], (0.0, 0.0)


def loss_plane(net: MLP, trajectory: np.ndarray, x: np.ndarray, y: np.ndarray, runner: ChipRunner,
               loss: str = "cross_entropy", n_classes: int = 0, resolution: int = 21) -> LossPlane:
    """Loss on a resolution×resolution grid around the last point of `trajectory` (rows = flat params)."""
    trajectory = np.asarray(trajectory, np.float64)
    d1, d2, explained = directions(trajectory)
    center = trajectory[-1]
    path = np.stack([(trajectory - center) @ d1, (trajectory - center) @ d2], axis=1)
    span = max(np.abs(path).max() * 1.5, 1e-2 * max(np.linalg.norm(center), 1.0))
    alpha = np.linspace(-span, span, resolution)
    beta = np.linspace(-span, span, resolution)
    probe = copy.deepcopy(net)  # an MLP or a ConvNet: same layers, its parameters overwritten below
    grid = np.empty((resolution, resolution))
    for i, b in enumerate(beta):
        for j, a in enumerate(alpha):
            _unflatten(center + a * d1 + b * d2, probe)
            out, _ = probe.forward(x, runner)
            if loss == "cross_entropy":
                grid[i, j] = losses.cross_entropy(out, y)[0]
            else:
                target = losses.one_hot(y, out.shape[1]) if n_classes else y.reshape(len(y), -1)
                grid[i, j] = losses.mse(out, target)[0]
    return LossPlane(alpha, beta, grid, path, explained)


def _unflatten(flat: np.ndarray, net: MLP) -> None:
    offset = 0
    for p in net.params:
        p[...] = flat[offset:offset + p.size].reshape(p.shape)
        offset += p.size
