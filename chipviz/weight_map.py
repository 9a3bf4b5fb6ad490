"""Which network weight sits in which processing element, for the GEMM the chip runs now.

Pure Python and numpy (no panel, no bokeh), so the network view, the PE array view and the
lessons can all ask the same questions and the answers are unit tested headless.

A layer's weights W (in × out) enter the training step's matrix multiplies C = A·B three ways
(the phase table, chipviz.nn.phases: `Phase.weights` says where W sits):

| phase            | GEMM          | A        | B      | where W[i, j] is        |
|------------------|---------------|----------|--------|-------------------------|
| forward          | Y = X·W       | X  (b×in) | W      | B[k=i, n=j]             |
| backward_data    | dX = dZ·Wᵀ    | dZ (b×out)| Wᵀ     | B[k=j, n=i]             |
| backward_weights | dW = Xᵀ·dZ    | Xᵀ (in×b) | dZ     | no W: C[m=i, n=j] = dW[i, j] |

and the dataflow (the dataflow table, chipviz.chip.dataflow_table) decides what a PE (r, c)
does with them in a fold whose tile starts at row r0 and column c0 of the spread dimensions
(see chipviz.chip.mapping). The matrix W sits in either stays in the PEs for the fold or moves
along the streamed dimension:

* it stays (ws and W; os and dW): PE(r, c) holds (accumulates) the one element whose
  dimensions on the rows and columns are r0 + r and c0 + c;
* it moves (os, is and W; ws, is and dW): PE(r, c) sees every element along the streamed
  dimension, e.g. os: column c0 + c of B flows down array column c, one element per cycle;
  is: row r0 + r of B streams along array row r.

The sentences that say so are the interface's (chipviz.i18n, keys "wm.*"): each answer carries
its note as a Message, rendered in English here and in the page's language by the views.

Indices in the API are 0-based (folds too); `describe()` strings count folds from 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from .chip.dataflow_table import DATAFLOW_TABLE, Dataflow
from .chip.mapping import Mapping
from .i18n import STRINGS, Message, t
from .nn.phases import GEMM_PHASES, PHASE_TABLE, PHASES, Phase

# Short phase names in labels ("L2 fwd Y = X·W"): the interface's English words "wm.phase.<id>".
PHASE_SHORT = MappingProxyType({p: t(f"wm.phase.{p}") if f"wm.phase.{p}" in STRINGS else p for p in PHASES})
# Cap on the index pairs listed in a describe() string.
DESCRIBE_LIMIT = 4
# The GEMM's matrices and their dimensions (C = A·B, A: M×K, B: K×N).
MATRIX_DIMS = MappingProxyType({"A": ("M", "K"), "B": ("K", "N"), "C": ("M", "N")})
# What a PE does with the matrix W (or dW) sits in, by (whether it stays in the PEs, whether it is dW).
ROLES = MappingProxyType({(True, False): "holds", (False, False): "streams",
                          (True, True): "accumulates", (False, True): "sums"})
# Who streams past a PE holding W, by the phase's direction (i18n keys).
WHO_STREAMS = MappingProxyType({"forward": "wm.who_inputs", "backward": "wm.who_gradients"})


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
    def facts(self) -> Phase:
        """This GEMM's row of the phase table (what A, B and C are, where W sits)."""
        return PHASE_TABLE[self.phase]

    @property
    def label(self) -> str:
        """e.g. "L2 fwd Y = X·W"."""
        return f"L{self.layer} {PHASE_SHORT[self.phase]} {self.name}"

    @property
    def weight_matrix(self) -> str:
        """The matrix of C = A·B that W (or, when the GEMM computes dW, dW) is: "B" or "C"."""
        return self.facts.weights[0]

    @property
    def weight_transposed(self) -> bool:
        """True when that matrix holds Wᵀ (dX = dZ·Wᵀ)."""
        return self.facts.weights.endswith("ᵀ")

    @property
    def uses_weights(self) -> bool:
        """Forward and backward-data GEMMs read W; the weight-gradient GEMM produces dW instead."""
        return self.weight_matrix != "C"

    @property
    def sizes(self) -> dict[str, int]:
        """{"M": m, "K": k, "N": n}."""
        return {"M": self.m, "K": self.k, "N": self.n}

    @property
    def weight_shape(self) -> tuple[int, int]:
        """(in, out) of this layer's W, as implied by the GEMM's shape."""
        p = self.facts
        size = {p.m: self.m, p.k: self.k, p.n: self.n}  # by meaning: "batch", "inputs", "units"
        return size["inputs"], size["units"]

    def to_weight(self, a: int, b: int) -> tuple[int, int]:
        """W index (i, j) of element [a, b] of B (forward, backward_data) or of C (backward_weights)."""
        return (b, a) if self.weight_transposed else (a, b)

    def from_weight(self, i: int, j: int) -> tuple[int, int]:
        """Inverse of to_weight."""
        return (j, i) if self.weight_transposed else (i, j)


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
    message: Message | None = field(default=None, compare=False, repr=False)  # `note` as data (i18n)

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
    message: Message | None = field(default=None, compare=False, repr=False)  # `note` as data (i18n)

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


