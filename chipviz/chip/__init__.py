"""The chip: a systolic array of processing elements and the memories that feed it.

Knows nothing of neural networks: it multiplies matrices and counts what that costs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import trace
from .analytic import COUNT_LIMIT, CountTooLarge, analyze
from .config import DATAFLOWS, PRECISIONS, ChipConfig, EnergyTable, parse_array
from .dataflow_table import DATAFLOW_TABLE, Dataflow
from .cycle import TraceTooLarge, engine_bytes, engine_loaded, estimate_seconds, load_engine, simulate
from .mapping import Mapping
from .stats import GemmStats

ENGINES = ("analytic", "cycle")

__all__ = ["ChipConfig", "EnergyTable", "GemmStats", "GemmResult", "Mapping", "TraceTooLarge", "DATAFLOWS",
           "DATAFLOW_TABLE", "Dataflow", "PRECISIONS", "ENGINES", "COUNT_LIMIT", "CountTooLarge", "analyze", "gemm",
           "engine_bytes", "engine_loaded", "estimate_seconds", "load_engine", "product", "parse_array",
           "prepare_operands", "simulate", "trace"]


@dataclass
class GemmResult:
    c: np.ndarray
    stats: GemmStats
    trace: "trace.Trace | None" = None


def prepare_operands(a, b, config: ChipConfig, check_finite: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes and convert to the chip's operand type (int8 operands must already be integers in range)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"A and B must be 2-D matrices, got shapes {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"inner dimensions differ: A is {a.shape[0]}×{a.shape[1]}, B is {b.shape[0]}×{b.shape[1]}")
    if min(a.shape + b.shape) < 1:
        raise ValueError(f"every GEMM dimension must be >= 1, got A {a.shape} and B {b.shape}")
    if config.precision == "int8":
        for name, x in (("A", a), ("B", b)):
            if not np.issubdtype(x.dtype, np.integer) or x.size and (x.min() < -128 or x.max() > 127):
                raise ValueError(f"int8 precision needs integer {name} in -128..127 (quantise first)")
        return a.astype(np.int8, copy=False), b.astype(np.int8, copy=False)
    a, b = a.astype(np.float32, copy=False), b.astype(np.float32, copy=False)
    for name, x in (("A", a), ("B", b)) if check_finite else ():
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinity")
    return a, b


def gemm(a, b, config: ChipConfig, engine: str = "analytic", trace_window: tuple[int, int] | None = None,
         trace_budget: int = trace.DEFAULT_BUDGET_BYTES, check_finite: bool = True, on_folds=None,
         a_layout=None) -> GemmResult:
    """C = A·B on the chip, with its counters.

    engine="cycle" moves every value register by register (and can record a trace);
    engine="analytic" takes C from a plain product in the chip's number format (float32, or
    int8 operands with int32 accumulation, exact) and every counter from closed forms; the
    tests prove the two engines agree. `check_finite=False` skips the NaN scan for callers
    that guard against NaN themselves (the trainer). `on_folds(done, total)`, for the cycle
    engine, runs the folds in chunks and reports after each (see simulate). A GEMM whose counters
    could pass COUNT_LIMIT raises CountTooLarge (a ValueError) in either engine. `a_layout` says A
    is an im2col operand (chipviz.chip.conv.Im2colOperand): DRAM then reads each input pixel once.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    a, b = prepare_operands(a, b, config, check_finite)
    if engine == "cycle":
        c, stats, tr_ = simulate(a, b, config, trace_window, trace_budget, on_folds=on_folds, a_layout=a_layout)
        return GemmResult(c, stats, tr_)
    if trace_window is not None:
        raise ValueError("a trace needs engine='cycle'")
    return GemmResult(product(a, b, config), analyze(a.shape[0], a.shape[1], b.shape[1], config, a_layout))


def product(a: np.ndarray, b: np.ndarray, config: ChipConfig) -> np.ndarray:
    """C = A·B in the chip's number format (float32, or int8 operands summed exactly in int32),
    for operands already prepared; the analytic engine's result."""
    acc = config.spec.accumulator_dtype
    return a.astype(acc, copy=False) @ b.astype(acc, copy=False)
