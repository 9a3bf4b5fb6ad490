"""One student's training session: settings, the trainer, and a worker thread that trains.

Plain `param` (no panel), so it is tested headless and shared by the dashboard and lessons.
The worker publishes an immutable `Snapshot` a few times per second; views draw from the
snapshot, never from the live trainer, so they need no locks and never see half a step.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import param

from .chip import DATAFLOWS, ChipConfig, gemm
from .chip.trace import Trace
from .data import TOYS
from .nn.activations import ACTIVATIONS
from .nn.landscape import LossPlane, loss_plane
from .nn.on_chip import ChipRunner, Operation
from .nn.optimizers import OPTIMIZERS, make_optimizer
from .nn.trainer import Diverged, StepReport, Trainer, TrainSettings
from . import server_load

APP_DATASETS = ("digits",) + TOYS
MAX_ANIMATED_SIDE = 64
TRAJECTORY_LENGTH = 64
PUBLISH_INTERVAL_S = 0.25  # while few sessions train; stretched by server_load when many do

# Settings that change the network's shape or data: changing one rebuilds the network.
RESET_SETTINGS = ("dataset", "hidden_layers", "width1", "width2", "width3", "width4", "activation", "seed",
                  "noise")
CHIP_SETTINGS = ("rows", "cols", "dataflow", "clock_mhz", "sram_kib", "dram_bytes_per_cycle")


@dataclass(frozen=True)
class Snapshot:
    """What the views draw: a consistent copy of the session after some step."""

    step: int
    epoch: int
    history: dict
    report: StepReport | None
    weights: tuple
    biases: tuple
    totals: dict
    test_loss: float
    test_accuracy: float
    trajectory: tuple = field(default=(), repr=False)  # flattened parameter vectors, oldest first
    update: tuple | None = field(default=None, repr=False)  # (params before, gradients) of the last step
    optimizer: str = "adam"
    lr: float = 0.01


class TrainingSession(param.Parameterized):
    # network and training
    dataset = param.Selector(default="digits", objects=list(APP_DATASETS))
    hidden_layers = param.Integer(default=1, bounds=(0, 4))
    width1 = param.Integer(default=32, bounds=(1, 512))
    width2 = param.Integer(default=16, bounds=(1, 512))
    width3 = param.Integer(default=16, bounds=(1, 512))
    width4 = param.Integer(default=16, bounds=(1, 512))
    activation = param.Selector(default="relu", objects=list(ACTIVATIONS))
    optimizer = param.Selector(default="adam", objects=list(OPTIMIZERS))
    lr = param.Number(default=0.01, bounds=(1e-4, 10.0))
    batch_size = param.Integer(default=32, bounds=(1, 256))
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1))
    precision = param.Selector(default="fp32", objects=["fp32", "int8"])
    noise = param.Number(default=0.0, bounds=(0.0, 0.5))
    # chip
    rows = param.Integer(default=8, bounds=(1, 256))
    cols = param.Integer(default=8, bounds=(1, 256))
    dataflow = param.Selector(default="ws", objects=list(DATAFLOWS))
    clock_mhz = param.Number(default=700.0, bounds=(1.0, 10_000.0))
    sram_kib = param.Number(default=256.0, bounds=(1.0, 65_536.0))
    dram_bytes_per_cycle = param.Number(default=32.0, bounds=(0.01, 100_000.0))
    # running
    steps_per_second = param.Integer(default=20, bounds=(1, 1000))
    running = param.Boolean(default=False)
    # outputs
    snapshot = param.Parameter(default=None, doc="the latest Snapshot")
    notice = param.String(default="", doc="a plain message to show the user (reset, divergence, bad URL)")
    diverged = param.String(default="")

    def __init__(self, **params):
        super().__init__(**params)
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._trajectory: deque = deque(maxlen=TRAJECTORY_LENGTH)
        self._pending_reset: list[str] = []
        self._test = (float("nan"), float("nan"))
        self.build()
        self.param.watch(self._on_reset_setting, list(RESET_SETTINGS))
        self.param.watch(self._on_live_setting, ["lr", "optimizer", "batch_size", "precision", *CHIP_SETTINGS])

    # ----- building -----
    @property
    def hidden(self) -> tuple[int, ...]:
        widths = (self.width1, self.width2, self.width3, self.width4)
        return tuple(widths[: self.hidden_layers])

    def settings(self) -> TrainSettings:
        return TrainSettings(dataset=self.dataset, hidden=self.hidden, activation=self.activation,
                             optimizer=self.optimizer, lr=self.lr, batch_size=self.batch_size, seed=self.seed,
                             precision=self.precision, noise=self.noise)

    def chip_config(self) -> ChipConfig:
        return ChipConfig(rows=self.rows, cols=self.cols, dataflow=self.dataflow, clock_mhz=self.clock_mhz,
                          ifmap_sram_kib=self.sram_kib, filter_sram_kib=self.sram_kib,
                          ofmap_sram_kib=self.sram_kib, dram_bytes_per_cycle=self.dram_bytes_per_cycle)

    def build(self) -> None:
        """(Re)create the network from the settings: step 0, fresh weights."""
        with self.lock:
            self.trainer = Trainer(self.settings(), self.chip_config(), keep_operands=True)
            self._trajectory.clear()
            self._trajectory.append(self._flat_params())
            self._test = self.trainer.record_evaluation()
            self.diverged = ""
            self._publish()

    def reset(self) -> None:
        self.pause()
        self.build()
        self.notice = ""

    def _on_reset_setting(self, *events):
        names = ", ".join(e.name for e in events)
        with self.lock:
            if self.running:
                self._pending_reset.append(names)  # the worker rebuilds at the next step boundary
                return
        self.build()
        self.notice = f"The network was reset because {names} changed."

    def _on_live_setting(self, *events):
        """Learning rate, optimizer, batch size, precision and chip apply from the next step on."""
        with self.lock:
            t = self.trainer
            t.settings = self.settings()
            t.optimizer.lr = self.lr
            if any(e.name == "optimizer" for e in events):
                t.optimizer = make_optimizer(self.optimizer, self.lr)
            if any(e.name in CHIP_SETTINGS for e in events):
                t.chip = self.chip_config()
                t.runner = ChipRunner(t.chip, t.settings.engine, keep_operands=True)

    # ----- training -----
    def step(self, n: int = 1) -> None:
        """Run n training steps now (in the caller's thread) and publish."""
        with self.lock:
            self._run_steps(n)
            self._publish()

    def _run_steps(self, n: int) -> bool:
        if self._pending_reset:
            names = ", ".join(self._pending_reset)
            self._pending_reset.clear()
            self.build()
            self.notice = f"The network was reset because {names} changed."
        try:
            for _ in range(n):
                before = self.trainer.epoch
                self.trainer.step()
                self._trajectory.append(self._flat_params())
                if self.trainer.epoch != before or self.trainer.step_count % 50 == 0:
                    self._test = self.trainer.record_evaluation()
        except Diverged as exc:
            self.diverged = str(exc)
            self.pause()
            return False
        return True

    def start(self) -> None:
        if self.diverged:
            return
        with self.lock:
            self.running = True
            server_load.started(self)
            if self._worker and self._worker.is_alive():
                return
            self._stop.clear()
            self._worker = threading.Thread(target=self._work, name="chipviz-trainer", daemon=True)
            self._worker.start()

    def pause(self) -> None:
        self.running = False
        server_load.stopped(self)

    def close(self) -> None:
        """Stop the worker for good (the browser tab closed)."""
        self.pause()
        self._stop.set()
        if self._worker and self._worker is not threading.current_thread():
            self._worker.join(timeout=5)

    def _work(self) -> None:
        last_publish = 0.0
        while not self._stop.is_set():
            if not self.running:
                self._stop.wait(0.05)
                continue
            began, cpu = time.perf_counter(), time.thread_time()
            with self.lock:
                ok = self._run_steps(1)
                stepped = time.thread_time() - cpu  # CPU time: waiting for the GIL is not this session's use
                if not ok or time.perf_counter() - last_publish >= PUBLISH_INTERVAL_S * server_load.stretch():
                    self._publish()
                    last_publish = time.perf_counter()
            pause = max(1.0 / self.steps_per_second - (time.perf_counter() - began), server_load.fair_pause(stepped))
            self._stop.wait(max(pause, 0.001))  # leave the server room for other sessions

    def _flat_params(self) -> np.ndarray:
        return np.concatenate([p.ravel() for p in self.trainer.net.params]).astype(np.float32)

    def _publish(self) -> None:
        t = self.trainer
        self.snapshot = Snapshot(
            step=t.step_count, epoch=t.epoch, history=t.history.as_arrays(), report=t.last,
            weights=tuple(w.copy() for w in t.net.weights), biases=tuple(b.copy() for b in t.net.biases),
            totals={p: dict(v) for p, v in t.totals.items()}, test_loss=self._test[0],
            test_accuracy=self._test[1], trajectory=tuple(self._trajectory), update=t.last_update,
            optimizer=t.optimizer.name, lr=t.optimizer.lr)

    # ----- what the views ask for -----
    def operations(self) -> list[Operation]:
        report = self.snapshot.report if self.snapshot else None
        return list(report.ops) if report else []

    def trace_operation(self, index: int, window: tuple[int, int] = (0, 10**9)) -> Trace:
        """Replay GEMM number `index` of the last step cycle by cycle and return its trace."""
        with self.lock:
            operands = self.trainer.runner.operands
            if not 0 <= index < len(operands) or operands[index] is None:
                raise ValueError(f"operation {index} of the last step is not a matrix multiply")
            a, b, config = operands[index]
        if max(config.rows, config.cols) > MAX_ANIMATED_SIDE:
            raise ValueError(f"arrays up to {MAX_ANIMATED_SIDE}×{MAX_ANIMATED_SIDE} are animated; "
                             f"this one is {config.rows}×{config.cols} (its numbers are still shown)")
        return gemm(a, b, config, engine="cycle", trace_window=window).trace

    def loss_surface(self, resolution: int = 21, batch: int = 256) -> LossPlane:
        """The loss around the current weights on the plane of the recent trajectory (fixed batch)."""
        snap = self.snapshot
        with self.lock:
            t = self.trainer
            x, y = t.data.x_train[:batch], t.data.y_train[:batch]
            net = t.net
        return loss_plane(net, np.stack(snap.trajectory), x, y, ChipRunner(self.chip_config()),
                          t.settings.loss, t.data.n_classes, resolution)

    def predict(self, points: np.ndarray) -> np.ndarray:
        """Class probabilities for raw input points (decision boundaries), computed on the chip."""
        from .nn.losses import softmax

        with self.lock:
            runner = ChipRunner(self.trainer.chip)
            x = self.trainer.transform(points)
            out, _ = self.trainer.net.forward(x, runner, int8=self.precision == "int8")
        return softmax(out.astype(np.float64))
