"""A CNN on the chip: training-step speed against plain numpy, the cycle-accurate step, and accuracy over seeds.

    python benchmarks/bench_cnn.py [--quick] [--seeds N] [--epochs E] [--layers conv3x3x8,pool2,10 ...]

(a) one training step of `conv3x3x8,pool2,10` on the shipped 8×8 digits (batch 32, Adam lr 0.01,
    8×8 ws chip) on the analytic engine, against the same step written here in plain numpy (im2col,
    the three matrix products, max pooling, softmax cross-entropy, backward, Adam), timed side by side,
    interleaved, in one process: the median of several runs of each, and their ratio (goal ≤ 2×);
(b) the same step on the cycle-accurate engine, 8×8 array: time per step and simulated PE-cycles/s;
(c) test accuracy after 30 epochs over seeds, with SGD, momentum and Adam, for the CNN(s) and for
    the 64-32-10 MLP trained the same way (chipviz.nn.trainer.Trainer, as `chipviz train` runs it).

See benchmarks/README.md for what each figure means.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

# One BLAS thread for both sides, as bench_training.py: on 2 shared cores OpenBLAS's second thread makes
# small matrix products erratically slow, which would measure noise, not code.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numba  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other benchmarks, also when loaded by a test
from bench_training import interleaved  # noqa: E402  (the same side-by-side timing as the MLP's)
from chipviz.chip import ChipConfig  # noqa: E402
from chipviz.nn.conv import Conv2D, Dense, Flatten, MaxPool  # noqa: E402
from chipviz.nn.trainer import Trainer, TrainSettings  # noqa: E402

CNN = "conv3x3x8,pool2,10"
WIDER = "conv3x3x16,pool2,10"  # the variant: twice the filters
MLP = "64,32,10"
# learning rate per optimizer for (c): Adam's is the CLI's default (0.01, the MLP's README figure); SGD and
# momentum need larger steps to train in 30 epochs. Chosen with --lr-sweep (3 seeds, on the test split:
# treat (c)'s figures as slightly optimistic for every network alike)
LRS = {"sgd": 0.1, "momentum": 0.03, "adam": 0.01}
GOAL = 0.97


def chip() -> ChipConfig:
    return ChipConfig(rows=8, cols=8, dataflow="ws")


def settings_for(layers: str, optimizer: str = "adam", lr: float = 0.01, seed: int = 0,
                 engine: str = "analytic") -> TrainSettings:
    """TrainSettings for a `--layers` description as `chipviz train` reads it (input width first for an MLP)."""
    tokens = layers.split(",")
    if all(t.isdigit() for t in tokens):
        hidden = tuple(int(t) for t in tokens[1:-1])  # "64,32,10": the input and output widths come from the data
    else:
        hidden = tuple(tokens[:-1])  # a CNN: the last token is the output width (the data's classes)
    return TrainSettings(dataset="digits", hidden=hidden, optimizer=optimizer, lr=lr, batch_size=32, seed=seed,
                         engine=engine)


# ------------------------------------------------------------------------------------ (a) plain numpy


class NumpyCNN:
    """conv (stride 1, "same" or "valid") → relu → max pool p → flatten → dense, softmax cross-entropy, Adam,
    in plain float32 numpy: the math of ChipViz's ConvNet step without the chip. Built from a ChipViz
    ConvNet of that shape so that both start from the same weights (`params` are copies)."""

    def __init__(self, net, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        conv, pool, dense = (next(layer for layer in net.layers if isinstance(layer, kind))
                             for kind in (Conv2D, MaxPool, Dense))
        layers = [type(layer) for layer in net.layers]
        if layers != [Conv2D, MaxPool, Flatten, Dense] or conv.geometry.stride_h != 1:
            raise ValueError(f"NumpyCNN mirrors conv(stride 1) → maxpool → flatten → dense, got {net.sizes}")
        g = conv.geometry
        self.h, self.w, self.c = g.in_shape
        self.kh, self.kw, self.filters = g.kernel_h, g.kernel_w, g.filters
        (self.oh, self.top, self.bottom), (self.ow, self.left, self.right) = g.rows, g.cols
        self.p = pool.size
        self.ph, self.pw = self.oh // self.p, self.ow // self.p
        self.params = [conv.weight.copy(), conv.bias.copy(), dense.weight.copy(), dense.bias.copy()]
        self.m = [np.zeros_like(q) for q in self.params]
        self.v = [np.zeros_like(q) for q in self.params]
        self.lr, self.beta1, self.beta2, self.eps, self.t = lr, beta1, beta2, eps, 0

    def im2col(self, x: np.ndarray) -> np.ndarray:
        """(batch·OH·OW) × (kh·kw·C), window order kernel row, kernel column, channel (as chipviz.chip.conv)."""
        n = len(x)
        padded = np.zeros((n, self.h + self.top + self.bottom, self.w + self.left + self.right, self.c), x.dtype)
        padded[:, self.top:self.top + self.h, self.left:self.left + self.w] = x
        cols = np.empty((n, self.oh, self.ow, self.kh, self.kw, self.c), x.dtype)
        for dy in range(self.kh):
            for dx in range(self.kw):
                cols[:, :, :, dy, dx] = padded[:, dy:dy + self.oh, dx:dx + self.ow]
        return cols.reshape(n * self.oh * self.ow, self.kh * self.kw * self.c)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One mini-batch of flat inputs x (batch × H·W·C) and labels y; returns the loss."""
        wc, bc, wd, bd = self.params
        n, p, f = len(x), self.p, self.filters
        cols = self.im2col(x.reshape(n, self.h, self.w, self.c))
        z1 = cols @ wc + bc  # (n·OH·OW) × F
        a1 = np.maximum(z1, 0).reshape(n, self.oh, self.ow, f)
        win = (a1[:, :self.ph * p, :self.pw * p].reshape(n, self.ph, p, self.pw, p, f)
               .transpose(0, 1, 3, 5, 2, 4).reshape(n, self.ph, self.pw, f, p * p))
        pick = win.argmax(axis=-1)
        pooled = np.take_along_axis(win, pick[..., None], axis=-1)[..., 0]
        flat = pooled.reshape(n, -1)
        z2 = flat @ wd + bd
        # softmax cross-entropy and dL/dz2
        shifted = z2 - z2.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, y]))
        dz2 = e / total
        dz2[rows, y] -= 1
        dz2 /= n
        # backward: dense, then the pool routes each gradient to its window's max, relu′, conv's dW
        dwd, dbd = flat.T @ dz2, dz2.sum(axis=0)
        dpooled = (dz2 @ wd.T).reshape(n, self.ph, self.pw, f)
        dwin = np.zeros((n, self.ph, self.pw, f, p * p), np.float32)
        np.put_along_axis(dwin, pick[..., None], dpooled[..., None], axis=-1)
        da1 = np.zeros((n, self.oh, self.ow, f), np.float32)
        da1[:, :self.ph * p, :self.pw * p] = (dwin.reshape(n, self.ph, self.pw, f, p, p)
                                              .transpose(0, 1, 4, 2, 5, 3).reshape(n, self.ph * p, self.pw * p, f))
        dz1 = da1.reshape(-1, f) * (z1 > 0)
        dwc, dbc = cols.T @ dz1, dz1.sum(axis=0)  # the first layer's dX is not needed, as on the chip
        # Adam (Kingma & Ba 2015, Algorithm 1), as chipviz.nn.optimizers.Adam
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for q, g, m, v in zip(self.params, (dwc, dbc, dwd, dbd), self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            q -= (self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)).astype(q.dtype, copy=False)
        return loss


