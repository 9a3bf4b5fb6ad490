"""Input stationary (is): A's tile waits in the PEs while B streams through.

It is weight stationary on the transposed GEMM, Cᵀ = Bᵀ·Aᵀ: Aᵀ (K×M) is preloaded with K on
rows and M on columns, the columns of B stream in from the left one per cycle, and Cᵀ's
rows leave the bottom edge. Hence SCALE-Sim's 2R + C + N - 2 cycles per fold.
"""
from __future__ import annotations

import numpy as np

from . import weight_stationary


def operands(a: np.ndarray, b: np.ndarray):
    """(moving, stationary) for the shared stationary-operand kernel, and whether C comes out transposed."""
    return b.T, a.T, True


run_folds = weight_stationary.run_folds
