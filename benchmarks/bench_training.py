"""Training throughput on the chip against a plain numpy MLP, measured side by side.

    python benchmarks/bench_training.py [--quick]

Prints a Markdown table: samples per second of a 64-32-10 MLP on the digits with Adam,
batch 32, on an 8×8 ws chip (analytic engine), the same step in plain numpy (no chip, no
bookkeeping), their ratio, the same for 784-64-64-10 on generated 784-d data, the 64-32-10 on
an int8 chip, and one full training step with the cycle-accurate engine. The chip and numpy
steps run interleaved in one process (`steps` chip steps, then `steps` numpy steps, 9 times,
after 20 warm-up steps each); each side's figure is the median of its runs and the ratio is
chip / numpy of those medians (each run's ratio is listed too). One BLAS thread for both.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
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


def interleaved(chip_step, numpy_step, steps: int, runs: int) -> dict:
    """Seconds per step of each side, run interleaved (`steps` chip steps, then `steps` numpy steps,
    `runs` times) after a warm-up: the median of each side's runs, and chip / numpy of those medians."""
    for _ in range(20):  # warm-up: analyze's lru_cache, the trainer's memos, the allocator
        chip_step()
        numpy_step()
    chip_times, numpy_times = [], []
    for _ in range(runs):
        t = time.perf_counter()
        for _ in range(steps):
            chip_step()
        chip_times.append((time.perf_counter() - t) / steps)
        t = time.perf_counter()
        for _ in range(steps):
            numpy_step()
        numpy_times.append((time.perf_counter() - t) / steps)
    chip_s, numpy_s = statistics.median(chip_times), statistics.median(numpy_times)
    return {"chip": chip_s, "numpy": numpy_s, "ratio": chip_s / numpy_s,
            "ratios": sorted(c / n for c, n in zip(chip_times, numpy_times))}


def per_step(step, steps: int, runs: int) -> float:
    """Median seconds per step over `runs` runs of `steps` steps, after a warm-up."""
    for _ in range(20):
        step()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - t) / steps)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer and shorter runs: a smoke run")
    args = ap.parse_args(argv)
    steps, runs = (100, 3) if args.quick else (500, 9)
    t0 = time.perf_counter()
    print(f"ChipViz training benchmark{' (--quick)' if args.quick else ''}: Python {platform.python_version()}, "
          f"numpy {np.__version__}, {os.cpu_count()} CPUs ({platform.machine()}), "
          f"load average {os.getloadavg()[0]:.2f}, OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}\n")
    settings = TrainSettings(dataset="digits", hidden=(32,), optimizer="adam", lr=0.01, batch_size=32)
    chip = ChipConfig(rows=8, cols=8, dataflow="ws")
    trainer = Trainer(settings, chip)
    numpy_step = numpy_step_factory(trainer.data.x_train, trainer.data.y_train, (64, 32, 10), 0.01, 32, 0)
    small = interleaved(trainer.step, numpy_step, steps, runs)
    # the classic 784-64-64-10 shape, on generated MNIST-sized data (MNIST itself is not shipped)
    rng = np.random.default_rng(0)
    x = rng.random((2048, 784), dtype=np.float32)
    y = rng.integers(0, 10, 2048)
    big_data = Dataset("mnist-shaped", x[:1536], y[:1536], x[1536:], y[1536:], 10, None, "random 784-d data")
    big = Trainer(TrainSettings(hidden=(64, 64), optimizer="adam", lr=0.001, batch_size=32),
                  ChipConfig(rows=8, cols=8, dataflow="ws"), data=big_data)
    big_numpy = numpy_step_factory(big.data.x_train, big.data.y_train, (784, 64, 64, 10), 0.001, 32, 0)
    large = interleaved(big.step, big_numpy, max(1, steps // 2), runs)
    int8 = Trainer(settings, chip.with_(precision="int8"))  # forward GEMMs quantised, backward fp32
    int8_s = per_step(int8.step, steps, runs)
    cycle = Trainer(TrainSettings(**{**settings.to_dict(), "engine": "cycle"}), chip)
    cycle.step()  # numba compiles (or loads its cache) here
    times = []
    for _ in range(20):
        t = time.perf_counter()
        cycle.step()
        times.append(time.perf_counter() - t)

    def rate(seconds):
        return f"{32 / seconds:,.0f} samples/s ({seconds * 1e6:,.0f} µs/step)"

    detail = f"median of {runs} runs of {{}} steps, interleaved with numpy's"
    print("| measure | result | detail |\n|---|---|---|")
    print(f"| chip (analytic engine), 64-32-10, digits, batch 32, Adam, 8×8 ws | {rate(small['chip'])} | "
          f"{detail.format(steps)} |")
    print(f"| plain numpy, the same MLP step | {rate(small['numpy'])} | no chip, no bookkeeping |")
    print(f"| ratio chip / numpy (goal ≤ 1.5) | {small['ratio']:.2f}× | per run: "
          f"{' '.join(f'{r:.2f}' for r in small['ratios'])} |")
    print(f"| chip (analytic engine), 784-64-64-10, batch 32 (generated 784-d data) | {rate(large['chip'])} | "
          f"{detail.format(max(1, steps // 2))} |")
    print(f"| plain numpy, 784-64-64-10 | {rate(large['numpy'])} | |")
    print(f"| ratio chip / numpy, 784-64-64-10 (goal ≤ 1.5) | {large['ratio']:.2f}× | per run: "
          f"{' '.join(f'{r:.2f}' for r in large['ratios'])} |")
    print(f"| int8 chip (analytic engine), 64-32-10 | {rate(int8_s)} | forward GEMMs quantised; median of "
          f"{runs} runs of {steps} steps |")
    print(f"| one training step, 64-32-10, cycle-accurate engine (goal < 20 ms) | "
          f"{statistics.median(times) * 1e3:.1f} ms | median of 20 steps |")
    print(f"\nTotal benchmark time {time.perf_counter() - t0:.1f} s.")


if __name__ == "__main__":
    main()
