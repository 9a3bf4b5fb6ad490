"""Seeded 2-D two-class toy sets in the spirit of TensorFlow Playground.

Each shape is drawn noise-free in roughly [-1, 1]^2, then Gaussian noise with
standard deviation `noise` (in those same units) is added. Only
`np.random.default_rng(seed)` is used, so a seed reproduces a set bit for bit.
"""

from __future__ import annotations

import numpy as np

from . import Dataset


def _circle(rng, y):
    """Class 1 fills the inner disk (r < 0.5), class 0 the ring 0.7 < r < 1."""
    r = np.where(y == 1, rng.uniform(0.0, 0.5, y.size), rng.uniform(0.7, 1.0, y.size))
    angle = rng.uniform(0.0, 2 * np.pi, y.size)
    return np.column_stack([r * np.cos(angle), r * np.sin(angle)])


def _xor(rng, y):
    """Class 1 where both coordinates share a sign; kept 0.05 off the axes so the clean set is separable."""
    magnitude = rng.uniform(0.05, 1.0, (y.size, 2))
    sign_x = rng.choice([-1.0, 1.0], y.size)
    sign_y = np.where(y == 1, sign_x, -sign_x)
    return magnitude * np.column_stack([sign_x, sign_y])


def _gauss(rng, y):
    """Two round blobs (sd 0.2) centred at (0.5, 0.5) for class 1 and (-0.5, -0.5) for class 0."""
    centre = np.where(y == 1, 0.5, -0.5)[:, None]
    return centre + rng.normal(0.0, 0.2, (y.size, 2))


def _spiral(rng, y):
    """Two arms winding 1.75 turns out to radius 1, the class-0 arm rotated by half a turn."""
    t = rng.uniform(0.0, 1.0, y.size)
    angle = 1.75 * 2 * np.pi * t + np.pi * (y == 0)
    return np.column_stack([t * np.sin(angle), t * np.cos(angle)])


def _moons(rng, y):
    """Two interleaved half circles, shifted and scaled from x in [-1, 2] to [-1, 1]."""
    angle = rng.uniform(0.0, np.pi, y.size)
    upper = np.column_stack([np.cos(angle), np.sin(angle)])
    lower = np.column_stack([1 - np.cos(angle), 0.5 - np.sin(angle)])
    points = np.where((y == 0)[:, None], upper, lower)
    return (points - [0.5, 0.25]) / 1.5


SHAPES = {"circle": _circle, "xor": _xor, "gauss": _gauss, "spiral": _spiral, "moons": _moons}


def make_toy(name: str, *, seed: int, noise: float, n_samples: int, test_fraction: float) -> Dataset:
    """Draw `n_samples` points; classes alternate before the split so both sides stay balanced."""
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples, dtype=np.int64) % 2
    x = SHAPES[name](rng, y) + rng.normal(0.0, noise, (n_samples, 2))
    x = x.astype(np.float32)
    n_test = max(1, round(n_samples * test_fraction))
    test = rng.permutation(n_test)
    train = n_test + rng.permutation(n_samples - n_test)
    return Dataset(
        name=name,
        x_train=x[train],
        y_train=y[train],
        x_test=x[test],
        y_test=y[test],
        n_classes=2,
        feature_names=("x1", "x2"),
        description=f"2-D toy '{name}': {n_samples} points, 2 balanced classes, noise sd {noise:g}.",
    )
