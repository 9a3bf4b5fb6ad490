"""Convolutional networks on the chip (chipviz.nn.conv): gradients equal finite differences,
every GEMM is a chip op shaped as the lowering says, both engines agree, the Trainer trains a
CNN with every optimizer, run files save and load one, and `chipviz train --layers` reads the
CNN grammar with one clear line per impossible layer.

Headless: no panel, no bokeh.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chipviz import cli
from chipviz.chip import ChipConfig, analyze
from chipviz.chip.conv import ConvGeometry, Im2colOperand
from chipviz.chip.topology import CONV_HEADER, parse_topology
from chipviz.nn import losses
from chipviz.nn.conv import (AvgPool, Conv2D, ConvNet, Dense, Flatten, LayerError, MaxPool, parse_layer,
                             square_image)
from chipviz.nn.network import MLP
from chipviz.nn.on_chip import ChipRunner
from chipviz.nn.runfile import load_run, save_run
from chipviz.nn.trainer import Trainer, TrainSettings

CHIP = ChipConfig(rows=4, cols=4)


def loss_of(net, x, y, chip=CHIP):
    out, _ = net.forward(x, ChipRunner(chip))
    return float(losses.cross_entropy(out.astype(np.float64), y)[0])


@pytest.mark.parametrize("hidden, shape", [
    (("conv3x3x3", "maxpool2"), (6, 6, 1)),
    (("conv3x2x2s2valid", "avgpool2"), (7, 8, 2)),
    (("conv2x2x2s2same", "conv3x3x2x3valid", 5), (9, 9, 1)),
    (("avgpool2", "conv1x1x2"), (4, 4, 2)),
])
def test_gradients_match_finite_differences(hidden, shape):
    rng = np.random.default_rng(1)
    net = ConvNet(shape, hidden, 3, activation="tanh", seed=2)
    x = rng.standard_normal((3, int(np.prod(shape)))).astype(np.float32)
    y = np.array([0, 2, 1])
    for b in net.biases:  # non-zero biases, so that db is tested too
        b[...] = rng.standard_normal(b.shape) * 0.1
    runner = ChipRunner(CHIP)
    out, cache = net.forward(x, runner)
    _, d_out = losses.cross_entropy(out, y)
    grads_w, grads_b = net.backward(cache, d_out, runner)
    eps = 1e-4  # small: a max pool's choice must not flip (the chip computes in float32, hence the tolerance)
    for param, grad in [*zip(net.weights, grads_w), *zip(net.biases, grads_b)]:
        assert grad.shape == param.shape
        for index in list(np.ndindex(param.shape))[:: max(1, param.size // 12)]:
            old = param[index]
            param[index] = old + eps
            up = loss_of(net, x, y)
            param[index] = old - eps
            down = loss_of(net, x, y)
            param[index] = old
            assert grad[index] == pytest.approx((up - down) / (2 * eps), rel=3e-2, abs=3e-3), (index, hidden)


@pytest.mark.parametrize("layer_cls", [MaxPool, AvgPool])
def test_pool_gradient_against_finite_differences(layer_cls):
    rng = np.random.default_rng(3)
    layer = layer_cls((5, 4, 2), 2)
    x = rng.standard_normal((2, 5, 4, 2))
    weights = rng.standard_normal((2, *layer.out_shape))
    runner = ChipRunner(CHIP)
    out, cache = layer.forward(x, runner, 1, "forward")
    assert out.shape == (2, 2, 2, 2)
    _, _, dx = layer.backward(cache, weights, runner, 1, True)
    eps = 1e-6
    for index in np.ndindex(x.shape):
        bump = np.zeros_like(x)
        bump[index] = eps
        up = np.sum(layer.forward(x + bump, runner, 1, "forward")[0] * weights)
        down = np.sum(layer.forward(x - bump, runner, 1, "forward")[0] * weights)
        assert dx[index] == pytest.approx((up - down) / (2 * eps), abs=1e-6)
    assert np.all(dx[:, 4] == 0)  # the fifth row is in no window


def test_every_gemm_is_a_chip_op_shaped_by_the_lowering():
    net = ConvNet((8, 8, 1), ("conv3x3x4s2", "pool2", 6), 10, seed=0)
    assert [type(layer) for layer in net.layers] == [Conv2D, MaxPool, Flatten, Dense, Dense]
    assert net.sizes == ("8x8x1", "conv3x3x4s2", "pool2", "flatten", "6", "10")
    runner = ChipRunner(CHIP)
    x = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
    out, cache = net.forward(x, runner)
    net.backward(cache, losses.cross_entropy(out, np.arange(5))[1], runner)
    gemms = [(op.layer, op.phase, (op.stats.m, op.stats.k, op.stats.n)) for op in runner.ops if op.is_gemm]
    g = net.layers[0].geometry
    conv = g.gemm_shapes(batch=5)
    assert gemms == [
        (1, "forward", conv["forward"]), (4, "forward", (5, 16, 6)), (5, "forward", (5, 6, 10)),
        (5, "backward_weights", (6, 5, 10)), (5, "backward_data", (5, 10, 6)),
        (4, "backward_weights", (16, 5, 6)), (4, "backward_data", (5, 6, 16)),
        (1, "backward_weights", conv["backward_weights"]),  # layer 1's dX: nothing upstream needs it
    ]
    # the conv GEMMs tell the chip their A is unrolled: DRAM reads each input pixel once
    layouts = {"forward": Im2colOperand(g, 5), "backward_weights": Im2colOperand(g, 5, transposed=True)}
    for op in runner.ops:
        if op.is_gemm:
            layout = layouts[op.phase] if op.layer == 1 else None
            assert op.stats == analyze(op.stats.m, op.stats.k, op.stats.n, CHIP, layout)
            if op.layer == 1:
                assert op.stats.dram_reads < analyze(op.stats.m, op.stats.k, op.stats.n, CHIP).dram_reads
    names = [op.name for op in runner.ops if not op.is_gemm]
    assert "max pool 2×2" in names and "max pool′ (route to the max)" in names and "col2im (dA → dX)" not in names


def test_col2im_is_priced_when_a_conv_layer_passes_its_gradient_down():
    net = ConvNet((6, 6, 1), ("conv3x3x2", "conv3x3x3"), 2, seed=0)
    runner = ChipRunner(CHIP)
    out, cache = net.forward(np.ones((2, 36), np.float32), runner)
    net.backward(cache, np.ones_like(out), runner)
    (col2im,) = [op for op in runner.ops if op.name.startswith("col2im")]
    g = net.layers[1].geometry
    assert (col2im.layer, col2im.phase) == (2, "backward_data")
    assert col2im.stats.elements == 2 * g.out_pixels * g.window


def test_trained_layer_and_topology_report_the_same_cycles():
    (layer,) = parse_topology(CONV_HEADER + "\nc,9,9,3,3,2,4,2,\n")  # (9 - 3) / 2 whole: conventions agree
    net = ConvNet((9, 9, 2), ("conv3x3x4s2valid",), 3, seed=0)
    runner = ChipRunner(CHIP)
    net.forward(np.ones((1, 9 * 9 * 2), np.float32), runner)
    assert runner.ops[0].stats == analyze(layer.m, layer.k, layer.n, CHIP, layer.a_layout)
    assert layer.a_layout.addresses().tolist() == Im2colOperand(net.layers[0].geometry).addresses().tolist()


@settings(max_examples=12, deadline=None)
@given(hidden=st.sampled_from([("conv3x3x2",), ("conv2x2x3s2valid", "avgpool2"), ("conv3x3x2s2", "pool2"),
                               ("conv1x3x2valid", 4)]),
       dataflow=st.sampled_from(("ws", "os", "is")), precision=st.sampled_from(("fp32", "int8")),
       array=st.tuples(st.integers(1, 4), st.integers(1, 4)), batch=st.integers(1, 3))
def test_both_engines_equal_on_every_counter_for_a_cnn_step(hidden, dataflow, precision, array, batch):
    config = ChipConfig(rows=array[0], cols=array[1], dataflow=dataflow, precision=precision)
    net = ConvNet((6, 5, 1), hidden, 3, seed=0)
    x = np.random.default_rng(batch).standard_normal((batch, 30)).astype(np.float32)
    logs = []
    for engine in ("analytic", "cycle"):
        runner = ChipRunner(config, engine)
        out, cache = net.forward(x, runner)
        grads = net.backward(cache, losses.cross_entropy(out, np.zeros(batch, int))[1], runner)
        logs.append((runner.ops, out, grads))
    (fast_ops, fast_out, fast_grads), (slow_ops, slow_out, slow_grads) = logs
    assert [(o.layer, o.phase, o.name) for o in fast_ops] == [(o.layer, o.phase, o.name) for o in slow_ops]
    for f, s in zip(fast_ops, slow_ops):
        if f.is_gemm:
            assert f.stats.counters | {"engine": 0} == s.stats.counters | {"engine": 0}
            assert f.stats.energy_pj == s.stats.energy_pj
        else:
            assert f.stats == s.stats
    np.testing.assert_allclose(slow_out, fast_out, rtol=1e-4, atol=1e-4)
    if precision == "int8":
        assert any(o.name.endswith("(int8)") for o in fast_ops if o.phase == "forward" and o.is_gemm)


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.05), ("momentum", 0.02), ("adam", 0.01)])
def test_a_cnn_trains_with_every_optimizer(optimizer, lr):
    trainer = Trainer(TrainSettings(hidden=("conv3x3x4", "pool2"), optimizer=optimizer, lr=lr), ChipConfig())
    assert isinstance(trainer.net, ConvNet)
    first = trainer.evaluate()[0]
    trainer.fit(2)
    loss, acc = trainer.evaluate()
    assert loss < first and acc > 0.6
    assert trainer.totals["backward_data"]["cycles"] > 0


def test_dense_descriptions_still_build_the_mlp():
    trainer = Trainer(TrainSettings(hidden=(16,)), ChipConfig())
    assert isinstance(trainer.net, MLP)


def test_run_file_saves_and_loads_a_cnn(tmp_path):
    settings_ = TrainSettings(hidden=("conv3x3x4", "avgpool2", 8), seed=3)
    a = Trainer(settings_, ChipConfig(rows=4, cols=4))
    for _ in range(3):
        a.step()
    path = tmp_path / "cnn.npz"
    save_run(a, path)
    b = load_run(path)
    assert isinstance(b.net, ConvNet) and b.settings == a.settings and b.net.sizes == a.net.sizes
    for _ in range(3):
        ra, rb = a.step(), b.step()
        assert ra.loss == rb.loss
    for p, q in zip(a.net.params, b.net.params):
        np.testing.assert_array_equal(p, q)
    assert a.totals == b.totals


@pytest.mark.parametrize("token, spec", [
    ("conv3x3x8", "ConvSpec(kernel_h=3, kernel_w=3, filters=8, stride=1, padding='same', in_channels=None)"),
    ("conv5x3x2x16s2valid", "ConvSpec(kernel_h=5, kernel_w=3, filters=16, stride=2, padding='valid', "
                            "in_channels=2)"),
    ("pool2", "PoolSpec(kind='max', size=2)"), ("avgpool3", "PoolSpec(kind='avg', size=3)"),
    ("flatten", "FlattenSpec()"), ("32", "32"), (7, "7"),
])
def test_parse_layer(token, spec):
    assert repr(parse_layer(token)) == spec


def test_layer_errors_name_the_layer_and_value():
    with pytest.raises(LayerError, match=r"layer 4 \(pool2\): pool size 2 is larger than its 1×1×4 input"):
        ConvNet((4, 4, 1), ("conv3x3x4", "pool2", "pool2", "pool2"), 2)
    with pytest.raises(LayerError, match=r"layer 1 \(conv3x3x2x4\): input channels 2 do not match the 1"):
        ConvNet((4, 4, 1), ("conv3x3x2x4",), 2)
    with pytest.raises(LayerError, match="not a square image"):
        square_image(2)
    with pytest.raises(ValueError, match=r"hidden: layer 1 \(conv3x3x8s0\): the stride must be"):
        TrainSettings(hidden=("conv3x3x8s0",))
    assert square_image(784) == (28, 28, 1)


def run(capsys, *argv):
    code = cli.main(["train", "--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_trains_a_cnn(capsys):
    code, out, err = run(capsys, "--layers", "conv3x3x4,pool2,10", "--epochs", "1", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["layers"] == ["8x8x1", "conv3x3x4", "pool2", "flatten", "10"]
    assert record["settings"]["hidden"] == ["conv3x3x4", "pool2"]
    code, out, err = run(capsys, "--layers", "8x8x1,conv3x3x4,avgpool2,16,10", "--epochs", "1")
    assert code == 0, err
    assert out.startswith("digits: CNN 8x8x1-conv3x3x4-avgpool2-flatten-16-10")


@pytest.mark.parametrize("layers, fragment", [
    ("conv9x9x8valid,10", "layer 1 (conv9x9x8valid): kernel height 9 is larger than the input height 8"),
    ("conv3x3x8s0,10", "layer 1 (conv3x3x8s0): the stride must be a whole number from 1 to 16, got 0"),
    ("conv3x3x2x8,10", "layer 1 (conv3x3x2x8): input channels 2 do not match the 1 channels"),
    ("conv3x3x8,pool2,pool2,pool2,pool2,10", "layer 5 (pool2): pool size 2 is larger than its 1×1×8 input"),
    ("conv3x3x0,10", "layer 1 (conv3x3x0): the number of filters must be a whole number from 1 to 256, got 0"),
    ("conv3x3x8,pool2,7", "digits needs 10 outputs, the last width; got 7"),
    ("8x8x3,conv3x3x8,10", "input shape 8x8x3 does not match digits's 8x8x1 images"),
    ("conv3x3x8", "a CNN ends with the output width"),
    ("conv3x3x8,blur,10", "layer 2 (blur): 'blur' is not a layer"),
])
def test_cli_impossible_layers_are_one_line_exit_2(capsys, layers, fragment):
    code, out, err = run(capsys, "--layers", layers, "--epochs", "1")
    assert code == 2 and out == ""
    assert err.startswith("chipviz: error: argument --layers: ") and err.count("\n") == 1, err
    assert fragment in err


def test_cli_toy_data_cannot_be_convolved(capsys):
    code, _, err = run(capsys, "--dataset", "circle", "--layers", "conv3x3x8,2")
    assert code == 2 and "not a square image" in err


def test_help_documents_the_grammar(capsys):
    assert cli.main(["train", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "conv3x3x8,pool2,10" in help_text and "avgpool" in help_text


def test_conv_geometry_of_a_layer():
    layer = ConvNet((8, 8, 1), ("conv3x3x8",), 10).layers[0]
    assert layer.geometry == ConvGeometry(8, 8, 1, 3, 3, 8, 1, 1, "same")
