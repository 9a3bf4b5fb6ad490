"""Training on the chip: determinism, divergence handling, bounded histories, settings
validation, int8 forward passes, and the quality goals the app promises.

Headless: no panel, no bokeh.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from chipviz.chip import ChipConfig, analyze
from chipviz.nn.history import History
from chipviz.nn.network import MLP
from chipviz.nn.on_chip import ChipRunner
from chipviz.nn.quantize import quantize
from chipviz.nn.trainer import HISTORY_COLUMNS, Divergence, Diverged, Trainer, TrainSettings

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow on purpose when diverging

DIGITS = dict(dataset="digits", hidden=(32,), activation="relu", optimizer="adam", lr=0.01, batch_size=32)


def losses_of(trainer, steps):
    return np.array([trainer.step().loss for _ in range(steps)])


# --- determinism ----------------------------------------------------------------------------

def test_same_settings_and_seed_give_bit_identical_runs():
    a = Trainer(TrainSettings(**DIGITS, seed=5), ChipConfig())
    b = Trainer(TrainSettings(**DIGITS, seed=5), ChipConfig())
    la, lb = losses_of(a, 50), losses_of(b, 50)
    assert la.tobytes() == lb.tobytes()  # bit for bit
    for x, y in zip(a.net.params, b.net.params):
        assert x.tobytes() == y.tobytes()
    np.testing.assert_array_equal(a.history["train_loss"], la)
    assert a.history["step"].tolist() == list(range(1, 51))
    assert np.isfinite(la).all() and la[-10:].mean() < la[:10].mean()  # it does learn


def test_different_seeds_differ():
    a = Trainer(TrainSettings(**DIGITS, seed=1), ChipConfig())
    b = Trainer(TrainSettings(**DIGITS, seed=2), ChipConfig())
    la, lb = losses_of(a, 50), losses_of(b, 50)
    assert not np.array_equal(la, lb)
    assert not np.array_equal(a.net.weights[0], b.net.weights[0])


def test_cycle_engine_is_deterministic_too():
    settings = TrainSettings(dataset="spiral", hidden=(6, 5), activation="tanh", batch_size=16, engine="cycle",
                             n_samples=80, seed=3)
    chip = ChipConfig(rows=3, cols=4, dataflow="os")
    la = losses_of(Trainer(settings, chip), 12)
    lb = losses_of(Trainer(settings, chip), 12)
    assert la.tobytes() == lb.tobytes()
    # and it agrees with the analytic engine to float32 rounding
    lc = losses_of(Trainer(replace(settings, engine="analytic"), chip), 12)
    np.testing.assert_allclose(la, lc, rtol=1e-4)


# --- divergence -----------------------------------------------------------------------------

def run_until_diverged(trainer, max_steps=300):
    """Step until Diverged; returns (exception, snapshot of everything before the failing step)."""
    for _ in range(max_steps):
        snapshot = {
            "params": [p.copy() for p in trainer.net.params],
            "step": trainer.step_count, "position": trainer.position, "epoch": trainer.epoch,
            "order": trainer.order.copy(), "rng": trainer.rng.bit_generator.state,
            "history": trainer.history.as_arrays(), "last": trainer.last,
        }
        try:
            trainer.step()
        except Diverged as exc:
            return exc, snapshot
    pytest.fail(f"no divergence within {max_steps} steps")


def check_diverged_state(trainer, exc, snapshot):
    failing = snapshot["step"] + 1
    assert f"step {failing}" in str(exc)
    assert f"weights of step {snapshot['step']} were kept" in str(exc)
    assert "learning rate" in str(exc)
    # the trainer keeps the facts; the exception carries them; str() is the English sentence
    d = trainer.diverged
    assert isinstance(d, Divergence) and exc.divergence is d and str(d) == str(exc)
    assert (d.step, d.kept, d.lr) == (failing, snapshot["step"], trainer.optimizer.lr)
    assert d.what in ("loss", "weight", "gradient")
    if d.what == "loss":
        assert not math.isfinite(d.value) and f"the loss became {d.value} (" in str(exc)
    else:
        assert d.value is None and f"a {d.what} became NaN or infinite (" in str(exc)
    assert trainer.step_count == snapshot["step"]
    # the weights afterwards are the weights before the failing step, bit for bit (the
    # optimizer's state is, by design, not rolled back: a diverged run takes no more steps)
    for now, before in zip(trainer.net.params, snapshot["params"]):
        assert now.tobytes() == before.tobytes()
    # the failing batch was not consumed, no history point was recorded
    assert (trainer.position, trainer.epoch) == (snapshot["position"], snapshot["epoch"])
    np.testing.assert_array_equal(trainer.order, snapshot["order"])
    assert trainer.rng.bit_generator.state == snapshot["rng"]
    for k, v in trainer.history.as_arrays().items():
        np.testing.assert_array_equal(v, snapshot["history"][k])
    assert trainer.last is snapshot["last"]
    # a further step raises again, with the same message, and changes nothing
    with pytest.raises(Diverged) as again:
        trainer.step()
    assert str(again.value) == str(exc) and again.value.divergence == d
    assert trainer.step_count == snapshot["step"]
    for now, before in zip(trainer.net.params, snapshot["params"]):
        assert now.tobytes() == before.tobytes()


def test_sgd_with_lr_100_on_digits_diverges_cleanly():
    trainer = Trainer(TrainSettings(**{**DIGITS, "optimizer": "sgd", "lr": 100.0}), ChipConfig())
    exc, snapshot = run_until_diverged(trainer)
    assert snapshot["step"] >= 1  # some steps succeeded first
    assert "Training diverged at step" in str(exc)
    check_diverged_state(trainer, exc, snapshot)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_weights_that_become_infinite_are_rolled_back(optimizer):
    """An update that overflows a weight (simulated: one weight is set to inf after the
    optimizer's real step 4) raises Diverged and restores every weight of step 3."""
    trainer = Trainer(TrainSettings(**{**DIGITS, "optimizer": optimizer}), ChipConfig())
    real_step = trainer.optimizer.step

    def overflowing_step(params, grads):
        real_step(params, grads)
        if trainer.step_count == 3:
            params[2][1, 2] = np.inf
            params[3][0] = np.nan

    trainer.optimizer.step = overflowing_step
    exc, snapshot = run_until_diverged(trainer, max_steps=5)
    assert snapshot["step"] == 3
    assert "a weight became NaN or infinite" in str(exc)
    check_diverged_state(trainer, exc, snapshot)


@pytest.mark.parametrize(("precision", "hidden"), [("fp32", (32, 32)), ("int8", (32, 32)), ("fp32", (64, 64, 64))])
def test_overflow_inside_a_deeper_network_is_reported_as_divergence(precision, hidden):
    """An activation that overflows to inf inside a hidden layer flows on to the next GEMM;
    this must end as Diverged, not as the chip's ValueError("A contains NaN or infinity")
    (which is what happened before the trainer stopped the chip's NaN scan)."""
    settings = TrainSettings(**{**DIGITS, "hidden": hidden, "optimizer": "sgd", "lr": 100.0})
    trainer = Trainer(settings, ChipConfig(precision=precision))
    exc, snapshot = run_until_diverged(trainer)
    check_diverged_state(trainer, exc, snapshot)


@pytest.mark.parametrize(("dataset", "hidden", "activation"), [
    ("digits", (64, 64, 64), "relu"),  # a gradient really overflows
    ("digits", (32,), "linear"),  # once reported as a NaN/inf gradient, though all gradients were finite
    ("spiral", (64, 64, 64), "linear"),  # once reported as a NaN/inf weight, though all weights were finite
])
def test_divergence_reason_is_true(dataset, hidden, activation):
    """Diverged names its cause; the cause must be real. trainer._finite(x) once tested
    isfinite(x.sum()) in float32, where a sum of large *finite* values overflows to inf: with mse,
    sgd, lr=10, digits 64-32-10 linear stopped at step 4 with "a gradient became NaN or infinite"
    although every gradient was finite (max |dW1| ≈ 1.09e38), and spiral 2-64-64-64-2 linear at
    step 3 with "a weight became NaN or infinite" although every updated weight was finite
    (max |W| ≈ 5.1e37). It now sums in float64."""
    settings = TrainSettings(dataset=dataset, hidden=hidden, activation=activation, loss="mse",
                             optimizer="sgd", lr=10.0)
    trainer = Trainer(settings, ChipConfig())
    seen = {}
    real_backward, real_step = trainer.net.backward, trainer.optimizer.step

    def backward(cache, d_out, chip):
        gw, gb = real_backward(cache, d_out, chip)
        seen["grads_finite"] = all(np.isfinite(g).all() for g in gw + gb)
        return gw, gb

    def step(params, grads):
        real_step(params, grads)
        seen["weights_finite"] = all(np.isfinite(p).all() for p in params)

    trainer.net.backward, trainer.optimizer.step = backward, step
    exc, snapshot = run_until_diverged(trainer, max_steps=50)
    if "a gradient became NaN or infinite" in str(exc):
        assert not seen["grads_finite"], "every gradient was finite"
    if "a weight became NaN or infinite" in str(exc):
        assert not seen["weights_finite"], "every weight was finite"
    check_diverged_state(trainer, exc, snapshot)


# --- bounded history --------------------------------------------------------------------------

def test_history_stays_bounded_and_evenly_spaced():
    h = History(("a", "b"), capacity=64)
    total = 100_000
    longest = 0
    for s in range(1, total + 1):
        stride = h.stride
        kept = h.append(s, a=0.5 * s, b=-s)
        assert kept == (s % stride == 0)
        longest = max(longest, len(h))
    assert longest < 64
    steps = h["step"]
    assert len(steps) >= 32
    assert steps[0] == h.stride
    assert (np.diff(steps) == h.stride).all()
    # the newest point is at most one stride old, and every kept value is the one appended at its step
    assert total - h.stride < steps[-1] <= total
    np.testing.assert_array_equal(h["a"], 0.5 * steps)
    np.testing.assert_array_equal(h["b"], -steps.astype(np.float64))
    # doubled only as needed: the smallest power of two that fits the run in fewer than 64 points
    assert total // h.stride < 64 <= total // (h.stride // 2)


def test_history_missing_columns_are_nan_and_capacity_is_checked():
    h = History(("a", "b"), capacity=4)
    h.append(1, a=1.0)
    assert math.isnan(h["b"][0]) and h["a"][0] == 1.0
    assert h.columns == ("step", "a", "b")
    for bad in (2, 3, 5, 0, -4):
        with pytest.raises(ValueError, match="capacity"):
            History(("a",), capacity=bad)


def test_trainer_history_is_bounded_over_a_long_run():
    trainer = Trainer(TrainSettings(dataset="xor", hidden=(4,), batch_size=8, n_samples=40), ChipConfig(rows=4, cols=4))
    trainer.history = History(HISTORY_COLUMNS, capacity=16)
    for _ in range(300):
        report = trainer.step()
        assert len(trainer.history) < 16
        if trainer.history["step"][-1] == report.step:
            assert trainer.history["train_loss"][-1] == report.loss
    assert trainer.history["step"][-1] > 300 - trainer.history.stride


# --- settings validation ----------------------------------------------------------------------

BAD_SETTINGS = [
    ("dataset", "cifar10"), ("dataset", None), ("activation", "gelu"), ("optimizer", "rmsprop"),
    ("loss", "hinge"), ("engine", "spice"),
    ("lr", 0), ("lr", 0.0), ("lr", -1), ("lr", float("nan")), ("lr", float("inf")), ("lr", 1e9),
    ("lr", "0.01"), ("lr", True),
    ("batch_size", 0), ("batch_size", -3), ("batch_size", 2.0), ("batch_size", 100_000),
    ("hidden", (8, 8, 8, 8, 8)), ("hidden", (0,)), ("hidden", (513,)), ("hidden", (16, 0)),
    ("hidden", (16, 600, 4)), ("hidden", (2.5,)),
    ("seed", -1), ("noise", -0.1), ("n_samples", 5),
]


@pytest.mark.parametrize(("field", "value"), BAD_SETTINGS, ids=[f"{f}={v!r}" for f, v in BAD_SETTINGS])
def test_settings_errors_name_the_field(field, value):
    with pytest.raises(ValueError) as info:
        TrainSettings(**{field: value})
    msg = str(info.value)
    assert field in msg, f"error for {field}={value!r} does not name the field: {msg}"


@pytest.mark.parametrize("value", [0, 513, 1000])
def test_settings_width_errors_name_the_bad_width(value):
    with pytest.raises(ValueError) as info:
        TrainSettings(hidden=(8, value))
    assert str(value) in str(info.value)


def test_settings_at_the_limits_are_accepted():
    for kwargs in ({"lr": 100.0}, {"lr": 1e-6}, {"hidden": ()}, {"hidden": (512, 512, 512, 512)},
                   {"hidden": [4, 4]}, {"batch_size": 1}, {"lr": np.float32(0.5)}, {"batch_size": np.int64(8)}):
        s = TrainSettings(**kwargs)
        assert isinstance(s.hidden, tuple)
    assert TrainSettings(hidden=[4, 4]).to_dict()["hidden"] == [4, 4]


def test_precision_belongs_to_the_chip_not_the_settings():
    with pytest.raises(TypeError, match="precision"):
        TrainSettings(precision="int8")


# --- int8 -------------------------------------------------------------------------------------

def test_int8_training_reaches_90_percent_on_digits():
    trainer = Trainer(TrainSettings(**DIGITS), ChipConfig(precision="int8"))
    accs = []
    trainer.fit(10, on_epoch=lambda epoch, loss, acc: accs.append(acc))
    assert len(accs) == 10
    assert accs[-1] > 0.90, accs
    # the last step: forward GEMMs in int8, backward GEMMs in fp32, each costed for its precision
    report = trainer.last
    gemms = [op for op in report.ops if op.is_gemm]
    forward = [op for op in gemms if op.phase == "forward"]
    backward = [op for op in gemms if op.phase != "forward"]
    assert len(forward) == 2 and len(backward) == 3
    int8_chip, fp32_chip = trainer.chip, trainer.chip.with_(precision="fp32")
    for op in forward:
        assert op.stats.precision == "int8" and op.name == "Y = X·W (int8)"
        assert op.stats == analyze(op.stats.m, op.stats.k, op.stats.n, int8_chip)
    for op in backward:
        assert op.stats.precision == "fp32"
        assert op.stats == analyze(op.stats.m, op.stats.k, op.stats.n, fp32_chip)
    # an int8 forward GEMM is cheaper in energy than the same fp32 one
    op = forward[0]
    assert op.energy_pj < analyze(op.stats.m, op.stats.k, op.stats.n, fp32_chip).energy_pj["total"]


def old_int8_path(settings: TrainSettings, data, steps: int):
    """The int8 run as ChipViz computed it before the chip owned the precision (an fp32 chip and
    TrainSettings.precision="int8"), written out in plain numpy: the forward GEMMs quantise X and
    W per tensor and multiply exactly in int32, the product is scaled back to float32; the loss,
    the backward GEMMs (float32) and the fp32 master weights are as in an fp32 run."""
    from chipviz.nn import activations as act
    from chipviz.nn import losses as ls
    from chipviz.nn.optimizers import make_optimizer

    net = MLP((data.x_train.shape[1], *settings.hidden, data.n_classes), settings.activation, seed=settings.seed)
    opt = make_optimizer(settings.optimizer, settings.lr)
    rng = np.random.default_rng([settings.seed, 1])
    order, position, out_losses = rng.permutation(len(data.x_train)), 0, []
    for _ in range(steps):
        if position >= len(order):
            order, position = rng.permutation(len(data.x_train)), 0
        idx = order[position:position + settings.batch_size]
        position += len(idx)
        h, labels = data.x_train[idx], data.y_train[idx]
        xs, zs, ys = [], [], []
        for i, (w, b) in enumerate(zip(net.weights, net.biases)):
            qx, sx = quantize(h)
            qw, sw = quantize(w)
            z = (qx.astype(np.int32) @ qw.astype(np.int32)).astype(np.float32) * np.float32(sx * sw)
            z += b
            xs.append(h)
            zs.append(z)
            h = act.forward(net.layer_activation(i), z)
            ys.append(h)
        loss, dz = ls.cross_entropy(h, labels)
        out_losses.append(loss)
        gw, gb = [None] * net.n_layers, [None] * net.n_layers
        for i in range(net.n_layers - 1, -1, -1):
            gw[i] = xs[i].T @ dz
            gb[i] = dz.sum(axis=0)
            if i:
                dx = dz @ net.weights[i].T
                dz = act.backward(net.layer_activation(i - 1), zs[i - 1], ys[i - 1], dx)
        opt.step(net.params, [g for pair in zip(gw, gb) for g in pair])
    return np.array(out_losses), net


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_an_int8_chip_trains_and_equals_the_old_int8_path(dataflow):
    """The chip's precision is the one owner: Trainer(settings, ChipConfig(precision="int8"))
    trains (forward GEMMs in int8, backward and master weights in fp32), and its numbers are
    bit for bit those of the int8 runs before (see old_int8_path)."""
    settings = TrainSettings(**{**DIGITS, "seed": 3})
    trainer = Trainer(settings, ChipConfig(rows=4, cols=6, dataflow=dataflow, precision="int8"))
    steps = 60
    got = losses_of(trainer, steps)
    assert np.isfinite(got).all() and got[-10:].mean() < 0.6 * got[:10].mean()  # the loss falls
    want, reference = old_int8_path(settings, trainer.data, steps)
    assert got.tobytes() == want.tobytes()
    for p, q in zip(trainer.net.params, reference.params):
        assert p.dtype == np.float32 and p.tobytes() == q.tobytes()
    # the same settings on an fp32 chip give a different (fp32) run
    fp32 = losses_of(Trainer(settings, ChipConfig(rows=4, cols=6, dataflow=dataflow)), steps)
    assert not np.array_equal(fp32, got)
    # evaluation runs the forward pass in the chip's precision too
    runner = ChipRunner(trainer.chip)
    out, _ = trainer.net.forward(trainer.data.x_test, runner)
    assert {op.name for op in runner.ops if op.is_gemm} == {"Y = X·W (int8)"}
    from chipviz.nn import losses as ls
    assert trainer.evaluate("test")[0] == ls.cross_entropy(out, trainer.data.y_test)[0]


def test_divergence_facts_and_their_sentence():
    cases = [
        (Divergence(12, "loss", float("nan"), 0.5, 11),
         "Training diverged at step 12: the loss became nan (learning rate 0.5 is probably too high). "
         "The weights of step 11 were kept."),
        (Divergence(3, "loss", float("inf"), 100.0, 2),
         "Training diverged at step 3: the loss became inf (learning rate 100 is probably too high). "
         "The weights of step 2 were kept."),
        (Divergence(7, "weight", None, 0.01, 6),
         "Training diverged at step 7: a weight became NaN or infinite (learning rate 0.01 is probably too "
         "high). The weights of step 6 were kept."),
        (Divergence(1, "gradient", None, 2e-05, 0),
         "Training diverged at step 1: a gradient became NaN or infinite (learning rate 2e-05 is probably too "
         "high). The weights of step 0 were kept."),
    ]
    for d, sentence in cases:
        assert str(d) == sentence == str(Diverged(d))
        assert Diverged(d).divergence is d
        again = Divergence.from_dict(d.to_dict())
        assert again == d and hash(again) == hash(d)  # NaN losses compare equal here
    with pytest.raises(ValueError, match="what"):
        Divergence(1, "bias", None, 0.1, 0)
    with pytest.raises(ValueError):
        Divergence(1, "loss", None, 0.1, 0)  # a loss divergence has its value


def test_int8_forward_is_the_dequantised_integer_product():
    net = MLP((6, 5, 3), "tanh", seed=4)
    x = np.random.default_rng(4).standard_normal((7, 6)).astype(np.float32)
    out8, cache = net.forward(x, ChipRunner(ChipConfig(rows=3, cols=4, precision="int8"), "cycle"))
    out32, _ = net.forward(x, ChipRunner(ChipConfig(rows=3, cols=4)))
    # reference: quantise X and W per tensor, multiply exactly in integers, scale back
    h = x
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        qx, sx = quantize(h)
        qw, sw = quantize(w)
        z = (qx.astype(np.int64) @ qw.astype(np.int64)).astype(np.float32) * np.float32(sx * sw) + b
        np.testing.assert_allclose(cache.pre[i], z, rtol=1e-6, atol=1e-6)
        h = np.tanh(z) if i == 0 else z
    np.testing.assert_allclose(out8, h, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(out8, out32)
    np.testing.assert_allclose(out8, out32, atol=0.1)  # close to fp32, not equal


@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=8),
                  elements=st.floats(-1e6, 1e6, width=32)))
