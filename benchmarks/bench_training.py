"""Training throughput on the chip against a plain numpy MLP, measured side by side.

    python benchmarks/bench_training.py [--quick]

Prints a Markdown table: samples per second of a 64-32-10 MLP on the digits with Adam,
batch 32, on an 8×8 ws chip (analytic engine), the same step in plain numpy (no chip, no
bookkeeping), their ratio, the same on an int8 chip, the same for 784-64-64-10 on generated
784-d data, and one full training step with the cycle-accurate engine.
"""
from __future__ import annotations

import argparse
import os
import time

# One BLAS thread for both sides: on 2 shared cores OpenBLAS's second thread makes small
# matrix products erratically slow (seen: 36 µs → 6 ms), which would measure noise, not code.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from chipviz.chip import ChipConfig
from chipviz.data import Dataset
from chipviz.nn.trainer import Trainer, TrainSettings


def numpy_step_factory(x_all, y_all, sizes, lr, batch, seed):
    """The same MLP step (ReLU, softmax cross-entropy, Adam) in plain float32 numpy."""
    rng = np.random.default_rng(seed)
    ws = [(rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(b, np.float32) for b in sizes[1:]]
    params = [p for pair in zip(ws, bs) for p in pair]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    order = np.random.default_rng(seed).permutation(len(x_all))
    state = {"t": 0, "pos": 0}

    def step():
        pos = state["pos"]
        if pos >= len(order):
            pos = 0
        idx = order[pos:pos + batch]
        state["pos"] = pos + len(idx)
        x, y = x_all[idx], y_all[idx]
        acts, pres = [x], []
        for i, (w, b) in enumerate(zip(ws, bs)):
            z = acts[-1] @ w + b
            pres.append(z)
            acts.append(np.maximum(z, 0) if i < len(ws) - 1 else z)
        z = acts[-1]
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        dz = p / len(y)
        grads = [None] * (2 * len(ws))
        for i in range(len(ws) - 1, -1, -1):
            grads[2 * i] = acts[i].T @ dz
            grads[2 * i + 1] = dz.sum(0)
            if i:
                dz = (dz @ ws[i].T) * (pres[i - 1] > 0)
        state["t"] += 1
        c1, c2 = 1 - 0.9 ** state["t"], 1 - 0.999 ** state["t"]
        for p_, g, m_, v_ in zip(params, grads, m, v):
            m_ *= 0.9
            m_ += 0.1 * g
            v_ *= 0.999
            v_ += 0.001 * g * g
            p_ -= lr * (m_ / c1) / (np.sqrt(v_ / c2) + 1e-8)

    return step


def rate(step, n, batch):
    step()
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            step()
        best = max(best, n * batch / (time.perf_counter() - t))
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 200 if args.quick else 1000
    settings = TrainSettings(dataset="digits", hidden=(32,), optimizer="adam", lr=0.01, batch_size=32)
    chip = ChipConfig(rows=8, cols=8, dataflow="ws")
    trainer = Trainer(settings, chip)
    chip_rate = rate(trainer.step, n, 32)
    numpy_step = numpy_step_factory(trainer.data.x_train, trainer.data.y_train, (64, 32, 10), 0.01, 32, 0)
    numpy_rate = rate(numpy_step, n, 32)
    # the classic 784-64-64-10 shape, on generated MNIST-sized data (MNIST itself is not shipped)
    rng = np.random.default_rng(0)
    x = rng.random((2048, 784), dtype=np.float32)
    y = rng.integers(0, 10, 2048)
    big_data = Dataset("mnist-shaped", x[:1536], y[:1536], x[1536:], y[1536:], 10, None, "random 784-d data")
    big = Trainer(TrainSettings(hidden=(64, 64), optimizer="adam", lr=0.001, batch_size=32),
                  ChipConfig(rows=8, cols=8, dataflow="ws"), data=big_data)
    big_rate = rate(big.step, n // 2, 32)
    big_numpy = numpy_step_factory(big.data.x_train, big.data.y_train, (784, 64, 64, 10), 0.001, 32, 0)
    big_numpy_rate = rate(big_numpy, n // 2, 32)
    int8 = Trainer(settings, chip.with_(precision="int8"))  # forward GEMMs quantised, backward fp32
    int8_rate = rate(int8.step, n, 32)
    cycle = Trainer(TrainSettings(**{**settings.to_dict(), "engine": "cycle"}), chip)
    cycle.step()
    times = []
    for _ in range(20):
        t = time.perf_counter()
        cycle.step()
        times.append(time.perf_counter() - t)
    print("| measure | value |\n|---|---|")
    print(f"| samples/s, chip (analytic engine), 64-32-10, batch 32, 8×8 ws | {chip_rate:,.0f} |")
    print(f"| samples/s, plain numpy, same MLP step | {numpy_rate:,.0f} |")
    print(f"| ratio numpy / chip (goal ≤ 1.5) | {numpy_rate / chip_rate:.2f} |")
    print(f"| samples/s, int8 chip (analytic engine), same MLP | {int8_rate:,.0f} |")
    print(f"| samples/s, chip (analytic engine), 784-64-64-10, batch 32 | {big_rate:,.0f} |")
    print(f"| samples/s, plain numpy, 784-64-64-10 | {big_numpy_rate:,.0f} |")
    print(f"| ratio numpy / chip, 784-64-64-10 | {big_numpy_rate / big_rate:.2f} |")
    print(f"| one training step, cycle-accurate engine (median of 20; goal < 20 ms) | "
          f"{np.median(times) * 1e3:.1f} ms |")


if __name__ == "__main__":
    main()
