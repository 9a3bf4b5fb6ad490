"""Backpropagation through the chip: gradients equal finite differences and a plain numpy
MLP, and every training step runs exactly the GEMMs backpropagation needs, in schedule
order, each costed as the chip's analytic model says.

Headless: no panel, no bokeh.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chipviz.chip import ChipConfig, GemmStats, analyze
from chipviz.chip.vector import VectorStats, vector_op
from chipviz.nn import losses
from chipviz.nn.activations import VECTOR_OPS
from chipviz.nn.network import MLP
from chipviz.nn.on_chip import PHASES, ChipRunner
from chipviz.nn.trainer import Trainer, TrainSettings

ENGINES = ("analytic", "cycle")
DATAFLOWS = ("ws", "os", "is")
ACTIVATIONS = ("tanh", "sigmoid", "relu", "linear")
LOSSES = ("cross_entropy", "mse")
TINY_NETS = ((3, 4, 2), (2, 3, 3, 2))


# --------------------------------------------------------------------------------------------
# Plain numpy reference MLP (written independently of chipviz.nn)
# --------------------------------------------------------------------------------------------

def ref_act(name, z):
    if name == "relu":
        return np.maximum(z, 0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    assert name == "linear"
    return z


def ref_act_grad(name, z):
    """f'(z)."""
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-z))
        return s * (1 - s)
    return np.ones_like(z)


def ref_forward(weights, biases, x, activation):
    """Returns the output and the per-layer (input, pre-activation) pairs; hidden layers use
    `activation`, the output layer is linear."""
    layers = []
    n = len(weights)
    for i, (w, b) in enumerate(zip(weights, biases)):
        z = x @ w + b
        layers.append((x, z))
        x = z if i == n - 1 else ref_act(activation, z)
    return x, layers


def ref_loss(out, target, loss):
    """Mean softmax cross-entropy against integer labels, or mean squared error."""
    if loss == "cross_entropy":
        z = out - out.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -logp[np.arange(len(target)), target].mean()
    return ((out - target) ** 2).mean()


