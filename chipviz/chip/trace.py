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

from .dataflow_table import DATAFLOW_TABLE

IDLE, MAC, PRELOAD, STALL = 0, 1, 2, 3
DEFAULT_BUDGET_BYTES = 256 * 2**20

FIELDS = ("state", "stationary", "from_left", "from_top", "psum", "fold", "left_in", "top_in", "bottom_out")
PLANES = FIELDS[1:5]  # the PE registers, float32


def shared_planes(dataflow: str) -> dict:
    """The register planes a trace of this dataflow does not store apart, read off the dataflow
    table: {plane: the plane it repeats, or None for zeros throughout}. In os C stays in the PEs,
    so the stationary register is the partial sum; in ws and is nothing moves down from the top.
    Not writing them is a quarter less memory per traced cycle, and writing memory is most of a
    traced cycle's cost."""
    flow = DATAFLOW_TABLE[dataflow]
    out = {}
    if flow.stationary == "C":
        out["psum"] = "stationary"
    if flow.from_top == "-":
        out["from_top"] = None
    return out


def bytes_per_cycle(rows: int, cols: int, dataflow: str) -> int:
    """Memory one traced cycle takes: a state byte and the stored float32 registers per PE and per row's
    spare slot (see allocate), edge indices."""
    planes = len(PLANES) - len(shared_planes(dataflow))
    return rows * (cols + 1) * (1 + 4 * planes) + 4 * (1 + rows + 2 * cols)


# Trace memory is recycled: a trace's arrays are views of one byte buffer, and a buffer whose views are all
# gone (only _POOL refers to it) is handed to the next trace of a similar size. Fresh memory costs a page
# fault per 4 KiB on first write, several times the cost of the writes themselves. At most POOL_BUFFERS
# buffers are kept, each at most POOL_LIMIT_BYTES; larger traces get fresh memory.
POOL_BUFFERS = 2
POOL_LIMIT_BYTES = 64 * 2**20
_POOL: list = []
_POOL_LOCK = threading.Lock()
_ALIGN = 64


def _layout(rows: int, cols: int, n_cycles: int, dataflow: str):
    """(dtype, shape, byte offset) of each field in a trace's buffer, and the buffer's size. A plane
    the dataflow does not store gets no cycles (shape (0, rows·(cols + 1))): the kernels leave it alone."""
    shared = shared_planes(dataflow)
    flat = rows * (cols + 1)  # a plane a cycle, rows of the kernels' stride (chipviz/chip/dataflows/record.py)
    shapes = ((np.uint8, (n_cycles, flat)),) + tuple(
        (np.float32, (0 if name in shared else n_cycles, flat)) for name in PLANES) + (
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


def allocate(rows: int, cols: int, n_cycles: int, dataflow: str) -> tuple:
    """The kernels' trace arrays for n_cycles, uninitialised: the kernels write every stored field of
    every cycle of their window (zeros included); the planes of shared_planes are empty. They are
    views of one buffer, recycled once no view of it is left. A PE plane is one flat run a cycle, in
    rows of the kernels' row stride, cols + 1, so that recording it is one contiguous copy (twice as
    fast as a copy a row on 16×16); Trace.of shows its R×C window and fills in the shared planes."""
    fields, nbytes = _layout(rows, cols, n_cycles, dataflow)
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

    @classmethod
    def of(cls, start: int, arrays: tuple, dataflow: str, tiles: np.ndarray, roles: dict) -> "Trace":
        """The trace of the kernels' arrays (see allocate): each plane's R×C window (its rows hold a
        spare slot), and the shared planes."""
        fields = dict(zip(FIELDS, arrays))
        rows, cols = fields["left_in"].shape[1], fields["top_in"].shape[1]
        for name in ("state",) + PLANES:
            plane = fields[name]
            fields[name] = plane.reshape(plane.shape[0], rows, cols + 1)[:, :, :cols]
        return cls._sharing(start, fields, dataflow, tiles, roles)

    @classmethod
    def _sharing(cls, start: int, fields: dict, dataflow: str, tiles: np.ndarray, roles: dict) -> "Trace":
        """The trace of `fields`, its shared planes filled in: the plane each repeats (the same array), or
        read-only zeros that take no memory."""
        for name, source in shared_planes(dataflow).items():
            fields[name] = fields[source] if source else np.broadcast_to(np.float32(0), fields["state"].shape)
        return cls(start, dataflow=dataflow, tiles=tiles, roles=roles, **fields)

    @property
    def n_cycles(self) -> int:
        return int(self.state.shape[0])

    @property
    def nbytes(self) -> int:
        """The memory the trace holds: a shared plane counts once, a plane of zeros not at all, and a
        plane with a spare column a row (as recorded) counts it."""
        stored = {id(a): a for a in (getattr(self, name) for name in FIELDS)}
        return sum(a.shape[0] * a.strides[0] for a in stored.values())

    def save(self, path) -> None:
        """Write an .npz (plain arrays, no pickle) that `load` reads back; the shared planes are not
        written (a file holding them too, as older versions wrote, loads all the same)."""
        meta = np.array([self.start], np.int64)
        roles = np.array([f"{k}={v}" for k, v in self.roles.items()])
        shared = shared_planes(self.dataflow)
        with open(path, "wb") as f:  # a file object: numpy would otherwise append ".npz" to the name
            np.savez_compressed(f, start=meta, dataflow=np.array(self.dataflow), tiles=self.tiles, roles=roles,
                                **{name: getattr(self, name) for name in FIELDS if name not in shared})

    @classmethod
    def load(cls, path) -> "Trace":
        try:
            with np.load(path, allow_pickle=False) as data:
                dataflow = str(data["dataflow"])
                if dataflow not in DATAFLOW_TABLE:
                    raise ValueError(f"unknown dataflow {dataflow!r}")
                shared = shared_planes(dataflow)
                arrays = {name: data[name] for name in FIELDS if name not in shared}
                roles = dict(str(item).split("=", 1) for item in data["roles"])
                return cls._sharing(int(data["start"][0]), arrays, dataflow, data["tiles"], roles)
        except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"{path}: not a ChipViz trace file ({exc})") from None
