"""The phase table states each kind of work of a training step once; the network, the runner and
the trainer name, shape and cost their operations from it.

Headless: no panel, no bokeh.
"""
from __future__ import annotations

import numpy as np
import pytest

from chipviz.chip import ChipConfig
from chipviz.nn import on_chip, phases
from chipviz.nn.phases import BACKWARD_DATA, BACKWARD_WEIGHTS, FORWARD, PHASE_TABLE, PHASES, UPDATE
from chipviz.nn.trainer import Trainer, TrainSettings


def test_phase_ids_directions_and_op_names_are_as_the_app_and_lessons_expect():
    assert PHASES == ("forward", "backward_data", "backward_weights", "update")
    assert on_chip.PHASES is PHASES  # still importable from its old home
    assert phases.GEMM_PHASES == ("forward", "backward_data", "backward_weights")
    assert [p.direction for p in PHASE_TABLE.values()] == ["forward", "backward", "backward", "update"]
    assert (FORWARD.op, BACKWARD_DATA.op, BACKWARD_WEIGHTS.op, UPDATE.op) == (
        "Y = X·W", "dX = dZ·Wᵀ", "dW = Xᵀ·dZ", None)
    assert (FORWARD.weights, BACKWARD_DATA.weights, BACKWARD_WEIGHTS.weights) == ("B", "Bᵀ", "C")
    assert FORWARD.shape(32, 64, 10) == (32, 64, 10)
    assert BACKWARD_DATA.shape(32, 64, 10) == (32, 10, 64)
    assert BACKWARD_WEIGHTS.shape(32, 64, 10) == (64, 32, 10)
    assert not BACKWARD_DATA.first_layer and FORWARD.first_layer and BACKWARD_WEIGHTS.first_layer


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_every_gemm_of_a_step_is_what_its_phase_says(precision):
    settings = TrainSettings(dataset="digits", hidden=(12, 7), batch_size=16, optimizer="momentum")
    trainer = Trainer(settings, ChipConfig(rows=4, cols=4, dataflow="os", precision=precision), keep_operands=True)
    weights = [w.copy() for w in trainer.net.weights]
    report = trainer.step()
    sizes, batch = trainer.net.sizes, 16
    ops, operands = report.ops, trainer.runner.operands
    assert [op.phase for op in ops if not op.is_gemm][-1] == UPDATE.id
    assert ops[-1].name == UPDATE.vector_op.format(optimizer="momentum") == "momentum update"
    seen = set()
    for op, kept in zip(ops, operands):
        if not op.is_gemm:
            assert kept is None
            continue
        phase = PHASE_TABLE[op.phase]
        seen.add(phase.id)
        int8 = precision == "int8" and phase.direction == "forward"
        assert op.name == phase.op + (phases.INT8_SUFFIX if int8 else "")
        assert op.stats.precision == ("int8" if int8 else "fp32")
        inputs, units = sizes[op.layer - 1], sizes[op.layer]
        assert (op.stats.m, op.stats.k, op.stats.n) == phase.shape(batch, inputs, units)
        a, b, config, _ = kept  # (A, B, chip, im2col layout: none in an MLP)
        assert config.precision == op.stats.precision
        w = weights[op.layer - 1]
        if phase.weights == "B":
            expected = w if not int8 else None
        elif phase.weights == "Bᵀ":
            expected = w.T
        else:
            expected = None  # W is the result (dW); its operands are Xᵀ and dZ
            assert a.shape == (inputs, batch) and b.shape == (batch, units)
        if expected is not None:
            np.testing.assert_array_equal(b, expected)
        elif int8:
            assert b.dtype == np.int8 and np.abs(b).max() == 127  # the quantised W
    assert seen == set(phases.GEMM_PHASES)
