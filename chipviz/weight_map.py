"""Which network weight sits in which processing element, for the GEMM the chip runs now.

Pure Python and numpy (no panel, no bokeh), so the network view, the PE array view and the
lessons can all ask the same questions and the answers are unit tested headless.

A layer's weights W (in × out) enter the training step's matrix multiplies C = A·B three ways:

| phase            | GEMM          | A        | B      | where W[i, j] is        |
|------------------|---------------|----------|--------|-------------------------|
| forward          | Y = X·W       | X  (b×in) | W      | B[k=i, n=j]             |
| backward_data    | dX = dY·Wᵀ    | dY (b×out)| Wᵀ     | B[k=j, n=i]             |
| backward_weights | dW = Xᵀ·dY    | Xᵀ (in×b) | dY     | no W: C[m=i, n=j] = dW[i, j] |

and the dataflow decides what a PE (r, c) does with them in a fold whose tile starts at row
r0 and column c0 of the spread dimensions (see chipviz.chip.mapping):

* ws: PE(r, c) holds B[r0 + r, c0 + c] for the whole fold (A streams through);
* os: PE(r, c) accumulates C[r0 + r, c0 + c]; column c0 + c of B flows down array column c,
  one element per cycle, so the PE sees every B[k, c0 + c];
* is: PE(r, c) holds A[c0 + c, r0 + r] (an input, not a weight); row r0 + r of B streams
  along array row r, so the PE sees every B[r0 + r, n].

Indices in the API are 0-based (folds too); `describe()` strings count folds from 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .chip.mapping import Mapping

GEMM_PHASES = ("forward", "backward_data", "backward_weights")
PHASE_SHORT = {"forward": "fwd", "backward_data": "bwd data", "backward_weights": "bwd weights",
               "update": "update"}
# Cap on the index pairs listed in a describe() string.
DESCRIBE_LIMIT = 4


@dataclass(frozen=True)
class GemmOp:
    """The identity and shape of one of a training step's matrix multiplies (C = A·B, A: M×K, B: K×N)."""

    layer: int  # 1-based: W1 is the first layer's weights
    phase: str
    name: str
    m: int
    k: int
    n: int

    def __post_init__(self):
        if self.phase not in GEMM_PHASES:
            raise ValueError(f"a GEMM's phase must be one of {', '.join(GEMM_PHASES)}, got {self.phase!r}")
        if self.layer < 1:
            raise ValueError(f"a GEMM's layer is 1-based, got {self.layer}")

    @classmethod
    def from_operation(cls, op) -> "GemmOp | None":
        """From a chipviz.nn.on_chip.Operation; None when the operation is not a matrix multiply."""
        if not getattr(op, "is_gemm", False):
            return None
        s = op.stats
        return cls(op.layer, op.phase, op.name, int(s.m), int(s.k), int(s.n))

    @property
    def label(self) -> str:
        """e.g. "L2 fwd Y = X·W"."""
        return f"L{self.layer} {PHASE_SHORT[self.phase]} {self.name}"

    @property
    def uses_weights(self) -> bool:
        """Forward and backward-data GEMMs read W; the weight-gradient GEMM produces dW instead."""
        return self.phase != "backward_weights"

    @property
    def weight_shape(self) -> tuple[int, int]:
        """(in, out) of this layer's W, as implied by the GEMM's shape."""
        return {"forward": (self.k, self.n), "backward_data": (self.n, self.k),
                "backward_weights": (self.m, self.n)}[self.phase]

    def to_weight(self, a: int, b: int) -> tuple[int, int]:
        """W index (i, j) of element [a, b] of B (forward, backward_data) or of C (backward_weights)."""
        return (b, a) if self.phase == "backward_data" else (a, b)

    def from_weight(self, i: int, j: int) -> tuple[int, int]:
        """Inverse of to_weight."""
        return (j, i) if self.phase == "backward_data" else (i, j)


def _wname(layer: int, i: int, j: int, gradient: bool = False) -> str:
    return f"{'dW' if gradient else 'W'}{layer}[{i}, {j}]"


def _fold_text(fold: int, folds: int) -> str:
    return f"fold {fold + 1} of {folds}"


def _list_text(layer: int, pairs, gradient: bool) -> str:
    pairs = list(pairs)
    shown = ", ".join(_wname(layer, i, j, gradient) for i, j in pairs[:DESCRIBE_LIMIT])
    return shown + (f", … ({len(pairs)} in all)" if len(pairs) > DESCRIBE_LIMIT else "")


