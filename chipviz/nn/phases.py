"""The phases of a training step as one table: which work each is, stated once.

A layer computes Z = X·W + b (X: batch × inputs, W: inputs × units). Backpropagation runs two
GEMMs per layer and the optimizer updates every parameter:

| phase            | direction | GEMM C = A·B  | A   | B   | M      | K      | N      | W sits   |
|------------------|-----------|---------------|-----|-----|--------|--------|--------|----------|
| forward          | forward   | Y = X·W       | X   | W   | batch  | inputs | units  | as B     |
| backward_data    | backward  | dX = dZ·Wᵀ    | dZ  | Wᵀ  | batch  | units  | inputs | as Bᵀ    |
| backward_weights | backward  | dW = Xᵀ·dZ    | Xᵀ  | dZ  | inputs | batch  | units  | result C |
| update           | update    | (vector unit) |     |     |        |        |        |          |

dZ = dL/dZ is the gradient at the layer's pre-activation Z = X·W + b (after the activation's
derivative). A convolution layer (conv.py) runs the same three rows on its unrolled input,
X = im2col(input) (chipviz.chip.conv): "batch" then counts batch × output pixels, "inputs" the
window kh·kw·C and "units" the filters; col2im, which adds dX back onto the input pixels, and
pooling run on the vector unit inside the backward_data and forward phases, so no phase row is
added. The op names are those in `Operation.name`; the app and the lessons match them. The phase ids, in this order, are
`PHASES`. On an int8 chip the GEMMs of the forward direction run on quantised operands (and
their name gets INT8_SUFFIX); every other GEMM, and the vector unit, stays fp32.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

DIRECTIONS = ("forward", "backward", "update")
INT8_SUFFIX = " (int8)"


@dataclass(frozen=True)
class Phase:
    """One kind of work in a training step."""

    id: str  # "forward", "backward_data", "backward_weights", "update"
    direction: str  # "forward", "backward" or "update"
    op: str | None  # the GEMM's name in Operation.name, e.g. "Y = X·W"; None: no GEMM (update)
    a: str | None  # what the GEMM's A, B and C are
    b: str | None
    c: str | None
    m: str | None  # what the GEMM's M, K and N count: "batch", "inputs" (fan-in) or "units" (fan-out)
    k: str | None
    n: str | None
    weights: str | None  # where W sits in the GEMM: "B", "Bᵀ", or "C" (the GEMM computes dW)
    vector_op: str  # the vector-unit work of this phase, a template over {f} (activation) or {optimizer}
    first_layer: bool = True  # whether layer 1 does this work (its dX is not computed: nothing needs it)

    @property
    def is_gemm(self) -> bool:
        return self.op is not None

    def shape(self, batch: int, inputs: int, units: int) -> tuple[int, int, int]:
        """(M, K, N) of this phase's GEMM for a layer of `inputs` → `units` and a batch."""
        size = {"batch": batch, "inputs": inputs, "units": units}
        return size[self.m], size[self.k], size[self.n]


FORWARD = Phase("forward", "forward", "Y = X·W", a="X", b="W", c="Y", m="batch", k="inputs", n="units",
                weights="B", vector_op="+ b, {f}")
BACKWARD_DATA = Phase("backward_data", "backward", "dX = dZ·Wᵀ", a="dZ", b="Wᵀ", c="dX", m="batch", k="units",
                      n="inputs", weights="Bᵀ", vector_op="× {f}′", first_layer=False)
BACKWARD_WEIGHTS = Phase("backward_weights", "backward", "dW = Xᵀ·dZ", a="Xᵀ", b="dZ", c="dW", m="inputs",
                         k="batch", n="units", weights="C", vector_op="db = Σ dZ")
UPDATE = Phase("update", "update", None, a=None, b=None, c=None, m=None, k=None, n=None, weights=None,
               vector_op="{optimizer} update")

PHASE_TABLE = MappingProxyType({p.id: p for p in (FORWARD, BACKWARD_DATA, BACKWARD_WEIGHTS, UPDATE)})
PHASES = tuple(PHASE_TABLE)  # ("forward", "backward_data", "backward_weights", "update"), in step order
GEMM_PHASES = tuple(p.id for p in PHASE_TABLE.values() if p.is_gemm)
LOSS_PHASE = FORWARD.id  # the loss and its gradient are computed at the end of the forward pass
