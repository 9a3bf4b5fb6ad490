"""MNIST from IDX files the user already has on disk; never downloads.

IDX layout: a big-endian uint32 magic (2051 images, 2049 labels), one big-endian
uint32 size per dimension, then raw uint8 data. Every check below names the file,
because a half-downloaded MNIST is the usual way this goes wrong.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from . import Dataset

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
SIDE = 28
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read(directory: Path, stem: str) -> tuple[Path, bytes]:
    """Read `stem`, or `stem.gz` decompressed when only that exists."""
    path = directory / stem
    if path.is_file():
        return path, path.read_bytes()
    path = directory / f"{stem}.gz"
    if not path.is_file():
        raise FileNotFoundError(f"MNIST file {stem} (or {stem}.gz) not found in {directory}")
    try:
        return path, gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable gzip file ({exc})") from exc


def _parse(path: Path, data: bytes, magic: int, ndim: int) -> np.ndarray:
    """Check the IDX header and length, return the uint8 payload shaped by the header."""
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated, {len(data)} bytes is shorter than the {header}-byte IDX header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: IDX magic number is {found}, expected {magic}")
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(f"{path}: {len(data)} bytes, expected {expected} for IDX shape {shape}")
    if shape[0] == 0:
        raise ValueError(f"{path}: holds no items")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _load_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_path, images_data = _read(directory, SPLITS[split][0])
    labels_path, labels_data = _read(directory, SPLITS[split][1])
    images = _parse(images_path, images_data, IMAGES_MAGIC, 3)
    labels = _parse(labels_path, labels_data, LABELS_MAGIC, 1)
    if images.shape[1:] != (SIDE, SIDE):
        rows, cols = images.shape[1:]
        raise ValueError(f"{images_path}: images are {rows}x{cols}, expected {SIDE}x{SIDE}")
    if labels.max() > 9:
        raise ValueError(f"{labels_path}: label {labels.max()} outside 0..9")
    if len(images) != len(labels):
        raise ValueError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    x = images.reshape(len(images), SIDE * SIDE).astype(np.float32) / np.float32(255)
    return x, labels.astype(np.int64)


def load_mnist(mnist_dir: str | Path) -> Dataset:
    """Load the train and t10k IDX splits (normally 60,000 / 10,000 images) from `mnist_dir`."""
    directory = Path(mnist_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory {directory} does not exist")
    x_train, y_train = _load_split(directory, "train")
    x_test, y_test = _load_split(directory, "test")
    return Dataset(
        name="mnist",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        n_classes=10,
        feature_names=None,
        description="MNIST handwritten digits: 28x28 pixels scaled to [0, 1] and flattened to 784.",
    )
