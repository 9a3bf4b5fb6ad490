"""The trace payload codec: a window of a chip trace packed into one binary message.

Headless (numpy and the standard library only, no Panel): :func:`pack_window` turns cycles
[start, stop) of a :class:`chipviz.chip.trace.Trace` into the bytes the browser view
(:class:`chipviz.app.pe_array.PEArrayView`, its JavaScript in ``chipviz/app/pe_array.js``)
decodes and plays; :func:`unpack_payload` is the Python twin of that decoder, for tests and
debugging; :func:`pe_operands` derives which GEMM indices a PE works on, as the browser's
tooltip does; :func:`default_batch_cycles` sizes a window to a byte budget.

Payload layout (``PEArrayView.frames``, a ``param.Bytes`` sent as a binary websocket frame; measured
here: 4 MB arrive as an ``ArrayBuffer`` with nothing to decode, where the same data as a
base64 string is a third larger and takes 25 to 60 ms to decode in the browser)::

    b"CVPA" | uint32 LE header length H | H bytes of JSON header (padded to 8) | planes

Each plane is a little-endian array aligned to 8 bytes at ``data offset``; the header's
``planes`` maps a name to ``{"dtype", "shape", "offset"}``. Register planes (``psum``,
``stationary``, ``from_left``, ``from_top``) are stored as distinct consecutive frames
(``<name>.frames``, shape (u, R, C)) and a per-cycle frame number (``<name>.index``), so a
weight tile that stays put for hundreds of cycles is sent once; a plane equal to another is
sent as ``{"alias": other}``. ``left_in``, ``top_in`` and ``fold`` carry ``hist`` extra
cycles before the batch (-1 where the trace does not reach), which the browser needs to tell
which streamed element is inside PE(i, j): it entered row i at cycle c − j.
"""
from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from .chip.dataflow_table import DATAFLOW_TABLE
from .chip.trace import Trace

MAGIC = b"CVPA"
FORMAT_VERSION = 1
DEFAULT_BATCH_BYTES = 2 * 2**20
MAX_BATCH_BYTES = 64 * 2**20
MIN_BATCH_CYCLES = 16
MAX_DEFAULT_BATCH_CYCLES = 600
REGISTER_PLANES = ("psum", "stationary", "from_left", "from_top")
_DTYPES = {"u1": np.uint8, "i1": np.int8, "i2": np.int16, "i4": np.int32, "f4": np.float32}


def bytes_per_cycle(rows: int, cols: int, dataflow: str) -> int:
    """Approximate payload bytes one cycle costs (state, psum, moving operands, edge indices)."""
    # psum, from_left (+ from_top when an operand streams in from the top: os); stationary repeats or aliases psum
    planes = 3 if DATAFLOW_TABLE[dataflow].from_top != "-" else 2
    return rows * cols * (1 + 4 * planes) + 4 * (rows + 2 * cols + 1) + 8