def ref_dloss(out, target, loss):
    """dL/d(out) of `ref_loss`."""
    if loss == "cross_entropy":
        e = np.exp(out - out.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        p[np.arange(len(target)), target] -= 1
        return p / len(target)
    return 2 * (out - target) / out.size


def ref_backward(weights, layers, d_out, activation):
    n = len(weights)
    gw, gb = [None] * n, [None] * n
    dz = d_out
    for i in range(n - 1, -1, -1):
        x, _ = layers[i]
        gw[i] = x.T @ dz
        gb[i] = dz.sum(axis=0)
        if i:
            dz = (dz @ weights[i].T) * ref_act_grad(activation, layers[i - 1][1])
    return gw, gb


def problem(sizes, loss, batch, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    if loss == "cross_entropy":
        target = rng.integers(0, sizes[-1], batch)
    else:
        target = rng.standard_normal((batch, sizes[-1])).astype(np.float32)
    return x, target


def chip_gradients(net, x, target, loss, runner):
    out, cache = net.forward(x, runner)
    if loss == "cross_entropy":
        value, d_out = losses.cross_entropy(out, target)
    else:
        value, d_out = losses.mse(out, target)
    gw, gb = net.backward(cache, d_out, runner)
    return value, out, gw, gb


def finite_differences(weights, biases, x, target, activation, loss, eps=1e-6):
    """Central differences of the float64 reference loss for every weight and bias."""
    weights = [w.astype(np.float64) for w in weights]
    biases = [b.astype(np.float64) for b in biases]
    x = x.astype(np.float64)

    def loss_at():
        return ref_loss(ref_forward(weights, biases, x, activation)[0], target, loss)

    grads = []
    for p in weights + biases:
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = loss_at()
            p[idx] = old - eps
            down = loss_at()
            p[idx] = old
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    n = len(weights)
    return grads[:n], grads[n:], loss_at()


# --------------------------------------------------------------------------------------------
# Gradients through the chip
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("sizes", TINY_NETS, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("engine", ENGINES)
def test_chip_gradients_equal_central_differences(engine, dataflow, sizes, activation, loss):
    seed = 7 * len(sizes) + ACTIVATIONS.index(activation)
    net = MLP(sizes, activation, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for b in net.biases:  # non-zero biases, so their gradients are exercised too
        b[...] = rng.uniform(-0.5, 0.5, b.shape)
    x, target = problem(sizes, loss, batch=5, seed=seed)
    runner = ChipRunner(ChipConfig(rows=3, cols=4, dataflow=dataflow), engine)

    value, _, gw, gb = chip_gradients(net, x, target, loss, runner)
    fd_w, fd_b, fd_value = finite_differences(net.weights, net.biases, x, target, activation, loss)

    assert value == pytest.approx(fd_value, rel=1e-5, abs=1e-6)
    for i in range(net.n_layers):
        assert gw[i].shape == net.weights[i].shape and gb[i].shape == net.biases[i].shape
        assert gw[i].dtype == np.float32 and gb[i].dtype == np.float32
        np.testing.assert_allclose(gw[i], fd_w[i], rtol=1e-4, atol=2e-6, err_msg=f"dW of layer {i + 1}")
        np.testing.assert_allclose(gb[i], fd_b[i], rtol=1e-4, atol=2e-6, err_msg=f"db of layer {i + 1}")
    # the check is not vacuous: the gradient is far from zero
    total = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in gw + gb))
    assert total > 1e-2
    # every GEMM of this step really ran on the requested engine and chip
    gemms = [op for op in runner.ops if op.is_gemm]
    assert gemms and all(op.stats.engine == engine and op.stats.dataflow == dataflow for op in gemms)
    assert all((op.stats.rows, op.stats.cols) == (3, 4) for op in gemms)


@pytest.mark.parametrize("engine", ENGINES)
def test_float32_perturbation_of_chip_loss_matches_gradient(engine):
    """The gradient also predicts how the chip's own (float32) loss changes: perturb float32
    weights by eps = 1e-2 and compare the central difference with loose tolerance."""
    sizes, activation, loss = (2, 3, 3, 2), "tanh", "cross_entropy"
    net = MLP(sizes, activation, seed=3)
    x, target = problem(sizes, loss, batch=6, seed=3)
    runner = ChipRunner(ChipConfig(rows=3, cols=4, dataflow="os"), engine)
    _, _, gw, gb = chip_gradients(net, x, target, loss, runner)
    eps = np.float32(1e-2)
    for p, g in zip(net.params, [t for pair in zip(gw, gb) for t in pair]):
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = chip_gradients(net, x, target, loss, runner)[0]
            p[idx] = old - eps
            down = chip_gradients(net, x, target, loss, runner)[0]
            p[idx] = old
            assert (up - down) / (2 * float(eps)) == pytest.approx(float(g[idx]), rel=2e-2, abs=2e-4)


LARGE_CASES = [(e, d, "relu", "cross_entropy") for e in ENGINES for d in DATAFLOWS] + [
    ("analytic", "ws", a, l) for a in ACTIVATIONS for l in LOSSES if (a, l) != ("relu", "cross_entropy")]


@pytest.mark.parametrize(("engine", "dataflow", "activation", "loss"), LARGE_CASES)
def test_large_network_matches_numpy_reference(engine, dataflow, activation, loss):
    """64-32-10 with a batch of 32: forward output, loss and every gradient equal a plain float32
    numpy MLP to float32 tolerance."""
    sizes = (64, 32, 10)
    net = MLP(sizes, activation, seed=11)
    rng = np.random.default_rng(12)
    for b in net.biases:
        b[...] = rng.uniform(-0.2, 0.2, b.shape)
    x, target = problem(sizes, loss, batch=32, seed=13)
    runner = ChipRunner(ChipConfig(rows=8, cols=8, dataflow=dataflow), engine)
    value, out, gw, gb = chip_gradients(net, x, target, loss, runner)

    w = [p.copy() for p in net.weights]
    b = [p.copy() for p in net.biases]
    ref_out, layers = ref_forward(w, b, x, activation)
    assert ref_out.dtype == np.float32
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
    ref_value = ref_loss(ref_out.astype(np.float64), target, loss)
    assert value == pytest.approx(ref_value, rel=1e-5)
    d_out = ref_dloss(ref_out.astype(np.float64), target, loss).astype(np.float32)
    rw, rb = ref_backward(w, layers, d_out, activation)
    for i in range(net.n_layers):
        scale_w = float(np.abs(rw[i]).max())
        scale_b = float(np.abs(rb[i]).max())
        assert scale_w > 0
        np.testing.assert_allclose(gw[i], rw[i], rtol=1e-4, atol=1e-5 * scale_w, err_msg=f"dW{i + 1}")
        np.testing.assert_allclose(gb[i], rb[i], rtol=1e-4, atol=1e-5 * scale_b + 1e-9, err_msg=f"db{i + 1}")


@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 9),
       hidden=st.lists(st.integers(1, 6), min_size=0, max_size=3),
       activation=st.sampled_from(ACTIVATIONS), loss=st.sampled_from(LOSSES),
       rows=st.integers(1, 5), cols=st.integers(1, 5), dataflow=st.sampled_from(DATAFLOWS))
