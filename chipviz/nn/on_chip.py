"""The network's view of the chip: every matrix multiply and vector operation goes through
here, is run by the chip, and is recorded with its cycles and energy.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..chip import ChipConfig, GemmStats, analyze, gemm, prepare_operands, product
from ..chip.vector import VectorStats, vector_op

PHASES = ("forward", "backward_data", "backward_weights", "update")


class Operation(NamedTuple):
    """One piece of a training step as the chip ran it (a tuple: cheap to make every step)."""

    layer: int  # 1-based; 0 for whole-network work (loss, update)
    phase: str
    name: str  # e.g. "Y = X·W", "dX = dY·Wᵀ", "dW = Xᵀ·dY", "bias + relu"
    stats: GemmStats | VectorStats

    @property
    def is_gemm(self) -> bool:
        return isinstance(self.stats, GemmStats)

    @property
    def cycles(self) -> int:
        return self.stats.cycles

    @property
    def macs(self) -> int:
        return self.stats.macs

    @property
    def energy_pj(self) -> float:
        return self.stats.energy_pj["total"]


class ChipRunner:
    """Runs the work of a network on one chip and keeps the log of the current step.

    `keep_operands` keeps each operation's GEMM operands of the last step (None for vector work,
    so indices match `ops`) so that a view can replay any of them cycle by cycle with a trace.
    """

    def __init__(self, config: ChipConfig, engine: str = "analytic", keep_operands: bool = False):
        self.config = config
        self.int8_config = config.with_(precision="int8")
        self.engine = engine
        self.keep_operands = keep_operands
        self.ops: list[Operation] = []
        self.operands: list[tuple[np.ndarray, np.ndarray, ChipConfig] | None] = []

    def reset_log(self) -> None:
        self.ops = []
        self.operands = []

    def matmul(self, a: np.ndarray, b: np.ndarray, layer: int, phase: str, name: str, int8: bool = False):
        config = self.int8_config if int8 else self.config
        if self.engine == "analytic":  # gemm()'s analytic path, minus its per-call checks
            a, b = prepare_operands(a, b, config, check_finite=False)  # the trainer guards against NaN
            c, stats = product(a, b, config), analyze(a.shape[0], a.shape[1], b.shape[1], config)
        else:
            result = gemm(a, b, config, engine=self.engine, check_finite=False)
            c, stats = result.c, result.stats
        self.ops.append(Operation(layer, phase, name, stats))
        if self.keep_operands:
            self.operands.append((a, b, config))
        return c

    def vector(self, elements: int, ops_per_element: int, layer: int, phase: str, name: str) -> None:
        if ops_per_element:
            self.ops.append(Operation(layer, phase, name, vector_op(elements, ops_per_element, self.config)))
            if self.keep_operands:
                self.operands.append(None)
