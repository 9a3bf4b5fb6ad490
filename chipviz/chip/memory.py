"""The memory system behind the array: double-buffered SRAMs filled from DRAM.

The policy, shared by both engines so that they price memory identically:
- An operand that fits in its SRAM buffer is read from DRAM once, the first time a fold
  uses each of its tiles; one that does not fit is read again by every fold that uses it.
- Outputs go to DRAM when they are final. If all of C's accumulators do not fit in the
  ofmap SRAM, partial sums of unfinished outputs spill to DRAM and are read back.
- A fold's DRAM traffic is moved while the previous fold computes (double buffering);
  when it needs more cycles than the fold lasts, the array stalls for the difference.
  The first fold is treated alike: its data is assumed staged while the array starts up
  (SCALE-Sim likewise leaves the initial fill out of its compute cycles).
- The output buffer's read of a partial sum before adding the next row fold's is not
  priced (SCALE-Sim does not count it either); its writes are.
"""
from __future__ import annotations

import numpy as np

from .dataflow_table import DATAFLOW_TABLE

# Per-fold counter columns, shared by the engines (counts are in elements).
MACS, MOVING_READS, OTHER_READS, SRAM_WRITES, OPERAND_HOPS, PSUM_HOPS = range(6)
DRAM_OPERAND_READS, DRAM_PSUM_READS, DRAM_WRITES, STALLS = range(6, 10)
# Inputs of the DRAM rule, filled before a run (fold_footprints): the distinct DRAM elements a
# fold's tile of the moving / other operand holds, or -1 where that equals its SRAM reads (the
# usual case). An im2col operand's tile repeats input pixels: DRAM holds each pixel once.
MOVING_DRAM, OTHER_DRAM = 10, 11
N_COUNTERS = 12


def new_counters(folds: int) -> np.ndarray:
    """An empty per-fold counter table (the footprint columns at -1: no im2col operand)."""
    c = np.zeros((folds, N_COUNTERS), np.int64)
    c[:, MOVING_DRAM:OTHER_DRAM + 1] = -1
    return c


def all_folds_dram(counters, flags, fits, operand_bytes, accumulator_bytes, bytes_per_cycle, cycles_per_fold):
    """The policy above for every fold at once (the analytic engine); the kernels apply the same
    rule fold by fold (dataflows/dram.py fold_dram), to the same integers."""
    c = counters
    moving_first, other_first, final, psum_first = (flags[:, i] for i in range(4))
    moving_fits, other_fits, outputs_fit = (bool(x) for x in fits)
    moving = np.where(c[:, MOVING_DRAM] < 0, c[:, MOVING_READS], c[:, MOVING_DRAM])
    other = np.where(c[:, OTHER_DRAM] < 0, c[:, OTHER_READS], c[:, OTHER_DRAM])
    reads = np.where(moving_first | (not moving_fits), moving, 0) + np.where(other_first | (not other_fits), other, 0)
    writes = np.where(final | (not outputs_fit), c[:, SRAM_WRITES], 0)
    psum_reads = np.where(~psum_first, c[:, SRAM_WRITES], 0) if not outputs_fit else np.zeros_like(writes)
    c[:, DRAM_OPERAND_READS] = reads
    c[:, DRAM_PSUM_READS] = psum_reads
    c[:, DRAM_WRITES] = writes
    traffic = reads * operand_bytes + (psum_reads + writes) * accumulator_bytes
    needed = np.ceil(traffic / bytes_per_cycle).astype(np.int64)  # the same float64 division as math.ceil's
    c[:, STALLS] = np.maximum(0, needed - cycles_per_fold)


def __getattr__(name):
    if name == "fold_dram":  # the compiled rule lives beside the kernels, so the analytic path never loads numba
        from .dataflows.dram import fold_dram
        return fold_dram
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def operand_fits(m: int, k: int, n: int, dataflow: str, config, a_elements: int | None = None) -> np.ndarray:
    """[moving fits, other fits, outputs fit] in their SRAM buffers, in the engines' roles
    (A lives in the ifmap SRAM, B in the filter SRAM, C in the ofmap SRAM). `a_elements`: the
    values A holds in memory when that is fewer than M·K (an im2col operand: its input pixels)."""
    spec = config.spec
    a_fits = (m * k if a_elements is None else a_elements) * spec.operand_bytes <= config.ifmap_sram_kib * 1024
    b_fits = k * n * spec.operand_bytes <= config.filter_sram_kib * 1024
    c_fits = m * n * spec.accumulator_bytes <= config.ofmap_sram_kib * 1024
    moving, other = DATAFLOW_TABLE[dataflow].operand_order(a_fits, b_fits)
    return np.array([moving, other, c_fits], dtype=np.bool_)


def a_tile(mapping, tile) -> tuple[slice, slice]:
    """(rows, columns) of A that a fold with `tile` = [row_start, row_stop, col_start, col_stop] uses."""
    flow = mapping.flow
    span = {flow.rows: slice(int(tile[0]), int(tile[1])), flow.cols: slice(int(tile[2]), int(tile[3])),
            flow.streamed: slice(None)}
    return span["M"], span["K"]


def fold_footprints(counters: np.ndarray, mapping, fits: np.ndarray, a_layout) -> None:
    """Fill A's footprint column for an im2col operand (`a_layout.addresses()`: M×K, the input
    pixel each element is, -1 for padding zeros, which are made on chip and never read).

    When A fits its SRAM, a fold fetches only the pixels no earlier fold fetched; when it does
    not, each fold fetches every distinct pixel of its tile. Either way a pixel is one DRAM
    value however many windows repeat it: the unrolling happens between SRAM and the array,
    as in SCALE-Sim's memory model. SRAM reads still count the unrolled operand.
    """
    addresses = a_layout.addresses()
    flow = mapping.flow
    role = 0 if flow.moving == "A" else 1
    column = MOVING_DRAM if role == 0 else OTHER_DRAM
    first = mapping.fold_flags()[:, role]
    fits_a = bool(fits[role])
    seen = np.zeros(a_layout.pixels, np.bool_)
    fetched = 0
    per_tile: dict = {}
    for f, tile in enumerate(mapping.fold_tiles()):
        if fits_a and not first[f]:
            counters[f, column] = 0  # already in SRAM (and not counted: the fold does not fetch)
            continue
        rows, cols = a_tile(mapping, tile)
        if fits_a:
            region = addresses[rows, cols]
            seen[region[region >= 0]] = True
            total = int(np.count_nonzero(seen))
            counters[f, column] = total - fetched
            fetched = total
        else:
            key = (rows.start, rows.stop, cols.start, cols.stop)
            if key not in per_tile:
                region = addresses[rows, cols]
                per_tile[key] = int(np.unique(region[region >= 0]).size)
            counters[f, column] = per_tile[key]
