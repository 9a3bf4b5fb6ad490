"""SGD, momentum and Adam against their published update rules, written out here step by step.

Headless: no panel, no bokeh.
"""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from chipviz.nn.optimizers import OPTIMIZERS, SGD, Adam, Momentum, make_optimizer

W0 = [np.array([[0.5, -1.0, 2.0], [0.0, 0.25, -3.0]]), np.array([0.1, -0.2, 0.3])]
# hand-chosen gradients for 3 steps, with zeros, sign changes and different magnitudes
GRADS = [
    [np.array([[1.0, -2.0, 0.5], [0.0, 4.0, -0.125]]), np.array([0.5, 0.0, -1.0])],
    [np.array([[-1.0, -1.0, 0.25], [2.0, 0.0, 1e-3]]), np.array([0.5, 3.0, 1.0])],
    [np.array([[0.5, 2.0, -0.5], [-2.0, 1.0, 10.0]]), np.array([-0.25, 0.0, 0.0])],
]


def params(dtype=np.float64):
    return [w.astype(dtype) for w in W0]


def grads(t, dtype=np.float64):
    return [g.astype(dtype) for g in GRADS[t]]


# --- the published rules, by hand -------------------------------------------------------------

def sgd_reference(lr):
    w = [p.copy() for p in W0]
    out = []
    for g in GRADS:
        w = [p - lr * gi for p, gi in zip(w, g)]  # W ← W − α g
        out.append(w)
    return out


def momentum_reference(lr, mu):
    """Keras SGD(momentum=μ): v ← μ v − α g; W ← W + v, with v₀ = 0."""
    w = [p.copy() for p in W0]
    v = [np.zeros_like(p) for p in W0]
    out = []
    for g in GRADS:
        v = [mu * vi - lr * gi for vi, gi in zip(v, g)]
        w = [p + vi for p, vi in zip(w, v)]
        out.append(w)
    return out


def adam_reference(lr, b1=0.9, b2=0.999, eps=1e-8):
    """Kingma & Ba (2015), Algorithm 1."""
    w = [p.copy() for p in W0]
    m = [np.zeros_like(p) for p in W0]
    v = [np.zeros_like(p) for p in W0]
    out = []
    for t, g in enumerate(GRADS, start=1):
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
        m_hat = [mi / (1 - b1**t) for mi in m]
        v_hat = [vi / (1 - b2**t) for vi in v]
        w = [p - lr * mh / (np.sqrt(vh) + eps) for p, mh, vh in zip(w, m_hat, v_hat)]
        out.append(w)
    return out


CASES = {
    "sgd": (lambda: SGD(0.1), lambda: sgd_reference(0.1)),
    "momentum": (lambda: Momentum(0.1, 0.9), lambda: momentum_reference(0.1, 0.9)),
    "momentum_0.5": (lambda: Momentum(0.05, 0.5), lambda: momentum_reference(0.05, 0.5)),
    "adam": (lambda: Adam(0.01), lambda: adam_reference(0.01)),
    "adam_custom": (lambda: Adam(0.2, beta1=0.8, beta2=0.99, eps=1e-3),
                    lambda: adam_reference(0.2, 0.8, 0.99, 1e-3)),
}


@pytest.mark.parametrize("case", CASES)
def test_three_steps_follow_the_published_rule_float64(case):
    make, reference = CASES[case]
    opt = make()
    ps = params()
    ids = [id(p) for p in ps]
    for t, expected in enumerate(reference()):
        opt.step(ps, grads(t))
        assert opt.t == t + 1
        assert [id(p) for p in ps] == ids, "parameters must be updated in place"
        for got, want in zip(ps, expected):
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15, err_msg=f"{case} step {t + 1}")


@pytest.mark.parametrize("case", CASES)
def test_three_steps_follow_the_published_rule_float32(case):
    """The network's parameters are float32: they stay float32 and follow the rule to float32 precision."""
    make, reference = CASES[case]
    opt = make()
    ps = params(np.float32)
    for t, expected in enumerate(reference()):
        opt.step(ps, grads(t, np.float32))
        for got, want in zip(ps, expected):
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{case} step {t + 1}")


def test_first_adam_step_moves_each_weight_by_about_lr():
    """With bias correction, step 1 moves every weight with a non-zero gradient by α·sign(g)
    (up to ε): the signature of Algorithm 1 (without correction it would be about α·0.1/√0.001)."""
    opt = Adam(0.01)
    ps = params()
    opt.step(ps, grads(0))
    for p, p0, g in zip(ps, W0, GRADS[0]):
        expected = np.where(g != 0, -0.01 * np.sign(g), 0.0)
        np.testing.assert_allclose(p - p0, expected, rtol=1e-6, atol=1e-12)


