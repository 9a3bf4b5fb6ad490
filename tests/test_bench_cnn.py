"""benchmarks/bench_cnn.py's plain-numpy CNN step is the same math as ChipViz's ConvNet step on the chip."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from chipviz.chip import ChipConfig
from chipviz.nn.trainer import Trainer

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_cnn.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_cnn", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("layers", ["conv3x3x8,pool2,10", "conv3x3x4valid,pool3,10", "conv5x5x6,pool2,10"])
def test_numpy_step_matches_the_chip_step(bench, layers):
    trainer = Trainer(bench.settings_for(layers), ChipConfig(rows=8, cols=8, dataflow="ws"))
    ref = bench.NumpyCNN(trainer.net, lr=trainer.settings.lr)
    taken = []
    next_batch = trainer.next_batch
    trainer.next_batch = lambda: taken.append(next_batch()) or taken[-1]
    for _ in range(3):
        report = trainer.step()
        loss = ref.step(*taken[-1])
        assert loss == pytest.approx(report.loss, rel=1e-5)
    for ours, theirs in zip(ref.params, trainer.net.params):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)


def test_settings_for_reads_layers_as_the_cli(bench):
    assert bench.settings_for("64,32,10").hidden == (32,)
    assert bench.settings_for("conv3x3x8,pool2,10").hidden == ("conv3x3x8", "pool2")


def test_numpy_cnn_refuses_other_networks(bench):
    trainer = Trainer(bench.settings_for("conv3x3x4,conv3x3x4,pool2,10"), ChipConfig(rows=4, cols=4))
    with pytest.raises(ValueError, match="NumpyCNN mirrors"):
        bench.NumpyCNN(trainer.net, lr=0.01)
