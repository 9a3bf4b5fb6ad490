"""How a GEMM C = A·B (A: M×K, B: K×N) is folded onto an R×C array (SCALE-Sim v3 conventions).

Each dataflow spreads two GEMM dimensions over the array's rows (Sr) and columns (Sc) and
streams the third (T) through time; which ones, and what stays in the PEs, is the dataflow
table's (chipviz/chip/dataflow_table.py). A dimension larger than the array is cut into
folds that run one after another, column folds outer and row folds inner; every fold fills
and drains completely, so a partial edge fold takes as long as a full one.

When the row dimension is the reduction (K: ws and is), the partial sums of one output leave
the array once per row fold and are added up in the output buffer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import ChipConfig
from .dataflow_table import DATAFLOW_TABLE, Dataflow


@dataclass(frozen=True)
class Mapping:
    """The fold plan of one GEMM on one chip: every number here follows from the shapes."""

    dataflow: str
    m: int
    k: int
    n: int
    rows: int
    cols: int

    @classmethod
    def of(cls, m: int, k: int, n: int, config: ChipConfig) -> "Mapping":
        for name, value in (("M", m), ("K", k), ("N", n)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GEMM dimension {name} must be a whole number >= 1, got {value!r}")
        return cls(config.dataflow, int(m), int(k), int(n), config.rows, config.cols)

    @property
    def flow(self) -> Dataflow:
        """This dataflow's row of the dataflow table."""
        return DATAFLOW_TABLE[self.dataflow]

    @property
    def spread(self) -> tuple[int, int, int]:
        """(Sr, Sc, T): the GEMM dimensions on rows, on columns and through time."""
        return self.flow.spread(self.m, self.k, self.n)

    @property
    def row_folds(self) -> int:
        return -(-self.spread[0] // self.rows)

    @property
    def col_folds(self) -> int:
        return -(-self.spread[1] // self.cols)

    @property
    def folds(self) -> int:
        return self.row_folds * self.col_folds

    @property
    def preload_cycles(self) -> int:
        """Cycles spent shifting the stationary operand in before streaming (ws, is)."""
        return self.rows if self.flow.preloads else 0

    @property
    def cycles_per_fold(self) -> int:
        return self.flow.cycles_per_fold(self.rows, self.cols, self.spread[2])

    @property
    def reduction_on_rows(self) -> bool:
        """In ws and is the rows carry K, so outputs of one tile come out once per row fold."""
        return self.flow.reduction_on_rows

    def fold_tiles(self) -> np.ndarray:
        """One row per fold, in run order: [row_start, row_stop, col_start, col_stop]."""
        sr, sc, _ = self.spread
        r0 = np.arange(self.row_folds) * self.rows
        c0 = np.arange(self.col_folds) * self.cols
        cc, rr = np.meshgrid(c0, r0, indexing="ij")  # column folds outer, row folds inner
        rr, cc = rr.ravel(), cc.ravel()
        return np.stack([rr, np.minimum(rr + self.rows, sr), cc, np.minimum(cc + self.cols, sc)], axis=1).astype(
            np.int64
        )

    def fold_flags(self) -> np.ndarray:
        """Per fold, whether it is the first use of its row tile of the moving operand, the first
        use of its column tile of the other one, and whether it completes its outputs.

        Columns: [moving_first_use, other_first_use, outputs_final, psum_first]. For ws/is
        "other" is the stationary tile (used once); for os it is B's column tile.
        """
        tiles = self.fold_tiles()
        row_index = tiles[:, 0] // self.rows
        col_index = tiles[:, 2] // self.cols
        last_row = self.row_folds - 1
        if self.reduction_on_rows:
            moving_first = col_index == 0  # the moving tile of row fold r is reused by every column fold
            other_first = np.ones_like(moving_first)  # each stationary tile is loaded exactly once
            final = row_index == last_row
            psum_first = row_index == 0
        else:
            moving_first = col_index == 0  # A's row tile returns for every column fold
            other_first = row_index == 0  # B's column tile is reused by consecutive row folds
            final = np.ones_like(moving_first)
            psum_first = np.ones_like(moving_first)
        return np.stack([moving_first, other_first, final, psum_first], axis=1).astype(np.bool_)

    def describe(self) -> str:
        sr, sc, t = self.spread
        return (
            f"{self.dataflow}: Sr={sr} on {self.rows} rows, Sc={sc} on {self.cols} cols, T={t} in time; "
            f"{self.row_folds}×{self.col_folds} = {self.folds} folds of {self.cycles_per_fold} cycles"
        )
