"""What a sweep runs on each chip: a workload, a list of GEMMs (and vector-unit work).

Three sources, one result (`Workload`):
- `gemm_list`: GEMMs given as (M, K, N);
- `topology`: a SCALE-Sim topology CSV (chipviz.chip.topology): GEMM rows as they are,
  convolution rows lowered to their im2col GEMM, whose A keeps its layout (`a_layout`) so that
  DRAM reads each input pixel once;
- `training_step`: one training step of a network as `chipviz train --layers` describes it:
  every forward and backward GEMM and the vector unit's work (bias, activations, loss,
  update), taken from a step of the network itself on the analytic engine, so the shapes are
  the network's own (nothing here re-derives them). On an int8 chip the forward GEMMs run in
  int8 and the rest in fp32 (chipviz.nn.on_chip); `Gemm.precision` says which.

`Workload.gemms` is the one place that says which GEMMs a sweep evaluates and how: a GEMM
without `a_layout` goes through the vectorised model, one with it through analyze() itself.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass

import numpy as np

from ..chip import ChipConfig
from ..chip.topology import read_topology
from ..nn.phases import PHASE_TABLE

CHIP, FP32 = "chip", "fp32"  # a GEMM's number format: the chip's own, or fp32 whatever the chip


@dataclass(frozen=True)
class Gemm:
    """One GEMM of a workload: M×K by K×N, in the chip's format (CHIP) or always fp32 (FP32)."""

    name: str
    m: int
    k: int
    n: int
    precision: str = CHIP
    a_layout: object = None  # chipviz.chip.conv.Im2colOperand: A is a convolution's unrolled input
    phase: str = "forward"
    layer: int = 0

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n


@dataclass(frozen=True)
class VectorWork:
    """Elementwise work on the vector unit (always fp32, as chipviz.nn.on_chip runs it)."""

    name: str
    elements: int
    ops_per_element: int
    phase: str = "update"
    layer: int = 0


@dataclass(frozen=True)
class Workload:
    name: str
    items: tuple  # Gemm and VectorWork, in the order the work runs
    source: str = ""  # what it was made from, in words

    @property
    def gemms(self) -> tuple[Gemm, ...]:
        return tuple(i for i in self.items if isinstance(i, Gemm))

    @property
    def vectors(self) -> tuple[VectorWork, ...]:
        return tuple(i for i in self.items if isinstance(i, VectorWork))

    def describe(self) -> str:
        return f"{self.name}: {len(self.gemms)} GEMMs, {len(self.vectors)} vector ops ({self.source})"

    def fingerprint(self) -> list:
        """What identifies the workload's work (for resuming a sweep)."""
        out = []
        for item in self.items:
            d = dataclasses.asdict(item) if not isinstance(item, Gemm) else {
                **{f.name: getattr(item, f.name) for f in dataclasses.fields(item) if f.name != "a_layout"},
                "a_layout": repr(item.a_layout)}
            out.append(d)
        return [self.name, out]


