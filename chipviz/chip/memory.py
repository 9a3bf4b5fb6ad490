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

import math

import numpy as np
from numba import njit

from .dataflow_table import DATAFLOW_TABLE

# Per-fold counter columns, shared by the engines (counts are in elements).
MACS, MOVING_READS, OTHER_READS, SRAM_WRITES, OPERAND_HOPS, PSUM_HOPS = range(6)
DRAM_OPERAND_READS, DRAM_PSUM_READS, DRAM_WRITES, STALLS = range(6, 10)
N_COUNTERS = 10


@njit(cache=True, nogil=True)
def fold_dram(counters, flags, fits, operand_bytes, accumulator_bytes, bytes_per_cycle, cycles_per_fold):
    """Fill one fold's DRAM and stall counters from its SRAM counters (policy in the module doc)."""
    moving_first, other_first, final, psum_first = flags[0], flags[1], flags[2], flags[3]
    moving_fits, other_fits, outputs_fit = fits[0], fits[1], fits[2]
    reads = 0
    if moving_first or not moving_fits:
        reads += counters[MOVING_READS]
    if other_first or not other_fits:
        reads += counters[OTHER_READS]
    psum_reads = 0
    writes = 0
    if final or not outputs_fit:
        writes = counters[SRAM_WRITES]
    if not outputs_fit and not psum_first:
        psum_reads = counters[SRAM_WRITES]
    counters[DRAM_OPERAND_READS] = reads
    counters[DRAM_PSUM_READS] = psum_reads
    counters[DRAM_WRITES] = writes
    traffic = reads * operand_bytes + (psum_reads + writes) * accumulator_bytes
    needed = math.ceil(traffic / bytes_per_cycle)
    counters[STALLS] = max(0, needed - cycles_per_fold)


@njit(cache=True, nogil=True)
def all_folds_dram(counters, flags, fits, operand_bytes, accumulator_bytes, bytes_per_cycle, cycles_per_fold):
    for f in range(counters.shape[0]):
        fold_dram(counters[f], flags[f], fits, operand_bytes, accumulator_bytes, bytes_per_cycle, cycles_per_fold)


def operand_fits(m: int, k: int, n: int, dataflow: str, config) -> np.ndarray:
    """[moving fits, other fits, outputs fit] in their SRAM buffers, in the engines' roles
    (A lives in the ifmap SRAM, B in the filter SRAM, C in the ofmap SRAM)."""
    spec = config.spec
    a_fits = m * k * spec.operand_bytes <= config.ifmap_sram_kib * 1024
    b_fits = k * n * spec.operand_bytes <= config.filter_sram_kib * 1024
    c_fits = m * n * spec.accumulator_bytes <= config.ofmap_sram_kib * 1024
    moving, other = DATAFLOW_TABLE[dataflow].operand_order(a_fits, b_fits)
    return np.array([moving, other, c_fits], dtype=np.bool_)
