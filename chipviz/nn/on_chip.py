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
        # A network asks for the same GEMMs and vector work every step: each call's Operation is
        # memoised by what determines it (the call's layer, phase and name, the operands' shapes and
        # types, the chip and A's layout), so a repeated step builds no records and checks nothing twice.
        self._memo: dict = {}

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
            key = hit = None
            if type(a) is np.ndarray and type(b) is np.ndarray:
                # the layout's key: its geometry object (kept alive by the memo, so its id is not reused)
                layout = None if a_layout is None else (id(a_layout.geometry), a_layout.batch, a_layout.transposed)
                key = (layer, phase, name, a.shape, b.shape, a.dtype, b.dtype, config, layout)
                hit = self._memo.get(key)
            if hit is not None:  # operands of these shapes and types passed prepare_operands unchanged
                op, _, direct = hit
                c = a @ b if direct else product(a, b, config)  # direct: already the accumulator's type
            else:
                a2, b2 = prepare_operands(a, b, config, check_finite=False)  # the trainer guards against NaN
                c = product(a2, b2, config)
                op = Operation(layer, phase, name, analyze(a2.shape[0], a2.shape[1], b2.shape[1], config, a_layout))
                if key is not None and a2 is a and b2 is b:
                    acc = config.spec.accumulator_dtype
                    self._remember(key, (op, a_layout, a.dtype == acc and b.dtype == acc))
                a, b = a2, b2
            self.ops.append(op)
        else:
            result = gemm(a, b, config, engine=self.engine, check_finite=False, a_layout=a_layout)
            c = result.c
            self.ops.append(Operation(layer, phase, name, result.stats))
        if self.keep_operands:  # copies: W (and Wᵀ, a view of it) changes in place at the update
            self.operands.append(Operands(np.array(a), np.array(b), config, a_layout))
        return c

    def _remember(self, key, value) -> None:
        if len(self._memo) >= 512:  # a long-lived runner that saw many shapes (e.g. evaluations of many sizes)
            self._memo.clear()
        self._memo[key] = value

    def vector(self, elements: int, ops_per_element: int, layer: int, phase: str, name: str) -> None:
        """Elementwise work on the vector unit (fp32 values, also on an int8 chip)."""
        if ops_per_element:
            key = (elements, ops_per_element, layer, phase, name)
            op = self._memo.get(key)
            if op is None:
                op = Operation(layer, phase, name, vector_op(elements, ops_per_element, self.fp32_config))
                self._remember(key, op)
            self.ops.append(op)
            if self.keep_operands:
                self.operands.append(None)
