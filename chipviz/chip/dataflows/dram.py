"""The memory policy of chipviz/chip/memory.py for one fold, compiled for the kernels.

The cycle-accurate kernels call it at the end of every fold (the stall cycles it finds are
recorded in a trace); the analytic engine applies the same rule to all folds at once with
numpy (memory.all_folds_dram). The tests hold the two to exact equality.
"""
from __future__ import annotations

import math

from numba import njit

from ..memory import (DRAM_OPERAND_READS, DRAM_PSUM_READS, DRAM_WRITES, MOVING_DRAM, MOVING_READS, OTHER_DRAM,
                      OTHER_READS, SRAM_WRITES, STALLS)


@njit(cache=True, nogil=True)
def fold_dram(counters, flags, fits, operand_bytes, accumulator_bytes, bytes_per_cycle, cycles_per_fold):
    """Fill one fold's DRAM and stall counters from its SRAM counters (policy in memory.py)."""
    moving_first, other_first, final, psum_first = flags[0], flags[1], flags[2], flags[3]
    moving_fits, other_fits, outputs_fit = fits[0], fits[1], fits[2]
    reads = 0
    if moving_first or not moving_fits:
        reads += counters[MOVING_READS] if counters[MOVING_DRAM] < 0 else counters[MOVING_DRAM]
    if other_first or not other_fits:
        reads += counters[OTHER_READS] if counters[OTHER_DRAM] < 0 else counters[OTHER_DRAM]
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
