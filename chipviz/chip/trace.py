"""A record of what every PE did, cycle by cycle, for animation and teaching.

The cycle-accurate engine writes into preallocated arrays for a window of cycles, so a
trace's memory is known before the run and a too-large request is refused up front.
"""
from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

IDLE, MAC, PRELOAD, STALL = 0, 1, 2, 3
DEFAULT_BUDGET_BYTES = 256 * 2**20

FIELDS = ("state", "stationary", "from_left", "from_top", "psum", "fold", "left_in", "top_in", "bottom_out")


def bytes_per_cycle(rows: int, cols: int) -> int:
    """Memory one traced cycle takes: a state byte and four float32 values per PE, edge indices."""
    return rows * cols * (1 + 4 * 4) + 4 * (1 + rows + 2 * cols)


def allocate(rows: int, cols: int, n_cycles: int) -> tuple:
    """The trace's arrays for n_cycles. The kernels write every cycle of their window, except the
    register planes' zeros (an idle register, a stall, ws/is's empty from_top): those planes start
    as zeros, which for large traces are pages the kernel maps only when first written (calloc).
    The state plane is written whole, so it is left uninitialised."""
    return (
        np.empty((n_cycles, rows, cols), np.uint8),
        np.zeros((n_cycles, rows, cols), np.float32),
        np.zeros((n_cycles, rows, cols), np.float32),
        np.zeros((n_cycles, rows, cols), np.float32),
        np.zeros((n_cycles, rows, cols), np.float32),
        np.empty(n_cycles, np.int32),
        np.empty((n_cycles, rows), np.int32),
        np.empty((n_cycles, cols), np.int32),
        np.empty((n_cycles, cols), np.int32),
    )


@dataclass
class Trace:
    """Cycles [start, start + n) of one GEMM run, in the GEMM's own coordinates.

    state[c, i, j] is IDLE, MAC, PRELOAD or STALL; stationary/from_left/from_top/psum are the
    PE registers (float32 for display; int8 runs hold exact small integers). left_in[c, i] is
    the index along the streamed dimension of the element entering row i (-1: none), top_in
    and bottom_out likewise per column. `roles` says which matrix each register holds.
    """

    start: int
    state: np.ndarray
    stationary: np.ndarray
    from_left: np.ndarray
    from_top: np.ndarray
    psum: np.ndarray
    fold: np.ndarray
    left_in: np.ndarray
    top_in: np.ndarray
    bottom_out: np.ndarray
    dataflow: str
    tiles: np.ndarray
    roles: dict

    @property
    def n_cycles(self) -> int:
        return int(self.state.shape[0])

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in FIELDS)

    def save(self, path) -> None:
        """Write an .npz (plain arrays, no pickle) that `load` reads back."""
        meta = np.array([self.start], np.int64)
        roles = np.array([f"{k}={v}" for k, v in self.roles.items()])
        with open(path, "wb") as f:  # a file object: numpy would otherwise append ".npz" to the name
            np.savez_compressed(f, start=meta, dataflow=np.array(self.dataflow), tiles=self.tiles, roles=roles,
                                **{name: getattr(self, name) for name in FIELDS})

    @classmethod
    def load(cls, path) -> "Trace":
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in FIELDS}
                roles = dict(str(item).split("=", 1) for item in data["roles"])
                return cls(start=int(data["start"][0]), dataflow=str(data["dataflow"]), tiles=data["tiles"],
                           roles=roles, **arrays)
        except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"{path}: not a ChipViz trace file ({exc})") from None