def _range_text(name: str, lo: int, hi: int) -> str:
    return f"{name} = {lo}" if hi - lo == 1 else f"{name} = {lo}…{hi - 1}"


@dataclass(frozen=True)
class PEWeights:
    """What PE(row, col) does with the layer's weights during one fold of a GEMM."""

    op: GemmOp
    dataflow: str
    row: int
    col: int
    fold: int
    folds: int
    role: str  # "holds", "streams" (weights pass through), "accumulates", "sums" (dW partial sums), "idle"
    weights: tuple[tuple[int, int], ...]  # W (or dW, if gradient) indices (in_unit, out_unit), in time order
    gradient: bool  # True when `weights` index dW elements the PE works on, not W values it uses
    note: str = ""

    @property
    def layer(self) -> int:
        return self.op.layer

    @property
    def pairs(self) -> np.ndarray:
        """The weights as an (n, 2) int array of (in_unit, out_unit)."""
        return np.asarray(self.weights, dtype=np.int64).reshape(-1, 2)

    def describe(self) -> str:
        where = (f"PE({self.row}, {self.col}) in {_fold_text(self.fold, self.folds)} of '{self.op.label}' "
                 f"({self.dataflow})")
        if self.role == "idle":
            return f"{where} is idle: {self.note}"
        text = {
            "holds": f"{where} holds {_list_text(self.layer, self.weights, False)}",
            "streams": f"{where} sees {_list_text(self.layer, self.weights, False)} stream through",
            "accumulates": f"{where} accumulates {_list_text(self.layer, self.weights, True)}",
            "sums": f"{where} adds partial sums of {_list_text(self.layer, self.weights, True)}",
        }[self.role]
        return f"{text}. {self.note}".strip()


@dataclass(frozen=True)
class WeightPlacement:
    """Where W[i, j] of a layer (or its gradient dW[i, j]) is on the array during a GEMM."""

    op: GemmOp | None
    dataflow: str
    layer: int
    i: int
    j: int
    folds: int
    role: str  # as PEWeights.role, or "unused" when this GEMM does not involve the weight
    pes: tuple[tuple[int, int, int], ...] = field(default=())  # (fold, row, col) in run order
    step: int | None = None  # the index of the streamed dimension at which it passes (os, is, sums)
    gradient: bool = False
    note: str = ""

    @property
    def fold_indices(self) -> tuple[int, ...]:
        return tuple(sorted({f for f, _, _ in self.pes}))

    def describe(self) -> str:
        name = _wname(self.layer, self.i, self.j, self.gradient)
        if self.op is None or self.role == "unused":
            return f"{_wname(self.layer, self.i, self.j)}: {self.note}"
        label = f"'{self.op.label}' ({self.dataflow})"
        folds = self.fold_indices
        if self.role in ("holds", "accumulates"):
            f, r, c = self.pes[0]
            verb = "sits in" if self.role == "holds" else "is accumulated in"
            return f"{name} {verb} PE({r}, {c}) during {_fold_text(f, self.folds)} of {label}. {self.note}".strip()
        rows = sorted({r for _, r, _ in self.pes})
        cols = sorted({c for _, _, c in self.pes})
        fold_list = ", ".join(str(f + 1) for f in folds)
        fold_text = f"fold{'s' if len(folds) > 1 else ''} {fold_list} of {self.folds}"
        if len(cols) == 1:
            line = f"down column {cols[0]} (PE rows {rows[0]}…{rows[-1]})"
        else:
            line = f"along row {rows[0]} (PE columns {cols[0]}…{cols[-1]})"
        verb = "streams" if self.role == "streams" else "is summed"
        return f"{name} {verb} {line} in {fold_text} of {label}. {self.note}".strip()


