"""The vector unit beside the array: elementwise work (bias, activation, loss, updates).

Like the TPU's activation pipeline, it has one lane per array column, each doing one
elementwise operation per cycle, reading its operands from SRAM and writing results back.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Mapping

import numpy as np

from .config import ChipConfig
from .stats import cost_vector


@dataclass(frozen=True)
class VectorStats:
    elements: int
    ops: int
    cycles: int
    energy_pj: Mapping[str, float]  # read-only: results are cached
    seconds: float

    @property
    def macs(self) -> int:
        return 0

    @cached_property
    def costs(self) -> np.ndarray:
        return cost_vector(self.cycles, 0, self.seconds, self.energy_pj)


@lru_cache(maxsize=4096)
def vector_op(elements: int, ops_per_element: int, config: ChipConfig) -> VectorStats:
    """Cost of applying `ops_per_element` operations to each of `elements` values."""
    if elements < 0 or ops_per_element < 0:
        raise ValueError(f"elements and ops_per_element must be >= 0, got {elements} and {ops_per_element}")
    ops = elements * ops_per_element
    cycles = -(-ops // config.cols)
    e = config.energy
    moved = 2 * elements * config.spec.accumulator_bytes if ops else 0  # read and write back each value
    energy = {"vector": ops * e.vector_op_pj(config.precision), "sram": moved * e.sram_pj_per_byte}
    energy["total"] = energy["vector"] + energy["sram"]
    return VectorStats(elements, ops, cycles, MappingProxyType(energy), cycles / (config.clock_mhz * 1e6))
