"""Metric histories of bounded size for runs of any length.

Points are appended every `stride` steps; when `capacity` is reached, every other point is
dropped and the stride doubles, so a long run keeps an evenly spaced summary.
"""
from __future__ import annotations

import numpy as np


class History:
    def __init__(self, columns: tuple[str, ...], capacity: int = 2048):
        if capacity < 4 or capacity % 2:
            raise ValueError(f"capacity must be an even number >= 4, got {capacity}")
        self.columns = ("step",) + tuple(columns)
        self.capacity = capacity
        self.stride = 1
        self._data = {c: [] for c in self.columns}

    def __len__(self) -> int:
        return len(self._data["step"])

    def append(self, step: int, **values: float) -> bool:
        """Record `values` at `step` if it falls on the stride; returns whether it was kept."""
        if step % self.stride:
            return False
        data, get = self._data, values.get
        data["step"].append(step)
        for c in self.columns[1:]:
            data[c].append(float(get(c, np.nan)))
        if len(self) >= self.capacity:
            self.stride *= 2
            keep = [s % self.stride == 0 for s in self._data["step"]]
            for c in self.columns:
                self._data[c] = [v for k, v in zip(keep, self._data[c]) if k]
        return True

    def __getitem__(self, column: str) -> np.ndarray:
        return np.asarray(self._data[column], dtype=np.int64 if column == "step" else np.float64)

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {c: self[c] for c in self.columns}

    def load(self, arrays: dict[str, np.ndarray], stride: int) -> None:
        self.stride = int(stride)
        self._data = {c: list(np.asarray(arrays[c]).tolist()) for c in self.columns}