class WeightMap:
    """The weight ↔ PE correspondence of one GEMM folded onto an R×C array."""

    def __init__(self, dataflow: str, rows: int, cols: int, op: GemmOp):
        if dataflow not in ("ws", "os", "is"):
            raise ValueError(f"dataflow must be ws, os or is, got {dataflow!r}")
        if rows < 1 or cols < 1:
            raise ValueError(f"the array needs at least one row and column, got {rows}×{cols}")
        self.dataflow = dataflow
        self.rows = int(rows)
        self.cols = int(cols)
        self.op = op
        self.mapping = Mapping(dataflow, op.m, op.k, op.n, self.rows, self.cols)
        self.tiles = self.mapping.fold_tiles()

    @classmethod
    def for_operation(cls, op) -> "WeightMap | None":
        """From an Operation of a step report (its stats carry the chip's dataflow and shape)."""
        gop = GemmOp.from_operation(op)
        if gop is None:
            return None
        return cls(op.stats.dataflow, op.stats.rows, op.stats.cols, gop)

    @property
    def folds(self) -> int:
        return len(self.tiles)

    def tile(self, fold: int) -> tuple[int, int, int, int]:
        if not 0 <= fold < self.folds:
            raise ValueError(f"fold must be 0…{self.folds - 1} for '{self.op.label}', got {fold}")
        r0, r1, c0, c1 = (int(v) for v in self.tiles[fold])
        return r0, r1, c0, c1

    def _fold_of(self, spread_row: int, spread_col: int) -> int:
        rf, cf = spread_row // self.rows, spread_col // self.cols
        return cf * self.mapping.row_folds + rf  # column folds outer, row folds inner

    # ----- PE → weights -----
    def weights_on_pe(self, row: int, col: int, fold: int = 0) -> PEWeights:
        """Which W[layer][in_unit, out_unit] PE(row, col) holds or uses (or which dW it builds) in `fold`."""
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            raise ValueError(f"PE({row}, {col}) is outside the {self.rows}×{self.cols} array")
        op, df = self.op, self.dataflow
        r0, r1, c0, c1 = self.tile(fold)
        base = dict(op=op, dataflow=df, row=row, col=col, fold=fold, folds=self.folds,
                    gradient=not op.uses_weights)
        if row >= r1 - r0 or col >= c1 - c0:
            return PEWeights(**base, role="idle", weights=(),
                             note=f"this partial fold's tile uses only {r1 - r0} of {self.rows} rows and "
                                  f"{c1 - c0} of {self.cols} columns")
        r, c = r0 + row, c0 + col  # indices into the spread dimensions (Sr, Sc)
        if op.uses_weights:
            if df == "ws":  # B[r, c] is stationary
                i, j = op.to_weight(r, c)
                who = "its inputs" if op.phase == "forward" else "the output gradients"
                return PEWeights(**base, role="holds", weights=((i, j),),
                                 note=f"Every row of {who} streams past it ({op.m} in all).")
            if df == "os":  # C[r, c] stays; column c of B flows down
                pairs = tuple(op.to_weight(k, c) for k in range(op.k))
                return PEWeights(**base, role="streams", weights=pairs,
                                 note=f"It accumulates {'Y' if op.phase == 'forward' else 'dX'}[{r}, {c}] "
                                      f"(batch sample {r}), one weight per cycle.")
            # is: A[c, r] stationary; row r of B streams along array row `row`
            pairs = tuple(op.to_weight(r, n) for n in range(op.n))
            return PEWeights(**base, role="streams", weights=pairs,
                             note=f"It holds no weight: it keeps {'X' if op.phase == 'forward' else 'dY'}[{c}, {r}] "
                                  f"(batch sample {c}) and the weights pass through, one per cycle.")
        # backward_weights: dW = Xᵀ·dY; C[m, n] is dW[m, n]
        if df == "os":
            return PEWeights(**base, role="accumulates", weights=((r, c),),
                             note=f"It sums X[b, {r}]·dY[b, {c}] over the batch (b = 0…{op.k - 1}).")
        if df == "ws":  # B = dY[r, c] stationary; partial sums of C[:, c] pass down
            pairs = tuple((m, c) for m in range(op.m))
            return PEWeights(**base, role="sums", weights=pairs,
                             note=f"It holds dY[{r}, {c}] (batch sample {r}) and adds its share of each "
                                  f"gradient in column {c} of dW.")
        # is: A = Xᵀ[c, r] stationary; partial sums of C[c, :] pass down (transposed output)
        pairs = tuple((c, n) for n in range(op.n))
        return PEWeights(**base, role="sums", weights=pairs,
                         note=f"It holds X[{r}, {c}] (batch sample {r}, input unit {c}) and adds its share of "
                              f"each gradient in row {c} of dW.")

    # ----- weight → PEs -----
    def pes_for_weight(self, layer: int, i: int, j: int) -> WeightPlacement:
        """Where W[layer][i, j] (in_unit i, out_unit j) is on the array during this GEMM."""
        op, df = self.op, self.dataflow
        n_in, n_out = op.weight_shape
        base = dict(op=op, dataflow=df, layer=layer, i=i, j=j, folds=self.folds)
        if layer != op.layer:
            return WeightPlacement(**base, role="unused",
                                   note=f"the chip is running '{op.label}', which works on layer {op.layer}, "
                                        f"not layer {layer}.")
        if not (0 <= i < n_in and 0 <= j < n_out):
            raise ValueError(f"W{layer} is {n_in}×{n_out}; [{i}, {j}] is outside it")
        rows_used = lambda f: range(self.tiles[f, 1] - self.tiles[f, 0])  # noqa: E731
        cols_used = lambda f: range(self.tiles[f, 3] - self.tiles[f, 2])  # noqa: E731
        if op.uses_weights:
            k, n = op.from_weight(i, j)  # element B[k, n]
            if df == "ws":
                f = self._fold_of(k, n)
                r0, c0 = self.tiles[f, 0], self.tiles[f, 2]
                return WeightPlacement(**base, role="holds", pes=((f, int(k - r0), int(n - c0)),))
            if df == "os":  # B[:, n] flows down array column n - c0 in every fold holding column n
                folds = [f for f in range(self.folds) if self.tiles[f, 2] <= n < self.tiles[f, 3]]
                pes = tuple((f, r, int(n - self.tiles[f, 2])) for f in folds for r in rows_used(f))
                return WeightPlacement(**base, role="streams", pes=pes, step=k,
                                       note=f"It enters the column at cycle {k} of each fold, reaches PE(r, c) at "
                                            f"cycle {k} + r + c and meets every row of the batch.")
            # is: B[k, :] streams along array row k - r0 in every fold holding row k
            folds = [f for f in range(self.folds) if self.tiles[f, 0] <= k < self.tiles[f, 1]]
            pes = tuple((f, int(k - self.tiles[f, 0]), c) for f in folds for c in cols_used(f))
            return WeightPlacement(**base, role="streams", pes=pes, step=n,
                                   note=f"It enters the row at step {n} of each fold and meets every input held "
                                        f"there; the PEs hold inputs, not weights.")
        # backward_weights: the GEMM produces dW[i, j] = C[i, j]
        m, n = i, j
        base["gradient"] = True
        if df == "os":
            f = self._fold_of(m, n)
            return WeightPlacement(**base, role="accumulates",
                                   pes=((f, int(m - self.tiles[f, 0]), int(n - self.tiles[f, 2])),),
                                   note=f"W{layer}[{i}, {j}] itself is not on the chip in this GEMM.")
        spread_col = n if df == "ws" else m  # ws: Sc = N; is: Sc = M (the output leaves transposed)
        folds = [f for f in range(self.folds) if self.tiles[f, 2] <= spread_col < self.tiles[f, 3]]
        pes = tuple((f, r, int(spread_col - self.tiles[f, 2])) for f in folds for r in rows_used(f))
        step = m if df == "ws" else n
        return WeightPlacement(**base, role="sums", pes=pes, step=step,
                               note=f"Each fold adds the share of {len(rows_used(folds[0]))} batch samples; "
                                    f"the output buffer adds up the {len(folds)} fold(s). W{layer}[{i}, {j}] "
                                    f"itself is not on the chip in this GEMM.")


def weights_on_pe(dataflow: str, rows: int, cols: int, op: GemmOp, fold: int, row: int, col: int) -> PEWeights:
    """Which weight PE(row, col) holds or uses in `fold` of `op` (see WeightMap.weights_on_pe)."""
    return WeightMap(dataflow, rows, cols, op).weights_on_pe(row, col, fold)


def pes_for_weight(layer: int, i: int, j: int, dataflow: str, rows: int, cols: int, op: GemmOp) -> WeightPlacement:
    """Where W[layer][i, j] is on the array during `op` (see WeightMap.pes_for_weight)."""
    return WeightMap(dataflow, rows, cols, op).pes_for_weight(layer, i, j)


__all__ = ["GemmOp", "PEWeights", "WeightPlacement", "WeightMap", "weights_on_pe", "pes_for_weight",
           "GEMM_PHASES", "PHASE_SHORT"]
