"""Datasets the MLP can train on: shipped digits, seeded 2-D toys and local MNIST.

Pure numpy. `load_dataset` is the single entry point and the only place that
validates user-facing arguments, so the loaders below it can trust their inputs.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

DATASETS = ("digits", "circle", "xor", "gauss", "spiral", "moons", "mnist")
TOYS = ("circle", "xor", "gauss", "spiral", "moons")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A fixed train/test split; arrays are made read-only so a dataset can be shared safely."""

    name: str
    x_train: np.ndarray  # float32 (n_train, d)
    y_train: np.ndarray  # int64 class ids (float32 targets for regression)
    x_test: np.ndarray  # float32 (n_test, d)
    y_test: np.ndarray
    n_classes: int  # 0 for regression
    feature_names: tuple[str, ...] | None
    description: str

    def __post_init__(self):
        d = self.x_train.shape[1]
        for x, y in ((self.x_train, self.y_train), (self.x_test, self.y_test)):
            if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != d or y.shape != (len(x),):
                raise ValueError(f"inconsistent arrays in dataset {self.name!r}")
            x.setflags(write=False)
            y.setflags(write=False)
        if self.feature_names is not None and len(self.feature_names) != d:
            raise ValueError(f"dataset {self.name!r}: {d} features but {len(self.feature_names)} names")

    @cached_property  # the arrays are read-only, so the digest stays true
    def fingerprint(self) -> str:
        """SHA-256 of the four arrays (dtype, shape and bytes of each) and the number of classes:
        equal fingerprints mean the same data, whatever the dataset's name or description."""
        digest = hashlib.sha256()
        for field in ARRAY_FIELDS:
            array = np.ascontiguousarray(getattr(self, field))
            digest.update(f"{field} {array.dtype.str} {array.shape};".encode())
            digest.update(array.tobytes())
        digest.update(f"n_classes {self.n_classes}".encode())
        return digest.hexdigest()

    @property
    def shapes(self) -> dict[str, list[int]]:
        """{"x_train": [n, d], "y_train": [n], ...}: the arrays' shapes."""
        return {field: list(getattr(self, field).shape) for field in ARRAY_FIELDS}

    def summary(self) -> str:
        """In words, e.g. "'my data': 120 training and 40 test samples of 3 features, 2 classes"."""
        classes = f"{self.n_classes} classes" if self.n_classes else "regression targets"
        return (f"{self.name!r}: {len(self.x_train):,} training and {len(self.x_test):,} test samples of "
                f"{self.x_train.shape[1]} features, {classes}")


ARRAY_FIELDS = ("x_train", "y_train", "x_test", "y_test")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return _is_int(value) or (isinstance(value, (float, np.floating)) and math.isfinite(value))


def load_dataset(
    name: str,
    *,
    seed: int = 0,
    noise: float = 0.1,
    n_samples: int = 400,
    test_fraction: float = 0.3,
    mnist_dir: str | None = None,
) -> Dataset:
    """Load dataset `name`.

    seed, noise, n_samples and test_fraction only shape the toy sets; digits and
    MNIST have fixed splits so results stay comparable between runs.
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {', '.join(DATASETS)}; got {name!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0; got {seed!r}")
    if not _is_real(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0; got {noise!r}")
    if not _is_int(n_samples) or not 10 <= n_samples <= 100_000:
        raise ValueError(f"n_samples must be an integer in 10..100000; got {n_samples!r}")
    if not _is_real(test_fraction) or not 0 < test_fraction <= 0.9:
        raise ValueError(f"test_fraction must be a number in (0, 0.9]; got {test_fraction!r}")

    # Imported here: the submodules import Dataset from this package.
    if name == "digits":
        from .digits import load_digits

        return load_digits()
    if name == "mnist":
        if mnist_dir is None:
            raise ValueError("mnist_dir must name a directory holding the MNIST IDX files; got None")
        from .mnist import load_mnist

        return load_mnist(mnist_dir)
    from .toys import make_toy

    return make_toy(
        name, seed=int(seed), noise=float(noise), n_samples=int(n_samples), test_fraction=float(test_fraction)
    )