def batches(n: int, batch: int, seed: int):
    """An endless stream of shuffled mini-batch indices (a fresh permutation each epoch)."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        for start in range(0, n, batch):
            yield order[start:start + batch]


def speed_vs_numpy(steps: int, runs: int) -> dict:
    """(a): seconds per step, chip (analytic engine) and plain numpy, interleaved, median of `runs` runs."""
    trainer = Trainer(settings_for(CNN), chip())
    ref = NumpyCNN(trainer.net, lr=0.01)
    x_all, y_all = trainer.data.x_train, trainer.data.y_train
    stream = batches(len(x_all), 32, 0)

    def numpy_step():
        idx = next(stream)
        ref.step(x_all[idx], y_all[idx])

    return interleaved(trainer.step, numpy_step, steps, runs)


# ------------------------------------------------------------------------------------ (b) cycle-accurate


def cycle_step(steps: int) -> dict:
    """(b): one CNN training step with the cycle-accurate engine on 8×8: median seconds, PE-cycles/s."""
    trainer = Trainer(settings_for(CNN, engine="cycle"), chip())
    trainer.step()  # numba compiles (or loads its cache) here
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        trainer.step()
        times.append(time.perf_counter() - t)
    gemm_cycles = sum(op.cycles for op in trainer.last.ops if op.is_gemm)
    seconds = statistics.median(times)
    return {"seconds": seconds, "gemm_cycles": gemm_cycles, "gemms": sum(op.is_gemm for op in trainer.last.ops),
            "cycles": trainer.last.cycles, "pe_cycles_per_s": gemm_cycles * trainer.chip.pes / seconds}


# ------------------------------------------------------------------------------------ (c) accuracy


def train_run(layers: str, optimizer: str, lr: float, seed: int, epochs: int) -> list[float]:
    """Test accuracy after each epoch of one run, as `chipviz train --layers L --optimizer O --lr LR
    --epochs E --seed S` trains it (digits, batch 32, 8×8 ws, analytic engine)."""
    trainer = Trainer(settings_for(layers, optimizer, lr, seed), chip())
    accs: list[float] = []
    trainer.fit(epochs, on_epoch=lambda epoch, loss, acc: accs.append(acc))
    return accs


def accuracy_table(layers_list, optimizers, seeds, epochs, lrs) -> list[dict]:
    rows = []
    for layers in layers_list:
        for opt in optimizers:
            runs = [train_run(layers, opt, lrs[opt], s, epochs) for s in seeds]
            final = [r[-1] for r in runs]
            first = [next((e for e, a in enumerate(r, 1) if a >= GOAL), None) for r in runs]
            rows.append({"layers": layers, "optimizer": opt, "lr": lrs[opt], "final": final,
                         "best": [max(r) for r in runs], "first_goal": first})
    return rows


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def print_accuracy(rows, seeds, epochs) -> None:
    print(f"\n(c) test accuracy (%, 360 test digits) after {epochs} epochs, seeds {', '.join(map(str, seeds))}; "
          f"digits, batch 32, 8×8 ws, analytic engine\n")
    print("| network | optimizer, lr | after the last epoch: mean (min – max) | per seed | runs ≥ 97 % at the end | "
          "best epoch's accuracy, mean | first epoch ≥ 97 %, per seed |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        f = r["final"]
        first = ", ".join("–" if e is None else str(e) for e in r["first_goal"])
        print(f"| {r['layers']} | {r['optimizer']} {r['lr']:g} | {pct(np.mean(f))} ({pct(min(f))} – {pct(max(f))}) | "
              f"{' / '.join(pct(a) for a in f)} | {sum(a >= GOAL for a in f)}/{len(f)} | {pct(np.mean(r['best']))} | "
              f"{first} |")


def lr_sweep(layers_list, seeds, epochs) -> None:
    grid = {"sgd": (0.01, 0.03, 0.1, 0.3), "momentum": (0.003, 0.01, 0.03), "adam": (0.003, 0.01, 0.03)}
    for opt, lrs in grid.items():
        for lr in lrs:
            rows = accuracy_table(layers_list, (opt,), seeds, epochs, {opt: lr})
            print_accuracy(rows, seeds, epochs)


# ------------------------------------------------------------------------------------ main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, 1 seed, 3 epochs: a smoke run")
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 for (c) (default 10)")
    ap.add_argument("--epochs", type=int, default=30, help="epochs for (c) (default 30)")
    ap.add_argument("--layers", nargs="+", default=[CNN, WIDER, MLP],
                    help=f"networks for (c), as --layers of chipviz train (default {CNN} {WIDER} {MLP})")
    ap.add_argument("--only", choices=("a", "b", "c"), action="append", help="run only these parts")
    ap.add_argument("--lr-sweep", action="store_true", help="(c) for a grid of learning rates per optimizer "
                    "instead of LRS")
    args = ap.parse_args(argv)
    parts = set(args.only or "abc")
    steps, runs, cycle_steps = (100, 3, 5) if args.quick else (300, 9, 20)
    seeds = range(1 if args.quick else args.seeds)
    epochs = 3 if args.quick else args.epochs
    t0 = time.perf_counter()
    print(f"ChipViz CNN benchmark{' (--quick)' if args.quick else ''}: Python {platform.python_version()}, "
          f"numpy {np.__version__}, numba {numba.__version__}, {os.cpu_count()} CPUs ({platform.machine()}), "
          f"load average {os.getloadavg()[0]:.2f}, OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}\n")
    if parts & {"a", "b"}:
        print("| measure | result | detail |\n|---|---|---|")
    if "a" in parts:
        a = speed_vs_numpy(steps, runs)
        print(f"| (a) one training step, {CNN}, digits, batch 32, Adam, 8×8 ws, analytic engine | "
              f"{a['chip'] * 1e6:,.0f} µs | median of {runs} runs of {steps} steps, interleaved with numpy's |")
        print(f"| (a) the same step in plain numpy (im2col, matmuls, max pool, backward, Adam) | "
              f"{a['numpy'] * 1e6:,.0f} µs | same weights, same math (tests/test_bench_cnn.py) |")
        print(f"| (a) ratio chip / numpy (goal ≤ 2) | {a['ratio']:.2f}× | per run: "
              f"{' '.join(f'{r:.2f}' for r in a['ratios'])} |")
    if "b" in parts:
        b = cycle_step(cycle_steps)
        print(f"| (b) the same step, cycle-accurate engine, 8×8 ws | {b['seconds'] * 1e3:.1f} ms | median of "
              f"{cycle_steps} steps; {b['gemms']} GEMMs, {b['gemm_cycles']:,} array cycles "
              f"({b['cycles']:,} with the vector unit's) |")
        print(f"| (b) simulated PE-cycles/s (GEMM cycles × 64 PEs / step time) | {b['pe_cycles_per_s'] / 1e6:.1f} M | "
              f"whole step: im2col, vector work and bookkeeping included |")
    if "c" in parts:
        if args.lr_sweep:
            lr_sweep(args.layers, seeds, epochs)
        else:
            print_accuracy(accuracy_table(args.layers, ("sgd", "momentum", "adam"), seeds, epochs, LRS), seeds,
                           epochs)
    print(f"\nTotal benchmark time {time.perf_counter() - t0:.1f} s.")


if __name__ == "__main__":
    main()