def default_batch_cycles(rows: int, cols: int, dataflow: str, budget: int = DEFAULT_BATCH_BYTES) -> int:
    """How many cycles one batch holds by default: about `budget` bytes, 16 to 600 cycles."""
    return int(min(MAX_DEFAULT_BATCH_CYCLES, max(MIN_BATCH_CYCLES, budget // bytes_per_cycle(rows, cols, dataflow))))


def _dedupe(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct consecutive frames, frame number per cycle) of a (n, R, C) array."""
    if x.shape[0] == 0:
        return x, np.zeros(0, np.int32)
    new = np.ones(x.shape[0], bool)
    new[1:] = np.any(x[1:] != x[:-1], axis=(1, 2))
    return np.ascontiguousarray(x[new]), (np.cumsum(new) - 1).astype(np.int32)


def _with_history(values: np.ndarray, trace_start: int, start: int, stop: int, hist: int, fill: int) -> np.ndarray:
    """values[start - hist : stop] in trace coordinates, `fill` where the trace does not reach."""
    width = values.shape[1:] if values.ndim > 1 else ()
    out = np.full((stop - start + hist, *width), fill, np.int32)
    lo = max(start - hist, trace_start)
    out[lo - (start - hist):] = values[lo - trace_start: stop - trace_start]
    return out


def pack_window(trace: Trace, start: int, stop: int, *, total_cycles: int, psum_scale: float | None = None,
                stationary_scale: float | None = None, max_bytes: int = MAX_BATCH_BYTES,
                follow: bool = False) -> bytes:
    """Cycles [start, stop) of `trace` (GEMM cycle numbers) as one payload for the browser.

    psum_scale / stationary_scale are the magnitudes drawn full size (default: the window's
    largest); follow=True marks a continuation of the batch being played: a browser already playing a
    cycle inside the new window keeps going from there instead of jumping to ``cycle``.
    """
    rows, cols = int(trace.state.shape[1]), int(trace.state.shape[2])
    t0 = trace.start
    a, b = start - t0, stop - t0
    n = stop - start
    hist = max(rows, cols) - 1
    planes: dict[str, np.ndarray] = {"state": np.ascontiguousarray(trace.state[a:b], np.uint8)}
    aliases: dict[str, str] = {}
    kept: list[tuple[str, np.ndarray]] = []
    for name in REGISTER_PLANES:
        x = np.ascontiguousarray(getattr(trace, name)[a:b], np.float32)
        twin = next((other for other, y in kept if np.array_equal(x, y)), None)
        if twin is not None:
            aliases[name] = twin
            continue
        kept.append((name, x))
        frames, index = _dedupe(x)
        planes[f"{name}.frames"] = frames
        planes[f"{name}.index"] = index
    planes["fold"] = _with_history(trace.fold, t0, start, stop, hist, -1)
    planes["left_in"] = _with_history(trace.left_in, t0, start, stop, hist, -1)
    planes["top_in"] = _with_history(trace.top_in, t0, start, stop, hist, -1)
    planes["bottom_out"] = np.ascontiguousarray(trace.bottom_out[a:b], np.int32)

    layout: dict[str, Any] = {}
    offset = 0
    for name, arr in planes.items():
        code = {np.dtype(np.uint8): "u1", np.dtype(np.int32): "i4", np.dtype(np.float32): "f4"}[arr.dtype]
        layout[name] = {"dtype": code, "shape": list(arr.shape), "offset": offset}
        offset += -(-arr.nbytes // 8) * 8
    for name, twin in aliases.items():
        layout[name] = {"alias": twin}
    if offset > max_bytes:
        raise ValueError(
            f"a batch of {n:,} cycles on a {rows}×{cols} array needs {offset / 2**20:.1f} MiB, over the "
            f"{max_bytes / 2**20:.0f} MiB limit: send a shorter window "
            f"(about {max(1, max_bytes // max(1, offset // n)):,} cycles)")
    if psum_scale is None:
        psum_scale = float(np.abs(trace.psum[a:b]).max()) if n else 0.0
    if stationary_scale is None:
        stationary_scale = float(np.abs(trace.stationary[a:b]).max()) if n else 0.0
    header = {
        "version": FORMAT_VERSION, "rows": rows, "cols": cols, "dataflow": trace.dataflow,
        "start": int(start), "n": int(n), "hist": int(hist), "total_cycles": int(total_cycles),
        "n_folds": int(len(trace.tiles)), "tiles": np.asarray(trace.tiles, np.int64).tolist(),
        "roles": dict(trace.roles), "psum_scale": float(psum_scale) or 1.0,
        "stationary_scale": float(stationary_scale) or 1.0, "follow": bool(follow),
        "planes": layout,
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(len(text) + 8) % 8)
    out = bytearray(MAGIC + struct.pack("<I", len(text)) + text)
    base = len(out)
    out.extend(bytes(offset))
    for name, arr in planes.items():
        off = base + layout[name]["offset"]
        out[off:off + arr.nbytes] = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
    return bytes(out)


def unpack_payload(payload: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, arrays) of a payload, with register planes expanded to (n, R, C) per cycle.

    The Python twin of the browser's decoder, for tests and debugging.
    """
    if not payload or payload[:4] != MAGIC:
        raise ValueError("not a PEArrayView payload (missing the CVPA magic)")
    (hlen,) = struct.unpack_from("<I", payload, 4)
    header = json.loads(payload[8:8 + hlen])
    base = 8 + hlen
    raw: dict[str, np.ndarray] = {}
    for name, spec in header["planes"].items():
        if "alias" in spec:
            continue
        dtype = np.dtype(_DTYPES[spec["dtype"]]).newbyteorder("<")
        count = int(np.prod(spec["shape"]))
        raw[name] = np.frombuffer(payload, dtype, count, base + spec["offset"]).reshape(spec["shape"])
    arrays = {k: v for k, v in raw.items() if "." not in k}
    for name in REGISTER_PLANES:
        if name not in header["planes"]:
            arrays[name] = raw[f"{name}.frames"][raw[f"{name}.index"]]
    for name in REGISTER_PLANES:
        if name in header["planes"]:
            arrays[name] = arrays[header["planes"][name]["alias"]]
    return header, arrays


def pe_operands(trace: Trace, cycle: int, i: int, j: int) -> dict[str, int | None]:
    """Which GEMM indices PE(i, j) works on at GEMM cycle `cycle`, derived as the browser's tooltip does.

    Returns {"m", "k", "n"}, plus "k_top" for os (the k of B's element from the top). The
    dimensions spread over the rows and columns (the dataflow table's) give the PE's own
    indices; the streamed index is that of the moving element now in the PE, which entered row
    i at cycle c − j (an operand from the top, os: column j at c − i); -1 when no element is
    there, None when that cycle precedes the trace. Only MAC cycles compute
    C[m, n] += A[m, k]·B[k, n].
    """
    t = cycle - trace.start
    if not 0 <= t < trace.n_cycles:
        last = trace.start + trace.n_cycles - 1
        raise ValueError(f"cycle {cycle} is outside the trace (cycles {trace.start}..{last})")
    fold = int(trace.fold[t])
    r0, _, c0, _ = (int(v) for v in trace.tiles[fold])

    def entered(edge: np.ndarray, back: int, lane: int) -> int | None:
        tt = t - back
        if tt < 0:
            return None
        return int(edge[tt, lane]) if trace.fold[tt] == fold else -1

    flow = DATAFLOW_TABLE[trace.dataflow]
    at = {flow.rows: r0 + i, flow.cols: c0 + j, flow.streamed: entered(trace.left_in, j, i)}
    out = {"m": at["M"], "k": at["K"], "n": at["N"]}
    if flow.from_top != "-":
        out[f"{flow.streamed.lower()}_top"] = entered(trace.top_in, i, j)
    return out


__all__ = ["MAGIC", "FORMAT_VERSION", "DEFAULT_BATCH_BYTES", "MAX_BATCH_BYTES", "MIN_BATCH_CYCLES",
           "MAX_DEFAULT_BATCH_CYCLES", "REGISTER_PLANES", "pack_window", "unpack_payload", "pe_operands",
           "bytes_per_cycle", "default_batch_cycles"]