def _noted(message: Message | None) -> dict:
    """The note fields of an answer: the Message and its English text."""
    return {"note": str(message) if message is not None else "", "message": message}


class WeightMap:
    """The weight ↔ PE correspondence of one GEMM folded onto an R×C array."""

    def __init__(self, dataflow: str, rows: int, cols: int, op: GemmOp):
        if dataflow not in DATAFLOW_TABLE:
            *first, last = DATAFLOW_TABLE
            raise ValueError(f"dataflow must be {', '.join(first)} or {last}, got {dataflow!r}")
        if rows < 1 or cols < 1:
            raise ValueError(f"the array needs at least one row and column, got {rows}×{cols}")
        self.dataflow = dataflow
        self.flow: Dataflow = DATAFLOW_TABLE[dataflow]
        self.rows = int(rows)
        self.cols = int(cols)
        self.op = op
        self.mapping = Mapping(dataflow, op.m, op.k, op.n, self.rows, self.cols)
        self.tiles = self.mapping.fold_tiles()
        # what the two tables say about this GEMM on this dataflow, worked out once
        phase, flow = op.facts, self.flow
        self.weights_stay = op.weight_matrix == flow.stationary  # W's (or dW's) matrix stays in the PEs
        self.role = ROLES[(self.weights_stay, not op.uses_weights)]  # what a mapped PE does with it
        self._dims = MATRIX_DIMS[op.weight_matrix]
        self._steps = op.sizes[flow.streamed]
        # the PE notes are the interface's sentences "wm.note_<dataflow>_<role>": each is written for
        # one layout, so the key names the dataflow; the values come from the tables
        self._note_key = f"wm.note_{flow.key}_{self.role}"
        self._note_values = dict(m=self._steps, last=self._steps - 1, what=getattr(phase, flow.stationary.lower()),
                                 who=Message(WHO_STREAMS[phase.direction]))

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
        op, flow = self.op, self.flow
        r0, r1, c0, c1 = self.tile(fold)
        base = dict(op=op, dataflow=self.dataflow, row=row, col=col, fold=fold, folds=self.folds,
                    gradient=not op.uses_weights)
        if row >= r1 - r0 or col >= c1 - c0:
            return PEWeights(**base, role="idle", weights=(),
                             **_noted(Message("wm.note_idle", r=r1 - r0, rows=self.rows, c=c1 - c0, cols=self.cols)))
        r, c = r0 + row, c0 + col  # indices into the spread dimensions (Sr, Sc)
        at = {flow.rows: r, flow.cols: c}
        first, second = self._dims
        if self.weights_stay:  # the PE keeps one element of W's matrix for the fold
            pairs = ((at[first], at[second]),)
        else:  # the element moves along the streamed dimension: the PE sees all of them, in time order
            steps = range(self._steps)
            pairs = (tuple((s, at[second]) for s in steps) if first == flow.streamed
                     else tuple((at[first], s) for s in steps))
        if op.weight_transposed:  # the matrix holds Wᵀ
            pairs = tuple((b, a) for a, b in pairs)
        note = Message(self._note_key, r=r, c=c, **self._note_values)
        return PEWeights(**base, role=self.role, weights=pairs, **_noted(note))

    # ----- weight → PEs -----
    def pes_for_weight(self, layer: int, i: int, j: int) -> WeightPlacement:
        """Where W[layer][i, j] (in_unit i, out_unit j) is on the array during this GEMM."""
        op, flow = self.op, self.flow
        n_in, n_out = op.weight_shape
        base = dict(op=op, dataflow=self.dataflow, layer=layer, i=i, j=j, folds=self.folds,
                    gradient=not op.uses_weights)
        if layer != op.layer:
            return WeightPlacement(**{**base, "gradient": False}, role="unused",
                                   note=f"the chip is running '{op.label}', which works on layer {op.layer}, "
                                        f"not layer {layer}.")
        if not (0 <= i < n_in and 0 <= j < n_out):
            raise ValueError(f"W{layer} is {n_in}×{n_out}; [{i}, {j}] is outside it")
        at = dict(zip(self._dims, op.from_weight(i, j)))  # its index in W's matrix
        role = self.role
        plain = f"W{layer}[{i}, {j}]"
        if self.weights_stay:  # one PE, in the one fold whose tile holds it
            sr, sc = at[flow.rows], at[flow.cols]
            f = self._fold_of(sr, sc)
            pes = ((f, int(sr - self.tiles[f, 0]), int(sc - self.tiles[f, 2])),)
            note = Message("wm.note_not_on_chip", weight=plain) if base["gradient"] else None
            return WeightPlacement(**base, role=role, pes=pes, **_noted(note))
        # it moves along the streamed dimension, down the array line of its other (spread) dimension
        step = at[flow.streamed]
        (spread,) = (d for d in at if d != flow.streamed)
        on_rows = spread == flow.rows
        lo, hi = (0, 1) if on_rows else (2, 3)
        folds = [f for f in range(self.folds) if self.tiles[f, lo] <= at[spread] < self.tiles[f, hi]]
        if on_rows:  # along array row at - r0, over the fold's used columns
            pes = tuple((f, int(at[spread] - self.tiles[f, 0]), c) for f in folds
                        for c in range(self.tiles[f, 3] - self.tiles[f, 2]))
        else:  # down array column at - c0, over the fold's used rows
            pes = tuple((f, r, int(at[spread] - self.tiles[f, 2])) for f in folds
                        for r in range(self.tiles[f, 1] - self.tiles[f, 0]))
        if base["gradient"]:
            samples = int(self.tiles[folds[0], 1] - self.tiles[folds[0], 0])
            note = Message("wm.note_w_sums", samples=samples, folds=len(folds), weight=plain)
        else:  # the sentence is written for one layout, so its key names the dataflow
            note = Message(f"wm.note_w_{flow.key}", k=step, n=step)
        return WeightPlacement(**base, role=role, pes=pes, step=step, **_noted(note))


def weights_on_pe(dataflow: str, rows: int, cols: int, op: GemmOp, fold: int, row: int, col: int) -> PEWeights:
    """Which weight PE(row, col) holds or uses in `fold` of `op` (see WeightMap.weights_on_pe)."""
    return WeightMap(dataflow, rows, cols, op).weights_on_pe(row, col, fold)


def pes_for_weight(layer: int, i: int, j: int, dataflow: str, rows: int, cols: int, op: GemmOp) -> WeightPlacement:
    """Where W[layer][i, j] is on the array during `op` (see WeightMap.pes_for_weight)."""
    return WeightMap(dataflow, rows, cols, op).pes_for_weight(layer, i, j)


__all__ = ["GemmOp", "PEWeights", "WeightPlacement", "WeightMap", "weights_on_pe", "pes_for_weight",
           "GEMM_PHASES", "PHASE_SHORT", "MATRIX_DIMS"]
