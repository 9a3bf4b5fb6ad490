"""The UCI 8x8 handwritten digits shipped in assets/ (see assets/PROVENANCE.md).

Small enough to train on the simulated chip in seconds, real enough to be
interesting. The split is fixed (not seeded) so accuracies are comparable.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import io
import sys
from pathlib import Path, PurePosixPath

import numpy as np

from . import Dataset

# Files shipped beside the package (the top-level lessons/ and assets/ folders): a source checkout reads them
# where they are; a wheel installs them into <prefix>/share/chipviz/ ([tool.setuptools.data-files] in
# pyproject.toml lists them).
CHECKOUT = Path(__file__).resolve().parents[2]
SHARE = ("share", "chipviz")


def shipped_path(relative: str) -> Path:
    """The file or folder ChipViz ships as `relative` (e.g. "lessons", "assets/digits.csv.gz"), wherever it is.

    In order: the source checkout (run in place, or installed editable); <sys.prefix>/share/chipviz/ (a wheel
    installed into a venv or the system); the copy the installer recorded in the distribution's file list (any
    other scheme: --user, --prefix). Found nowhere: the checkout's path, so an error can name it.
    """
    parts = PurePosixPath(relative).parts
    in_checkout = CHECKOUT.joinpath(*parts)
    if (CHECKOUT / "pyproject.toml").is_file() and in_checkout.exists():  # a checkout, not site-packages' parent
        return in_checkout
    in_prefix = Path(sys.prefix, *SHARE, *parts)
    if in_prefix.exists():
        return in_prefix
    return _recorded(parts) or in_checkout


def _recorded(parts: tuple[str, ...]) -> Path | None:
    """The installed copy of a shipped path, from the files the installer recorded for chipviz (its RECORD)."""
    try:
        files = importlib.metadata.files("chipviz") or ()
    except importlib.metadata.PackageNotFoundError:
        return None
    wanted = (*SHARE, *parts)
    for file in files:  # e.g. ../../../share/chipviz/lessons/en/01-processing-element.md, relative to site-packages
        rest = file.parts
        while rest and rest[0] == "..":
            rest = rest[1:]
        if rest[:len(wanted)] == wanted:
            found = Path(file.locate()).resolve()
            found = found.parents[len(rest) - len(wanted) - 1] if len(rest) > len(wanted) else found
            return found if found.exists() else None
    return None


DIGITS_PATH = shipped_path("assets/digits.csv.gz")
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
TEST_PER_CLASS = 36  # 10 x 36 = 360 test samples, 1,437 train
SPLIT_SEED = 0


def load_digits(path: Path = DIGITS_PATH) -> Dataset:
    """Load, checksum-verify and split the digits CSV (64 pixel counts 0..16, then the label)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"digits data not found at {path}; it ships in the repository's assets/ folder, which a "
            "wheel installs into share/chipviz/assets/ (reinstall chipviz, or run it from a source checkout)"
        )
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != DIGITS_SHA256:
        raise ValueError(
            f"{path} is corrupt or modified: SHA-256 is {digest}, expected {DIGITS_SHA256}"
        )
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.int64)
    x = (table[:, :64] / 16).astype(np.float32)
    y = table[:, 64]

    # Stratified split: a seed-0 draw of 36 test samples per digit; both sides keep file order.
    rng = np.random.default_rng(SPLIT_SEED)
    is_test = np.zeros(len(y), dtype=bool)
    for digit in range(10):
        is_test[rng.permutation(np.flatnonzero(y == digit))[:TEST_PER_CLASS]] = True

    return Dataset(
        name="digits",
        x_train=x[~is_test],
        y_train=y[~is_test],
        x_test=x[is_test],
        y_test=y[is_test],
        n_classes=10,
        feature_names=tuple(f"pixel_{r}_{c}" for r in range(8) for c in range(8)),
        description="UCI optical handwritten digits: 8x8 ink counts scaled to [0, 1], 10 classes.",
    )
