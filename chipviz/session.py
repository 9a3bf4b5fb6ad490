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

from . import server_load, settings
from .chip import ChipConfig, gemm
from .chip.trace import Trace
from .i18n import Message
from .nn.landscape import LossPlane, loss_plane
from .nn.on_chip import ChipRunner, Operation
from .nn.optimizers import make_optimizer
from .nn.trainer import Diverged, StepReport, Trainer, TrainSettings

TRAJECTORY_LENGTH = 64
PUBLISH_INTERVAL_S = 0.25  # while few sessions train; stretched by server_load when many do


@dataclass(frozen=True)
class Snapshot:
    """What the views draw: a consistent copy of the session after some step."""

    network: int  # which network (Session.network) this is a snapshot of
    chip: ChipConfig | None  # the chip the last step (report) ran on; None before the first step
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
    operands: tuple = field(default=(), repr=False)  # per op of the report: Operands of a GEMM, or None
    sizes: tuple = ()  # the network's layers as written ("64", "conv3x3x8", "pool2", ...), input first
    conv: tuple = ()  # (layer number, ConvGeometry) of each convolution layer (a CNN; none in an MLP)

    def geometry(self, layer: int):
        """The ConvGeometry of layer `layer` (1-based, as operations number them), or None."""
        return dict(self.conv).get(layer)

    def gemm_indices(self) -> list[int]:
        """Indices (in report.ops) of the step's matrix multiplies, in the order they ran."""
        return [i for i, op in enumerate(self.report.ops) if op.is_gemm] if self.report else []

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Units per layer, inputs first (e.g. 64, 32, 10)."""
        return (self.weights[0].shape[0], *(w.shape[1] for w in self.weights)) if self.weights else ()


# The session's settings are the parameters of this class, made from the one table in chipviz.settings.
SessionSettings = type("SessionSettings", (param.Parameterized,),
                       {"__module__": __name__, **settings.session_parameters()})


class TrainingSession(SessionSettings):
    """One student's session. Its settings (the parameters of SessionSettings) are the one state
    every view derives from; `apply()` is the one way to change several at once."""

    running = param.Boolean(default=False)
    # outputs
    snapshot = param.Parameter(default=None, doc="the latest Snapshot")
    network = param.Integer(default=0, doc="counts the networks built: a new value means a new network")
    notice = param.Parameter(default=None, doc="a Message to show the user (the network was reset), or None")
    diverged = param.Parameter(default=None, doc="a Message saying why training diverged, or None")

    def __init__(self, **params):
        if params.get("dataset") == "mnist" and settings.mnist_dir() is None:
            raise ValueError(f"dataset 'mnist' needs MNIST's files: set {settings.MNIST_ENV} to their folder")
        super().__init__(**params)
        if settings.mnist_dir() is None:  # this server has no MNIST files: the session cannot choose it
            self.param.dataset.objects = [d for d in self.param.dataset.objects if d != "mnist"]
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._trajectory: deque = deque(maxlen=TRAJECTORY_LENGTH)
        self._pending_reset: list[str] = []
        self._announce = True
        self._test = (float("nan"), float("nan"))
        self.build()
        self.param.watch(self._keep_coherent, ["model", "dataset"])  # before the rebuild: one network, coherent
        self.param.watch(self._on_reset_setting, list(settings.NETWORK))
        self.param.watch(self._on_live_setting, list(settings.LIVE))

    # ----- settings -----
    def values(self) -> dict:
        """{name: value} of every setting (chipviz.settings.SETTINGS)."""
        return settings.values_of(self)

    @property
    def hidden(self) -> tuple[int, ...]:
        return settings.hidden(self.values())

    def settings(self) -> TrainSettings:
        return settings.train_settings(self.values())

    def chip_config(self) -> ChipConfig:
        return settings.chip_config(self.values())

    def apply(self, changes: dict, announce: bool = True) -> bool:
        """Set several settings (validated values, by parameter name) as one change: the network
        is rebuilt at most once, and every watcher (widgets, URL, views) sees the new values.
        A link or a lesson passes announce=False: it sets up the network on purpose, so no
        "the network was reset" notice. Returns whether anything changed."""
        changes = {k: v for k, v in changes.items() if getattr(self, k) != v}
        if not changes:
            return False
        with self.lock:
            self._announce = announce
            try:
                self.param.update(**changes)
            finally:
                self._announce = True
        return True

    # ----- building -----
    def build(self) -> None:
        """(Re)create the network from the settings: step 0, fresh weights."""
        with self.lock:
            self.trainer = Trainer(self.settings(), self.chip_config(), keep_operands=True)
            self._built = self._network_values()
            self._trajectory.clear()
            self._trajectory.append(self._flat_params())
            self._test = self.trainer.record_evaluation()
            self.diverged = None
            self._report_chip = None
            self.network += 1
            self._publish()

    def reset(self) -> None:
        self.pause()
        self.build()
        self.notice = None

    def _reset_notice(self, names) -> Message:
        return Message("dash.reset_notice", names=[Message(f"param.{n}") for n in names])

    def _keep_coherent(self, *events):
        """A CNN needs an image data set: fix the other setting."""
        changed = tuple(e.name for e in events)
        fix = settings.coherent(self.values(), changed)
        if fix:
            self.param.update(**fix)

    def _network_values(self) -> dict:
        return {name: getattr(self, name) for name in settings.NETWORK}

    def _on_reset_setting(self, *events):
        if self._network_values() == self._built:  # a fix above already rebuilt it, or it was undone
            return
        names = [e.name for e in events]
        with self.lock:
            if self.running:
                if self._announce:
                    self._pending_reset.extend(names)
                else:
                    self._pending_reset.append("")  # rebuild quietly at the next step boundary
                return
        self.build()
        if self._announce:
            self.notice = self._reset_notice(names)

    def _on_live_setting(self, *events):
        """Learning rate, optimizer, batch size and the chip apply from the next step on."""
        with self.lock:
            t = self.trainer
            t.settings = self.settings()
            t.optimizer.lr = self.lr
            if any(e.name == "optimizer" for e in events):
                t.optimizer = make_optimizer(self.optimizer, self.lr)
            if any(e.name in settings.CHIP for e in events):
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
            names = [n for n in dict.fromkeys(self._pending_reset) if n]
            self._pending_reset.clear()
            self.build()
            if names:
                self.notice = self._reset_notice(names)
        try:
            for _ in range(n):
                before = self.trainer.epoch
                self.trainer.step()
                self._report_chip = self.trainer.chip
                self._trajectory.append(self._flat_params())
                if self.trainer.epoch != before or self.trainer.step_count % 50 == 0:
                    self._test = self.trainer.record_evaluation()
        except Diverged as exc:
            self.diverged = divergence_message(exc.divergence)
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
            network=self.network, chip=self._report_chip, step=t.step_count, epoch=t.epoch,
            history=t.history.as_arrays(), report=t.last,
            weights=tuple(w.copy() for w in t.net.weights), biases=tuple(b.copy() for b in t.net.biases),
            totals={p: dict(v) for p, v in t.totals.items()}, test_loss=self._test[0],
            test_accuracy=self._test[1], trajectory=tuple(self._trajectory), update=t.last_update,
            optimizer=t.optimizer.name, lr=t.optimizer.lr,
            operands=tuple(t.runner.operands) if t.last is not None and self._report_chip is not None else (),
            sizes=tuple(map(str, t.net.sizes)),
            conv=tuple((number, layer.geometry) for number, layer in enumerate(getattr(t.net, "layers", ()), 1)
                       if hasattr(layer, "geometry")))

    # ----- what the views ask for -----
    def operations(self) -> list[Operation]:
        """The last step's operations, if it ran on the chip the settings describe now (after a
        chip setting changes, none until the next step runs on the new chip)."""
        snap = self.snapshot
        if snap is None or snap.report is None or snap.chip != self.chip_config():
            return []
        return list(snap.report.ops)

    def trace_operation(self, index: int, window: tuple[int, int] = (0, 10**9),
                        snapshot: Snapshot | None = None) -> Trace:
        """Replay GEMM number `index` of a step (the snapshot's; default the latest) cycle by cycle."""
        operands = (snapshot or self.snapshot).operands
        if not 0 <= index < len(operands) or operands[index] is None:
            raise ValueError(f"operation {index} of the step is not a matrix multiply")
        a, b, config, a_layout = operands[index]
        if max(config.rows, config.cols) > settings.MAX_ANIMATED_SIDE:
            side = settings.MAX_ANIMATED_SIDE
            raise ValueError(f"arrays up to {side}×{side} are animated; "
                             f"this one is {config.rows}×{config.cols} (its numbers are still shown)")
        return gemm(a, b, config, engine="cycle", trace_window=window, a_layout=a_layout).trace

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
            out, _ = self.trainer.net.forward(x, runner)  # on an int8 chip the forward GEMMs quantise
        return softmax(out.astype(np.float64))


def divergence_message(d) -> Message:
    """The trainer's Divergence (chipviz.nn.trainer) as a Message the views render."""
    what = Message(f"dash.what.{d.what}", value=d.value) if d.what == "loss" else Message(f"dash.what.{d.what}")
    return Message("dash.diverged_detail", step=d.step, what=what, lr=f"{d.lr:g}", kept=d.kept)
