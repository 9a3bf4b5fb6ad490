"""What a chip is: array size, dataflow, number format, clock, memories, energy costs.

Every field is checked here, at the edge, so the engines can trust their inputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from .. import checks
from .dataflow_table import DATAFLOW_TABLE, Dataflow

DATAFLOWS = tuple(DATAFLOW_TABLE)  # ("ws", "os", "is")
DATAFLOW_NAMES = {key: flow.name for key, flow in DATAFLOW_TABLE.items()}
PRECISIONS = ("fp32", "int8")
MAX_ARRAY_SIDE = 256


@dataclass(frozen=True)
class Precision:
    """How operands and accumulators are stored, and what they cost per element."""

    name: str
    operand_dtype: type
    accumulator_dtype: type
    operand_bytes: int
    accumulator_bytes: int


PRECISION_SPECS = {
    "fp32": Precision("fp32", np.float32, np.float32, 4, 4),
    # TPU v1: 8-bit operands, 32-bit integer accumulators.
    "int8": Precision("int8", np.int8, np.int32, 1, 4),
}


@dataclass(frozen=True)
class EnergyTable:
    """Energy per action in picojoules (Horowitz, ISSCC 2014, 45 nm; Han et al. 2015).

    A MAC costs one multiply and one add in its precision; data movement is priced per byte
    so that int8 operands are cheaper to move than fp32 ones.
    """

    mac_fp32_pj: float = 4.6  # fp32 multiply 3.7 + fp32 add 0.9
    mac_int8_pj: float = 0.3  # int8 multiply 0.2 + int32 add 0.1
    vector_op_fp32_pj: float = 0.9  # one fp32 add-class operation on the vector unit
    vector_op_int8_pj: float = 0.1  # the same on int32 values
    register_pj_per_byte: float = 0.25  # ~1 pJ per 32-bit register access (PE-to-PE hop)
    sram_pj_per_byte: float = 1.25  # 5 pJ per 32-bit SRAM read
    dram_pj_per_byte: float = 160.0  # 640 pJ per 32-bit DRAM read

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            number = (isinstance(value, (int, float, np.integer, np.floating))
                      and not isinstance(value, (bool, np.bool_)))
            if not (number and np.isfinite(value) and value >= 0):
                raise ValueError(f"energy.{f.name} must be a finite number >= 0 (pJ), got {value!r}")

    def mac_pj(self, precision: str) -> float:
        return self.mac_int8_pj if precision == "int8" else self.mac_fp32_pj

    def vector_op_pj(self, precision: str) -> float:
        return self.vector_op_int8_pj if precision == "int8" else self.vector_op_fp32_pj


@dataclass(frozen=True)
class ChipConfig:
    """A systolic array of rows × cols processing elements and the memories that feed it.

    SRAM sizes are per operand buffer (SCALE-Sim's ifmap, filter and ofmap SRAMs) in KiB;
    DRAM bandwidth is in bytes per clock cycle.
    """

    rows: int = 8
    cols: int = 8
    dataflow: str = "ws"
    precision: str = "fp32"
    clock_mhz: float = 700.0
    ifmap_sram_kib: float = 512.0
    filter_sram_kib: float = 512.0
    ofmap_sram_kib: float = 256.0
    dram_bytes_per_cycle: float = 32.0
    energy: EnergyTable = field(default_factory=EnergyTable)

    def __post_init__(self):
        for name in ("rows", "cols"):
            checks.whole(name, getattr(self, name), 1, MAX_ARRAY_SIDE)
        checks.one_of("dataflow", self.dataflow, DATAFLOWS)
        checks.one_of("precision", self.precision, PRECISIONS)
        checks.number("clock_mhz", self.clock_mhz, 1.0, 10_000.0, "MHz")
        for name in ("ifmap_sram_kib", "filter_sram_kib", "ofmap_sram_kib"):
            checks.number(name, getattr(self, name), 1.0, 1_048_576.0, "KiB")
        checks.number("dram_bytes_per_cycle", self.dram_bytes_per_cycle, 0.01, 1_000_000.0, "bytes/cycle")
        if not isinstance(self.energy, EnergyTable):
            raise ValueError(f"energy must be an EnergyTable, got {type(self.energy).__name__}")
        object.__setattr__(self, "_hash", hash(tuple(getattr(self, f.name) for f in fields(self))))

    def __hash__(self) -> int:  # computed once: configs key the analytic model's cache in hot loops
        return self._hash

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def spec(self) -> Precision:
        return PRECISION_SPECS[self.precision]

    @property
    def flow(self) -> Dataflow:
        """The dataflow's row of the dataflow table: what goes where on the array."""
        return DATAFLOW_TABLE[self.dataflow]

    def with_(self, **changes) -> "ChipConfig":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


def parse_array(text: str) -> tuple[int, int]:
    """'8x8' -> (8, 8); anything else raises ValueError saying what is expected."""
    parts = str(text).lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
        raise ValueError(f"array must look like ROWSxCOLS, e.g. 8x8, got {text!r}")
    rows, cols = (int(p) for p in parts)
    for name, value in (("array rows", rows), ("array cols", cols)):
        if not 1 <= value <= MAX_ARRAY_SIDE:
            raise ValueError(f"{name} must be from 1 to {MAX_ARRAY_SIDE}, got {value}")
    return rows, cols

