"""The network's view of the chip: every matrix multiply and vector operation goes through
here, is run by the chip, and is recorded with its cycles and energy.

The chip's precision (`ChipConfig.precision`) is the one setting of the number format. On an
int8 chip the GEMMs of the forward direction quantise their operands symmetrically per
tensor and multiply them exactly (int32 accumulation), as TPU v1 does; the backward GEMMs and
the vector unit work on the fp32 master values, on the same chip in fp32.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..chip import ChipConfig, GemmStats, analyze, gemm, prepare_operands, product
from ..chip.vector import VectorStats, vector_op
from .phases import INT8_SUFFIX, PHASE_TABLE, PHASES
from .quantize import quantize

__all__ = ["PHASES", "ChipRunner", "Operands", "Operation"]


class Operation(NamedTuple):
    """One piece of a training step as the chip ran it (a tuple: cheap to make every step)."""

    layer: int  # 1-based; 0 for whole-network work (loss, update)
    phase: str  # one of PHASES
    name: str  # e.g. "Y = X·W", "Y = X·W (int8)", "dX = dZ·Wᵀ", "dW = Xᵀ·dZ", "+ b, relu"
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


class Operands(NamedTuple):
    """A GEMM's operands as they were multiplied, the chip they ran on, and A's im2col layout (if any)."""

    a: np.ndarray
    b: np.ndarray
    config: ChipConfig
    a_layout: object = None  # chipviz.chip.conv.Im2colOperand for a convolution's unrolled input


class ChipRunner:
    """Runs the work of a network on one chip and keeps the log of the current step.

    `config` is the chip as configured; `int8` says whether its forward GEMMs quantise, and
    `fp32_config` is the same chip in fp32, which runs the backward GEMMs and the vector unit.
    `keep_operands` keeps a copy of each operation's GEMM operands of the last step, as they
    were multiplied, with the config they ran on (None for vector work, so indices match
    `ops`), so that a view can replay any of them cycle by cycle with a trace.
    """

    def __init__(self, config: ChipConfig, engine: str = "analytic", keep_operands: bool = False):
        self.config = config
        self.int8 = config.precision == "int8"
        self.fp32_config = config.with_(precision="fp32") if self.int8 else config
        self.engine = engine
        self.keep_operands = keep_operands
        self.ops: list[Operation] = []
        self.operands: list[Operands | None] = []

    def reset_log(self) -> None:
        self.ops = []
        self.operands = []

    def matmul(self, a: np.ndarray, b: np.ndarray, layer: int, phase: str, a_layout=None) -> np.ndarray:
        """C = A·B for `phase`'s GEMM of `layer` (named from the phase table), as float32.
        `a_layout`: A is a convolution's unrolled input (chipviz.chip.conv.Im2colOperand), so DRAM
        reads each input pixel once."""
        kind = PHASE_TABLE[phase]
        if self.int8 and kind.direction == "forward":
            qa, sa = quantize(a)
            qb, sb = quantize(b)
            c = self._run(qa, qb, layer, phase, kind.op + INT8_SUFFIX, self.config, a_layout)
            return c.astype(np.float32) * np.float32(sa * sb)  # back to the values' scale
        return self._run(a, b, layer, phase, kind.op, self.fp32_config, a_layout)

    def _run(self, a, b, layer: int, phase: str, name: str, config: ChipConfig, a_layout=None) -> np.ndarray:
        if self.engine == "analytic":  # gemm()'s analytic path, minus its per-call checks
            a, b = prepare_operands(a, b, config, check_finite=False)  # the trainer guards against NaN
            c, stats = product(a, b, config), analyze(a.shape[0], a.shape[1], b.shape[1], config, a_layout)
        else:
            result = gemm(a, b, config, engine=self.engine, check_finite=False, a_layout=a_layout)
            c, stats = result.c, result.stats
        self.ops.append(Operation(layer, phase, name, stats))
        if self.keep_operands:  # copies: W (and Wᵀ, a view of it) changes in place at the update
            self.operands.append(Operands(np.array(a), np.array(b), config, a_layout))
        return c

    def vector(self, elements: int, ops_per_element: int, layer: int, phase: str, name: str) -> None:
        """Elementwise work on the vector unit (fp32 values, also on an int8 chip)."""
        if ops_per_element:
            self.ops.append(Operation(layer, phase, name, vector_op(elements, ops_per_element, self.fp32_config)))
            if self.keep_operands:
                self.operands.append(None)