def _whole(what: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a whole number >= 1, got {value!r}")
    return int(value)


def gemm_list(name: str, shapes) -> Workload:
    """GEMMs given as (M, K, N) triples (or "MxKxN" strings)."""
    items = []
    for i, shape in enumerate(shapes, 1):
        if isinstance(shape, str):
            parts = shape.lower().replace("×", "x").split("x")
            if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
                raise ValueError(f"GEMM {i} must look like MxKxN, e.g. 256x784x64, got {shape!r}")
            shape = [int(p) for p in parts]
        if not isinstance(shape, (list, tuple)) or len(shape) != 3:
            raise ValueError(f"GEMM {i} must be three whole numbers [M, K, N], got {shape!r}")
        m, k, n = (_whole(f"GEMM {i} {d}", v) for d, v in zip("MKN", shape))
        items.append(Gemm(f"gemm{i}", m, k, n))
    if not items:
        raise ValueError("a GEMM list needs at least one GEMM")
    return Workload(name, tuple(items), f"{len(items)} GEMMs")


def topology(name: str, path) -> Workload:
    """A SCALE-Sim topology file's layers (TopologyError, a ValueError, names its file and line)."""
    layers = read_topology(path)
    items = tuple(Gemm(layer.name, layer.m, layer.k, layer.n, a_layout=layer.a_layout, layer=i)
                  for i, layer in enumerate(layers, 1))
    return Workload(name, items, f"topology {os.fspath(path)}")


_INPUT_SHAPE = re.compile(r"\s*\d+x\d+x\d+\s*", re.IGNORECASE)


def hidden_layers(layers: str) -> tuple:
    """The hidden layers of a `chipviz train --layers` description: "64,32,10" -> (32,);
    "conv3x3x8,pool2,10" (a CNN, optionally after its input shape "8x8x1") -> ("conv3x3x8", "pool2")."""
    from ..nn.conv import LayerError, parse_layer

    tokens = [t.strip() for t in str(layers).split(",")]
    if tokens and _INPUT_SHAPE.fullmatch(tokens[0]):
        tokens = tokens[1:]
    if len(tokens) < 2 and all(t.isdigit() for t in tokens):
        raise ValueError(f"layers must give at least the input and output widths, e.g. 64,32,10, got {layers!r}")
    if all(t.isdigit() for t in tokens):
        return tuple(int(t) for t in tokens[1:-1])
    if not tokens or not tokens[-1].isdigit():
        raise ValueError(f"a CNN's layers end with the output width, e.g. conv3x3x8,pool2,10; got {layers!r}")
    for number, token in enumerate(tokens, 1):
        try:
            parse_layer(token)
        except LayerError as exc:
            raise ValueError(f"layer {number} ({token}): {exc}") from None
    return tuple(int(t) if t.isdigit() else t for t in tokens[:-1])


def training_step(name: str, settings, data=None) -> Workload:
    """One training step of the network `settings` (chipviz.nn.trainer.TrainSettings) describes,
    on `data` (default: its dataset): its ops as the network issues them on the chip."""
    from ..nn.trainer import Diverged, Trainer

    settings = dataclasses.replace(settings, engine="analytic")
    probe = Trainer(settings, ChipConfig(), data=data, keep_operands=True)
    try:
        probe.step()
    except Diverged:
        pass  # the work it ran is logged all the same
    return _from_ops(name, probe.runner.ops, probe.runner.operands, describe_network(probe))


def describe_network(trainer) -> str:
    sizes = "-".join(map(str, trainer.net.sizes))
    return f"training step of {sizes} on {trainer.data.name}, batch {trainer.settings.batch_size}"


def _from_ops(name: str, ops, operands, source: str) -> Workload:
    items = []
    for op, operand in zip(ops, operands):
        if op.is_gemm:
            s = op.stats
            forward = PHASE_TABLE[op.phase].direction == "forward"  # on an int8 chip these quantise
            items.append(Gemm(op.name, s.m, s.k, s.n, CHIP if forward else FP32,
                              a_layout=operand.a_layout if operand is not None else None,
                              phase=op.phase, layer=op.layer))
        else:
            s = op.stats
            items.append(VectorWork(op.name, s.elements, s.ops // s.elements if s.elements else 0, op.phase,
                                    op.layer))
    return Workload(name, tuple(items), source)


def training_step_of(name: str, layers: str | None = None, **settings) -> Workload:
    """training_step from `chipviz train`-like values: layers "64,32,10", dataset, batch_size, ..."""
    from ..nn.trainer import TrainSettings

    values = dict(settings)
    if layers is not None:
        values["hidden"] = hidden_layers(layers)
    trainer_settings = TrainSettings(**values)
    workload = training_step(name, trainer_settings)
    if layers is not None:
        _check_ends(layers, workload)
    return workload


def _check_ends(layers: str, workload: Workload) -> None:
    """An MLP's first and last widths must be the data's (as `chipviz train` checks)."""
    tokens = [t.strip() for t in str(layers).split(",")]
    if not all(t.isdigit() for t in tokens):
        return
    forward = [g for g in workload.gemms if g.phase == "forward"]
    inputs, outputs = forward[0].k, forward[-1].n
    if (int(tokens[0]), int(tokens[-1])) != (inputs, outputs):
        raise ValueError(f"the data needs {inputs} inputs and {outputs} outputs, e.g. {inputs},32,{outputs}; "
                         f"got {layers}")