def test_zero_gradient_leaves_weights_alone():
    for name in OPTIMIZERS:
        opt = make_optimizer(name, 0.5)
        ps = params()
        opt.step(ps, [np.zeros_like(p) for p in ps])
        for p, p0 in zip(ps, W0):
            np.testing.assert_array_equal(p, p0)


# --- defaults ---------------------------------------------------------------------------------

def _defaults(cls):
    return {k: v.default for k, v in inspect.signature(cls.__init__).parameters.items()
            if v.default is not inspect.Parameter.empty}


def test_defaults_are_as_documented():
    # SGD: Keras' learning rate 0.01
    assert _defaults(SGD) == {"lr": 0.01}
    assert SGD().lr == 0.01 and SGD().t == 0
    # Momentum: μ = 0.9 as the docstring says, Keras' lr 0.01
    assert _defaults(Momentum) == {"lr": 0.01, "momentum": 0.9}
    m = Momentum()
    assert (m.lr, m.momentum, m.t) == (0.01, 0.9, 0)
    assert "0.9" in Momentum.__doc__
    # Adam: Kingma & Ba's α = 0.001, β₁ = 0.9, β₂ = 0.999, ε = 1e-8
    assert _defaults(Adam) == {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    a = Adam()
    assert (a.lr, a.beta1, a.beta2, a.eps, a.t) == (0.001, 0.9, 0.999, 1e-8, 0)
    for text in ("0.9", "0.999", "1e-8"):
        assert text in Adam.__doc__
    assert OPTIMIZERS == ("sgd", "momentum", "adam")
    assert (SGD.name, Momentum.name, Adam.name) == OPTIMIZERS
    for cls in (SGD, Momentum, Adam):
        assert isinstance(cls.ops_per_element, int) and cls.ops_per_element > 0


def test_make_optimizer_builds_each_with_the_given_rate():
    for name, cls in zip(OPTIMIZERS, (SGD, Momentum, Adam)):
        opt = make_optimizer(name, 0.05)
        assert type(opt) is cls and opt.name == name and opt.lr == 0.05 and opt.t == 0
    m = make_optimizer("momentum", 0.05)
    assert m.momentum == 0.9
    a = make_optimizer("adam", 0.05)
    assert (a.beta1, a.beta2, a.eps) == (0.9, 0.999, 1e-8)


@pytest.mark.parametrize("bad", ["rmsprop", "Adam", "", "sgd ", None, 3])
def test_make_optimizer_rejects_unknown_names(bad):
    with pytest.raises(ValueError) as info:
        make_optimizer(bad, 0.01)
    msg = str(info.value)
    assert "optimizer" in msg
    for allowed in OPTIMIZERS:
        assert allowed in msg
    assert repr(bad) in msg


# --- state round trip ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("after", [0, 1, 2])
def test_state_round_trip_continues_identically(name, after):
    a = make_optimizer(name, 0.03)
    pa = params(np.float32)
    for t in range(after):
        a.step(pa, grads(t, np.float32))
    state = a.state()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert int(state["t"]) == after
    # plain arrays only: the state survives np.savez / np.load(allow_pickle=False)
    assert all(v.dtype != object for v in state.values())

    b = make_optimizer(name, 0.03)
    pb = [p.copy() for p in pa]
    b.load_state({k: v.copy() for k, v in state.items()}, pb)
    assert b.t == after
    for t in range(after, 3):
        a.step(pa, grads(t, np.float32))
        b.step(pb, grads(t, np.float32))
        for x, y in zip(pa, pb):
            np.testing.assert_array_equal(x, y)
    sa, sb = a.state(), b.state()
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k])
        assert sa[k].dtype == sb[k].dtype


@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_loaded_state_does_not_alias_the_given_arrays(name):
    a = make_optimizer(name, 0.03)
    pa = params(np.float32)
    a.step(pa, grads(0, np.float32))
    state = {k: v.copy() for k, v in a.state().items()}
    b = make_optimizer(name, 0.03)
    pb = [p.copy() for p in pa]
    b.load_state(state, pb)
    snapshot = {k: v.copy() for k, v in state.items()}
    b.step(pb, grads(1, np.float32))
    for k in state:
        np.testing.assert_array_equal(state[k], snapshot[k])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_names_are_stable(name):
    opt = make_optimizer(name, 0.01)
    ps = params(np.float32)
    assert set(opt.state()) == {"t"}
    opt.step(ps, grads(0, np.float32))
    expected = {"sgd": {"t"}, "momentum": {"t", "v0", "v1"}, "adam": {"t", "m0", "m1", "v0", "v1"}}[name]
    assert set(opt.state()) == expected
    for k, v in opt.state().items():
        if k != "t":
            assert v.shape == ps[int(k[1:])].shape
    assert math.isclose(float(opt.state()["t"]), 1)