def test_any_small_network_matches_numpy_reference(seed, batch, hidden, activation, loss, rows, cols, dataflow):
    sizes = (3, *hidden, 4)
    net = MLP(sizes, activation, seed=seed)
    x, target = problem(sizes, loss, batch, seed)
    runner = ChipRunner(ChipConfig(rows=rows, cols=cols, dataflow=dataflow), "cycle")
    value, out, gw, gb = chip_gradients(net, x, target, loss, runner)
    w = [p.astype(np.float64) for p in net.weights]
    b = [p.astype(np.float64) for p in net.biases]
    ref_out, layers = ref_forward(w, b, x.astype(np.float64), activation)
    np.testing.assert_allclose(out, ref_out, rtol=1e-4, atol=1e-5)
    rw, rb = ref_backward(w, layers, ref_dloss(ref_out, target, loss), activation)
    for i in range(net.n_layers):
        np.testing.assert_allclose(gw[i], rw[i], rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(gb[i], rb[i], rtol=1e-3, atol=1e-5)
    # dX of the first layer is never computed
    assert [op.stats.n for op in runner.ops if op.phase == "backward_data" and op.is_gemm and op.layer == 1] == []


# --------------------------------------------------------------------------------------------
# The operation log of a training step
# --------------------------------------------------------------------------------------------

def expected_schedule(sizes, batch, activation, optimizer):
    """(kind, layer, phase, shape) of every operation of one step, in order. GEMM shapes are
    (M, K, N); vector shapes are (elements, ops per element)."""
    n = len(sizes) - 1
    ops = []
    for i in range(n):
        ops.append(("gemm", i + 1, "forward", (batch, sizes[i], sizes[i + 1])))
        f = "linear" if i == n - 1 else activation
        ops.append(("vector", i + 1, "forward", (batch * sizes[i + 1], 1 + VECTOR_OPS[f][0])))
    ops.append(("vector", n, "forward", (batch * sizes[-1], None)))  # the loss
    for i in range(n - 1, -1, -1):
        ops.append(("gemm", i + 1, "backward_weights", (sizes[i], batch, sizes[i + 1])))
        ops.append(("vector", i + 1, "backward_weights", (batch * sizes[i + 1], 1)))
        if i:
            ops.append(("gemm", i + 1, "backward_data", (batch, sizes[i + 1], sizes[i])))
            if VECTOR_OPS[activation][1]:
                ops.append(("vector", i, "backward_data", (batch * sizes[i], VECTOR_OPS[activation][1])))
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    ops.append(("vector", 0, "update", (n_params, optimizer.ops_per_element)))
    return ops


def check_step_log(trainer, report, batch):
    config = trainer.chip
    sizes = trainer.net.sizes
    expected = expected_schedule(sizes, batch, trainer.settings.activation, trainer.optimizer)
    got = []
    for op in report.ops:
        if op.is_gemm:
            assert isinstance(op.stats, GemmStats)
            got.append(("gemm", op.layer, op.phase, (op.stats.m, op.stats.k, op.stats.n)))
        else:
            assert isinstance(op.stats, VectorStats)
            per = op.stats.ops // op.stats.elements
            got.append(("vector", op.layer, op.phase, (op.stats.elements, per)))
    # the loss's cost per element is the trainer's business; everything else is pinned
    expected = [e if e[3][1] is not None else (e[0], e[1], e[2], (e[3][0], g[3][1]))
                for e, g in zip(expected, got)] + expected[len(got):]
    assert got == expected

    # just the GEMMs, as the brief states them: forward per layer ascending, then dW and dX
    # per layer descending (no dX for layer 1)
    n = len(sizes) - 1
    gemm_shapes = [(op.layer, op.phase, op.stats.m, op.stats.k, op.stats.n) for op in report.ops if op.is_gemm]
    want = [(i + 1, "forward", batch, sizes[i], sizes[i + 1]) for i in range(n)]
    for i in range(n - 1, -1, -1):
        want.append((i + 1, "backward_weights", sizes[i], batch, sizes[i + 1]))
        if i:
            want.append((i + 1, "backward_data", batch, sizes[i + 1], sizes[i]))
    assert gemm_shapes == want
    assert report.ops[-1].phase == "update"
    phase_index = [0 if op.phase == "forward" else 2 if op.phase == "update" else 1 for op in report.ops]
    assert phase_index == sorted(phase_index)

    # each operation costs what the chip's models say for its shape on this chip
    for op in report.ops:
        if op.is_gemm:
            # the forward GEMMs run in the chip's precision; the backward ones, in fp32
            assert op.stats.precision == (config.precision if op.phase == "forward" else "fp32")
            cfg = config.with_(precision=op.stats.precision)
            reference = analyze(op.stats.m, op.stats.k, op.stats.n, cfg)
            assert op.stats.engine == trainer.settings.engine
            assert replace(op.stats, engine="analytic") == reference
            assert op.macs == op.stats.m * op.stats.k * op.stats.n
        else:
            # the vector unit works on fp32 values, on an int8 chip too
            fp32 = config.with_(precision="fp32")
            assert op.stats == vector_op(op.stats.elements, op.stats.ops // op.stats.elements, fp32)
            assert op.macs == 0

    # phase totals are sums over the operations
    assert set(report.phases) == set(PHASES)
    for phase, totals in report.phases.items():
        ops = [op for op in report.ops if op.phase == phase]
        assert totals["cycles"] == sum(op.cycles for op in ops)
        assert totals["macs"] == sum(op.macs for op in ops)
        assert totals["energy_pj"] == pytest.approx(sum(op.energy_pj for op in ops), rel=1e-12)
        assert totals["seconds"] == pytest.approx(sum(op.stats.seconds for op in ops), rel=1e-12)
        if not ops:  # a network without hidden layers has no backward-data work
            assert len(sizes) == 2 and phase == "backward_data"
            assert totals["cycles"] == 0 and totals["utilization"] == 0
            continue
        assert totals["cycles"] > 0
        assert totals["utilization"] == pytest.approx(totals["macs"] / (totals["cycles"] * config.pes), rel=1e-12)
        assert 0 <= totals["utilization"] <= 1
    assert report.phases["update"]["macs"] == 0
    assert report.cycles == sum(op.cycles for op in report.ops)
    assert report.energy_pj == pytest.approx(sum(op.energy_pj for op in report.ops), rel=1e-12)
    macs = sum(op.macs for op in report.ops)
    assert macs == sum(2 * batch * a * b for a, b in zip(sizes[:-1], sizes[1:])) + sum(
        batch * a * b for a, b in zip(sizes[1:-1], sizes[2:]))
    # the history's utilisation of this step is macs / (cycles × PEs)
    assert trainer.history["step"][-1] == report.step
    assert trainer.history["utilization"][-1] == pytest.approx(macs / (report.cycles * config.pes), rel=1e-12)
    assert trainer.history["cycles"][-1] == report.cycles


LOG_CASES = [(e, d, "spiral", (5, 4), a, o, "fp32") for e in ENGINES for d in DATAFLOWS
             for a, o in (("tanh", "adam"), ("linear", "sgd"))] + [
    ("analytic", "ws", "digits", (32,), "relu", "adam", "fp32"),
    ("cycle", "is", "xor", (3, 3), "sigmoid", "momentum", "fp32"),
    ("analytic", "os", "circle", (), "relu", "sgd", "fp32"),
    ("analytic", "ws", "digits", (32,), "relu", "adam", "int8"),
    ("cycle", "os", "spiral", (5, 4), "tanh", "momentum", "int8"),
]


@pytest.mark.parametrize(("engine", "dataflow", "dataset", "hidden", "activation", "optimizer", "precision"),
                         LOG_CASES)
def test_every_step_logs_exactly_the_backprop_gemms(engine, dataflow, dataset, hidden, activation, optimizer,
                                                    precision):
    settings = TrainSettings(dataset=dataset, hidden=hidden, activation=activation, optimizer=optimizer,
                             batch_size=32, engine=engine, n_samples=100)
    chip = ChipConfig(rows=3, cols=4, dataflow=dataflow, precision=precision)
    trainer = Trainer(settings, chip)
    n_train = len(trainer.data.x_train)
    reports = []
    # a whole epoch, so the short last batch is checked too, then one step of the next epoch
    for _ in range(trainer.steps_per_epoch + 1):
        before = trainer.position if trainer.position < n_train else 0
        report = trainer.step()
        reports.append(report)
        check_step_log(trainer, report, min(32, n_train - before))
    assert reports[trainer.steps_per_epoch - 1].ops[0].stats.m == n_train - 32 * (trainer.steps_per_epoch - 1)
    # the trainer's running totals add up the steps
    for phase in PHASES:
        assert trainer.totals[phase]["cycles"] == sum(r.phases[phase]["cycles"] for r in reports)
        assert trainer.totals[phase]["macs"] == sum(r.phases[phase]["macs"] for r in reports)
        energy = sum(trainer.totals[phase][part] for part in ("mac", "register", "sram", "dram", "vector"))
        assert energy == pytest.approx(sum(r.phases[phase]["energy_pj"] for r in reports), rel=1e-9)
