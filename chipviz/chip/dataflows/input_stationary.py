"""Input stationary (is): A's tile waits in the PEs while B streams through.

It is weight stationary on the transposed GEMM, Cᵀ = Bᵀ·Aᵀ: Aᵀ (K×M) is preloaded with K on
rows and M on columns, the columns of B stream in from the left one per cycle, and Cᵀ's
rows leave the bottom edge. Hence SCALE-Sim's 2R + C + N - 2 cycles per fold. (The
transposition is the dataflow table's `transposed`, applied by chipviz/chip/cycle.py.)
"""
from __future__ import annotations

from . import weight_stationary

run_folds = weight_stationary.run_folds
