"""The three dataflows as one table: what goes where on the array, stated once.

A GEMM C = A·B (A: M×K, B: K×N) runs on an R×C array of PEs. A dataflow spreads two of the
GEMM's dimensions over the array's rows and columns and streams the third through time,
keeps one matrix in the PEs for a whole fold (the stationary one) and moves the others in
from the left and top edges (SCALE-Sim v3 conventions):

| dataflow | rows | cols | time | stays | left edge     | top edge                | leaves           | cycles per fold |
|----------|------|------|------|-------|---------------|-------------------------|------------------|-----------------|
| ws       | K    | N    | M    | B     | row m of A    | row k of B (preload)    | row m of C ↓     | 2R + C + M − 2  |
| is       | K    | M    | N    | A     | column n of B | column k of A (preload) | column n of C ↓  | 2R + C + N − 2  |
| os       | M    | N    | K    | C     | column k of A | row k of B              | C tile, read out | K + R + C − 2   |

(↓: partial sums leave the bottom edge; the output buffer adds up those of successive row folds.)

Every other module of the chip (mapping, analytic counters, memory roles, SRAM reads, trace
roles, names) reads these facts from `DATAFLOW_TABLE` instead of testing dataflow names.
The numba kernels in `dataflows/` encode the same movements register by register; the
tests hold the two to exact agreement.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

DIMENSIONS = ("M", "K", "N")
OPERANDS = ("A", "B", "C")


@dataclass(frozen=True)
class Dataflow:
    """One dataflow's facts. Dimensions are "M", "K", "N"; matrices "A", "B", "C"; "-" means none."""

    key: str  # "ws", "os", "is"
    name: str  # "weight stationary"
    rows: str  # the GEMM dimension spread over the array's rows (Sr)
    cols: str  # ... over its columns (Sc)
    streamed: str  # ... streamed through time (T)
    stationary: str  # the matrix whose tile stays in the PEs during a fold
    from_left: str  # the matrix whose values enter the left edge and move right
    from_top: str  # the matrix whose values enter the top edge and move down while streaming ("-": none)
    left_in: str  # what enters the left edge, in the GEMM's own terms
    top_in: str  # what enters the top edge
    bottom_out: str  # what leaves the bottom edge ("-": nothing)
    leaves: str  # what leaves the array and where it goes, in a sentence
    transposed: bool  # simulated as weight stationary on the transposed GEMM Cᵀ = Bᵀ·Aᵀ

    def __post_init__(self):
        if sorted((self.rows, self.cols, self.streamed)) != sorted(DIMENSIONS):
            raise ValueError(f"{self.key}: rows, cols and streamed must be M, K and N once each")
        if self.stationary not in OPERANDS or self.from_left not in ("A", "B"):
            raise ValueError(f"{self.key}: bad operand roles")

    @property
    def output_stationary(self) -> bool:
        """C stays in the PEs (os): both operands stream in, the finished tile is read out."""
        return self.stationary == "C"

    @property
    def preloads(self) -> bool:
        """An operand (A or B) stays: its tile is shifted in from the top, R cycles, before streaming."""
        return not self.output_stationary

    @property
    def reduction_on_rows(self) -> bool:
        """K runs down the rows: one output's partial sums leave once per row fold and are added up."""
        return self.rows == "K"

    @property
    def moving(self) -> str:
        """The operand the kernel streams from the left edge ("A" or "B")."""
        return self.from_left

    @property
    def other(self) -> str:
        """The other operand: the stationary one (ws, is), or the one entering the top edge (os)."""
        return "B" if self.from_left == "A" else "A"

    @property
    def cycles_per_fold_formula(self) -> str:
        """SCALE-Sim's cycles per fold in R, C and the streamed dimension, e.g. "2R + C + M − 2"."""
        if self.preloads:
            return f"2R + C + {self.streamed} − 2"
        return f"{self.streamed} + R + C − 2"

    def cycles_per_fold(self, rows: int, cols: int, streamed: int) -> int:
        """Every fold fills and drains: T + R + C − 2 cycles, plus R preload cycles if an operand stays."""
        return streamed + rows + cols - 2 + (rows if self.preloads else 0)

    def spread(self, m: int, k: int, n: int) -> tuple[int, int, int]:
        """(Sr, Sc, T): the sizes of the dimensions on the rows, on the columns and through time."""
        size = {"M": m, "K": k, "N": n}
        return size[self.rows], size[self.cols], size[self.streamed]

    def operand_order(self, a, b) -> tuple:
        """(moving, other) of anything given per operand (A's, B's): the kernels' roles."""
        return (a, b) if self.from_left == "A" else (b, a)

    @property
    def roles(self) -> dict[str, str]:
        """What each register plane and edge of a trace holds (chipviz.chip.trace.Trace.roles)."""
        return {"rows": self.rows, "cols": self.cols, "streamed": self.streamed, "stationary": self.stationary,
                "from_left": self.from_left, "from_top": self.from_top, "psum": "C", "left_in": self.left_in,
                "top_in": self.top_in, "bottom_out": self.bottom_out}


DATAFLOW_TABLE = MappingProxyType({
    "ws": Dataflow(
        key="ws", name="weight stationary", rows="K", cols="N", streamed="M", stationary="B",
        from_left="A", from_top="-", left_in="row m of A", top_in="row k of B (preload)",
        bottom_out="row m of C",
        leaves="partial sums of row m of C leave the bottom edge; the output buffer adds up those of "
               "successive row folds (the K reduction)",
        transposed=False),
    "os": Dataflow(
        key="os", name="output stationary", rows="M", cols="N", streamed="K", stationary="C",
        from_left="A", from_top="B", left_in="column k of A", top_in="row k of B", bottom_out="-",
        leaves="each PE keeps one element of C; the finished tile is read out of the PEs after its fold",
        transposed=False),
    "is": Dataflow(
        key="is", name="input stationary", rows="K", cols="M", streamed="N", stationary="A",
        from_left="B", from_top="-", left_in="column n of B", top_in="column k of A (preload)",
        bottom_out="column n of C",
        leaves="partial sums of column n of C leave the bottom edge; the output buffer adds up those of "
               "successive row folds (the K reduction)",
        transposed=True),
})


def dataflow(key: str) -> Dataflow:
    """The table row of dataflow `key` (ValueError naming the choices otherwise)."""
    try:
        return DATAFLOW_TABLE[key]
    except (KeyError, TypeError):
        raise ValueError(f"dataflow must be one of {', '.join(DATAFLOW_TABLE)}, got {key!r}") from None
