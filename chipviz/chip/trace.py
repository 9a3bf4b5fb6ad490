"""A record of what every PE did, cycle by cycle, for animation and teaching.

The cycle-accurate engine writes into preallocated arrays for a window of cycles, so a
trace's memory is known before the run and a too-large request is refused up front.
"""
from __future__ import annotations

import sys
import threading
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


# Trace memory is recycled: a trace's arrays are views of one byte buffer, and a buffer whose views are all
# gone (only _POOL refers to it) is handed to the next trace of a similar size. Fresh memory costs a page
# fault per 4 KiB on first write, several times the cost of the writes themselves. At most POOL_BUFFERS
# buffers are kept, each at most POOL_LIMIT_BYTES; larger traces get fresh memory.
POOL_BUFFERS = 2
POOL_LIMIT_BYTES = 64 * 2**20
_POOL: list = []
_POOL_LOCK = threading.Lock()
_ALIGN = 64


def _layout(rows: int, cols: int, n_cycles: int):
    """(dtype, shape, byte offset) of each field in a trace's buffer, and the buffer's size."""
    shapes = ((np.uint8, (n_cycles, rows, cols)),) + ((np.float32, (n_cycles, rows, cols)),) * 4 + (
        (np.int32, (n_cycles,)), (np.int32, (n_cycles, rows)), (np.int32, (n_cycles, cols)),
        (np.int32, (n_cycles, cols)))
    out, offset = [], 0
    for dtype, shape in shapes:
        out.append((dtype, shape, offset))
        offset += -(-int(np.prod(shape)) * np.dtype(dtype).itemsize // _ALIGN) * _ALIGN
    return out, offset


def _buffer(nbytes: int) -> np.ndarray:
    """A byte buffer of at least nbytes: a free pooled one if one fits, else a new one (pooled if small)."""
    if nbytes > POOL_LIMIT_BYTES or sys.implementation.name != "cpython":  # (reference counts tell what is free)
        return np.empty(nbytes, np.uint8)
    with _POOL_LOCK:
        free = [i for i in range(len(_POOL)) if sys.getrefcount(_POOL[i]) == 2]  # the list's reference only
        for i in free:
            if nbytes <= _POOL[i].nbytes <= 2 * nbytes + 2**20:
                return _POOL[i]
        buf = np.empty(nbytes, np.uint8)
        if len(_POOL) < POOL_BUFFERS:
            _POOL.append(buf)
        elif free:
            _POOL[free[0]] = buf
        return buf


def allocate(rows: int, cols: int, n_cycles: int) -> tuple:
    """The trace's arrays for n_cycles, uninitialised: the kernels write every field of every cycle of
    their window (zeros included). They are views of one buffer, recycled once no view of it is left."""
    fields, nbytes = _layout(rows, cols, n_cycles)
    if n_cycles == 0:
        return tuple(np.empty(shape, dtype) for dtype, shape, _ in fields)
    buf = _buffer(nbytes)
    return tuple(buf[offset:offset + int(np.prod(shape)) * np.dtype(dtype).itemsize].view(dtype).reshape(shape)
                 for dtype, shape, offset in fields)


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