def test_quantize_round_trip_error_is_at_most_half_a_step(x):
    peak = float(np.abs(x).max())
    assume(peak == 0 or peak >= 1e-30)  # tiny peaks: see the test below
    q, s = quantize(x)
    assert q.dtype == np.int8 and q.shape == x.shape
    assert np.abs(q.astype(np.int64)).max() <= 127
    if peak == 0:
        assert s == 1.0 and not q.any()
        return
    assert s == pytest.approx(peak / 127, rel=1e-12)
    assert np.abs(q.astype(np.int64)).max() == 127  # the peak uses the whole range
    err = np.abs(x.astype(np.float64) - q.astype(np.float64) * s)
    assert err.max() <= s / 2 * (1 + 1e-4)


def test_quantize_edge_cases():
    q, s = quantize(np.zeros((0, 3), np.float32))
    assert q.shape == (0, 3) and s == 1.0
    q, s = quantize(np.array([-2.0, 1.0, 0.0]))  # float64 works too; symmetric, so -peak → -127
    assert q.tolist() == [-127, 64, 0] and s == 2 / 127


def test_quantize_tiny_values():
    """Tiny peaks quantise to within half a step. quantize once divided a float32 array by a
    Python float scale, which numpy (NEP 50) rounds to float32, so for peaks below ~1e-36 the
    scale underflowed: quantize([1e-44, 6e-45] as float32) gave q = [127, 127] with s = 7.7e-47,
    and 6e-45 came back as 9.8e-45, ~49 steps off. It now works in float64."""
    x = np.array([1e-44, 6e-45], np.float32)
    q, s = quantize(x)
    err = np.abs(x.astype(np.float64) - q.astype(np.float64) * s)
    assert err.max() <= s / 2 * (1 + 1e-4), (q, s)


