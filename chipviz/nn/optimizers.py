"""Gradient descent rules: W ← W − α·∂L/∂W and its two best-known refinements.

Each optimizer keeps its state as named numpy arrays, so a run can be saved and resumed
exactly. Defaults are the usual published ones (Keras / Kingma & Ba 2015).
"""
from __future__ import annotations

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "adam")


class SGD:
    """Plain gradient descent: W ← W − α·g."""

    name = "sgd"
    ops_per_element = 2  # multiply, subtract

    def __init__(self, lr: float = 0.01):
        self.lr = lr
        self.t = 0

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        self.t += 1
        for p, g in zip(params, grads):
            p -= self.lr * g

    def state(self) -> dict[str, np.ndarray]:
        return {"t": np.array(self.t)}

    def load_state(self, state: dict[str, np.ndarray], params: list[np.ndarray]) -> None:
        self.t = int(state["t"])


class Momentum(SGD):
    """Heavy-ball momentum: v ← μ·v − α·g; W ← W + v (μ = 0.9)."""

    name = "momentum"
    ops_per_element = 4

    def __init__(self, lr: float = 0.01, momentum: float = 0.9):
        super().__init__(lr)
        self.momentum = momentum
        self.velocity: list[np.ndarray] = []

    def step(self, params, grads):
        if not self.velocity:
            self.velocity = [np.zeros_like(p) for p in params]
        self.t += 1
        for p, g, v in zip(params, grads, self.velocity):
            v *= self.momentum
            v -= self.lr * g
            p += v

    def state(self):
        return {"t": np.array(self.t), **{f"v{i}": v for i, v in enumerate(self.velocity)}}

    def load_state(self, state, params):
        self.t = int(state["t"])
        self.velocity = [np.array(state[f"v{i}"], dtype=p.dtype) for i, p in enumerate(params)] if self.t else []


class Adam(SGD):
    """Adam (Kingma & Ba 2015, Algorithm 1): m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
    W ← W − α·m̂/(√v̂ + ε) with m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ); β₁ = 0.9, β₂ = 0.999, ε = 1e-8."""

    name = "adam"
    ops_per_element = 10

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m: list[np.ndarray] = []
        self.v: list[np.ndarray] = []

    def step(self, params, grads):
        if not self.m:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        flat = self._flat(params, grads)
        if flat is not None:  # the same elementwise rule on all parameters at once: the same numbers
            m, v, bounds = flat
            g = np.concatenate(grads, axis=None)
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            update = (self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)).astype(m.dtype, copy=False)
            for p, (lo, hi) in zip(params, bounds):
                p -= update[lo:hi].reshape(p.shape)
            return
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= (self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)).astype(p.dtype, copy=False)

    def _flat(self, params, grads):
        """(m, v, bounds): the moments as one flat array each, of which self.m and self.v are views,
        and each parameter's [start, stop) in them; None when the parameters and gradients do not all
        share one type and the moments' shapes (then the rule runs parameter by parameter). Each
        operation of the rule is elementwise, so one call on the concatenation computes every
        element exactly as one call per parameter does, with a fraction of the calls."""
        if not params or len(params) != len(grads) or len(params) != len(self.m):
            return None
        dtype = params[0].dtype
        for x in params:
            if x.dtype != dtype:
                return None
        for x in grads:
            if x.dtype != dtype:
                return None
        cached = getattr(self, "_flat_moments", None)
        if cached is None or cached[0] is not self.m or cached[1] is not self.v:  # first step, or loaded state
            if any(x.dtype != dtype for x in (*self.m, *self.v)) or any(
                    m.shape != p.shape or v.shape != p.shape for m, v, p in zip(self.m, self.v, params)):
                return None
            sizes = np.cumsum([0] + [p.size for p in params]).tolist()
            bounds = list(zip(sizes[:-1], sizes[1:]))
            m, v = np.concatenate(self.m, axis=None), np.concatenate(self.v, axis=None)
            self.m = [m[lo:hi].reshape(p.shape) for p, (lo, hi) in zip(params, bounds)]
            self.v = [v[lo:hi].reshape(p.shape) for p, (lo, hi) in zip(params, bounds)]
            self._flat_moments = cached = (self.m, self.v, (m, v, bounds))
        return cached[2]

    def state(self):
        arrays = {f"m{i}": m for i, m in enumerate(self.m)} | {f"v{i}": v for i, v in enumerate(self.v)}
        return {"t": np.array(self.t), **arrays}

    def load_state(self, state, params):
        self.t = int(state["t"])
        if self.t:
            self.m = [np.array(state[f"m{i}"], dtype=p.dtype) for i, p in enumerate(params)]
            self.v = [np.array(state[f"v{i}"], dtype=p.dtype) for i, p in enumerate(params)]


def make_optimizer(name: str, lr: float):
    classes = {"sgd": SGD, "momentum": Momentum, "adam": Adam}
    if name not in classes:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    return classes[name](lr)