# --- quality goals (fast, so they run by default) ---------------------------------------------

def test_quality_goal_digits_96_percent_within_20_epochs():
    # QUALITY GOAL: 64-32-10 on digits, Adam lr=0.01, batch 32 → ≥ 96 % test accuracy in 20 epochs
    start = time.perf_counter()
    trainer = Trainer(TrainSettings(**DIGITS), ChipConfig())
    assert trainer.net.sizes == (64, 32, 10)
    trainer.fit(20)
    seconds = time.perf_counter() - start
    acc = trainer.history["test_acc"]
    acc = acc[~np.isnan(acc)]
    assert len(acc) == 20
    assert trainer.epoch == 19 and trainer.step_count == 20 * trainer.steps_per_epoch
    assert acc.max() >= 0.96, acc
    assert acc[-1] >= 0.96, acc
    assert acc[-1] == trainer.evaluate("test")[1]
    print(f"digits quality goal: best {acc.max():.4f}, final {acc[-1]:.4f}, {seconds:.2f} s")


def test_quality_goal_spiral_95_percent():
    # QUALITY GOAL: spiral (noise 0), hidden (16, 16) tanh, Adam lr 0.01, batch 16, 300 epochs → ≥ 95 %
    start = time.perf_counter()
    settings = TrainSettings(dataset="spiral", noise=0.0, hidden=(16, 16), activation="tanh",
                             optimizer="adam", lr=0.01, batch_size=16)
    trainer = Trainer(settings, ChipConfig())
    accs = []
    trainer.fit(300, on_epoch=lambda epoch, loss, acc: accs.append(acc))
    seconds = time.perf_counter() - start
    assert len(accs) == 300
    assert max(accs) >= 0.95 and accs[-1] >= 0.95, accs[-10:]
    print(f"spiral quality goal: best {max(accs):.4f}, final {accs[-1]:.4f}, {seconds:.2f} s")
