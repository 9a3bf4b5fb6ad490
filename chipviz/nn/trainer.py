"""Training on the chip: one step is a schedule of chip operations, in order —

per layer the forward GEMM X·W with bias and activation on the vector unit; the loss; per
layer, backwards, dW = Xᵀ·dZ with the bias gradient and dX = dZ·Wᵀ with the activation's
derivative; then the optimizer's update on the vector unit (the phases are phases.py's).
Every step reports its cycles, MACs, utilisation, energy and time per layer and per phase.

The number format is the chip's (`ChipConfig.precision`): on an int8 chip the forward GEMMs
run on quantised operands, while the master weights and the backward pass stay fp32.
"""
from __future__ import annotations

import math
from functools import lru_cache
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from .. import checks
from ..chip import ENGINES, ChipConfig
from ..chip.stats import ENERGY_PARTS
from ..data import DATASETS, Dataset, load_dataset
from . import losses
from .activations import ACTIVATIONS
from .conv import MAX_LAYERS, ConvNet, LayerError, is_conv_description, parse_layer, square_image
from .history import History
from .network import MLP
from .on_chip import ChipRunner, Operation
from .optimizers import OPTIMIZERS, make_optimizer
from .phases import LOSS_PHASE, PHASES, UPDATE

HISTORY_COLUMNS = ("train_loss", "train_acc", "test_loss", "test_acc", "cycles", "energy_pj", "utilization")
COST_COLUMNS = ("cycles", "macs", "seconds") + ENERGY_PARTS  # as GemmStats.costs


DIVERGENCE_KINDS = ("loss", "weight", "gradient")


@dataclass(frozen=True, eq=False)
class Divergence:
    """Why and where training stopped: at `step`, the loss (whose `value` was NaN or ±inf), a
    weight or a gradient became NaN or infinite, with learning rate `lr`; the weights of step
    `kept` were kept. str() gives the English sentence; a view may word the facts its own way."""

    step: int
    what: str  # one of DIVERGENCE_KINDS
    value: float | None  # the loss's value when what == "loss", else None
    lr: float
    kept: int

    def __post_init__(self):
        if self.what not in DIVERGENCE_KINDS:
            raise ValueError(f"what must be one of {', '.join(DIVERGENCE_KINDS)}, got {self.what!r}")
        if (self.value is None) != (self.what != "loss"):
            raise ValueError("a divergence of the loss has a value; one of a weight or a gradient has none")

    @property
    def cause(self) -> str:
        if self.what == "loss":
            return f"the loss became {self.value}"
        return f"a {self.what} became NaN or infinite"

    def __str__(self) -> str:
        return (f"Training diverged at step {self.step}: {self.cause} (learning rate {self.lr:g} is probably "
                f"too high). The weights of step {self.kept} were kept.")

    def _key(self) -> tuple:
        return self.step, self.what, repr(self.value), self.lr, self.kept  # repr: NaN equals NaN here

    def __eq__(self, other) -> bool:
        return isinstance(other, Divergence) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Divergence":
        value = d["value"]
        return cls(step=int(d["step"]), what=d["what"], value=None if value is None else float(value),
                   lr=float(d["lr"]), kept=int(d["kept"]))


class Diverged(RuntimeError):
    """Training produced NaN or infinity; the last good weights were kept. `divergence` holds the
    facts; str() is their English sentence."""

    def __init__(self, divergence: Divergence):
        super().__init__(str(divergence))
        self.divergence = divergence


@dataclass(frozen=True)
class TrainSettings:
    """Everything that defines a training run. The chip, and with it the number format (fp32 or
    int8), is configured separately: ChipConfig."""

    dataset: str = "digits"
    # hidden layers: dense widths (an MLP), or layer tokens too ("conv3x3x8", "pool2": a ConvNet, see conv.py)
    hidden: tuple[int | str, ...] = (32,)
    activation: str = "relu"
    loss: str = "cross_entropy"
    optimizer: str = "adam"
    lr: float = 0.01
    batch_size: int = 32
    seed: int = 0
    engine: str = "analytic"
    noise: float = 0.0  # as TensorFlow Playground's default
    n_samples: int = 400
    mnist_dir: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))
        choices = {"dataset": DATASETS, "activation": ACTIVATIONS, "loss": losses.LOSSES,
                   "optimizer": OPTIMIZERS, "engine": ENGINES}
        for name, allowed in choices.items():
            checks.one_of(name, getattr(self, name), allowed)
        widths = all(isinstance(w, (int, np.integer)) and not isinstance(w, bool) for w in self.hidden)
        if not widths:  # a ConvNet's description: every token must parse (shapes are checked with the data)
            for number, token in enumerate(self.hidden, 1):
                try:
                    parse_layer(token)
                except LayerError as exc:
                    raise ValueError(f"hidden: layer {number} ({token}): {exc}") from None
            if len(self.hidden) > MAX_LAYERS:
                raise ValueError(f"hidden must list at most {MAX_LAYERS} layers, got {len(self.hidden)}")
        hidden_ok = not widths or len(self.hidden) <= 4 and all(1 <= w <= 512 for w in self.hidden)
        if not hidden_ok:
            raise ValueError(f"hidden must list 0 to 4 layer widths, each a whole number from 1 to 512, "
                             f"got {self.hidden!r}")
        checks.number("lr", self.lr, 1e-6, 100.0)
        checks.whole("batch_size", self.batch_size, 1, 65536)
        checks.whole("seed", self.seed, 0, 2**32 - 1)
        checks.number("noise", self.noise, 0.0, 10.0)
        checks.whole("n_samples", self.n_samples, 10, 100_000)

    def to_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}


@dataclass
class StepReport:
    """One training step as the chip ran it."""

    step: int
    epoch: int
    loss: float
    accuracy: float
    ops: list[Operation]
    costs: np.ndarray = field(repr=False)  # per phase, COST_COLUMNS
    pes: int = field(repr=False)

    @property
    def phases(self) -> dict:
        """phase -> cycles, macs, seconds, energy_pj, utilization (built on demand: steps are hot)."""
        return {p: {"cycles": int(row[0]), "macs": int(row[1]), "seconds": float(row[2]),
                    "energy_pj": float(row[3:].sum()),
                    "utilization": float(row[1] / (row[0] * self.pes)) if row[0] else 0.0}
                for p, row in zip(PHASES, self.costs)}

    @property
    def cycles(self) -> int:
        return int(self.costs[:, 0].sum())

    @property
    def energy_pj(self) -> float:
        return float(self.costs[:, 3:].sum())


class Trainer:
    """A network training on a chip. `data` replaces the dataset that `settings` names (custom
    data: `custom_data` is then True, and a saved run records its fingerprint)."""

    def __init__(self, settings: TrainSettings, chip: ChipConfig, data: Dataset | None = None,
                 keep_operands: bool = False):
        self.settings = settings
        self.chip = chip
        s = settings
        if data is not None and not isinstance(data, Dataset):
            raise ValueError(f"data must be a chipviz.data.Dataset, got {type(data).__name__}")
        self.custom_data = data is not None
        raw = data if data is not None else load_dataset(s.dataset, seed=s.seed, noise=s.noise,
                                                         n_samples=s.n_samples, mnist_dir=s.mnist_dir)
        self.raw_data = raw
        self.mean, self.scale = standardization(raw.x_train)
        self.data = replace(raw, x_train=self.transform(raw.x_train), x_test=self.transform(raw.x_test))
        outputs = self.data.n_classes or self.data.y_train.reshape(len(self.data.y_train), -1).shape[1]
        features = self.data.x_train.shape[1]
        if is_conv_description(s.hidden):  # LayerError (a ValueError) names the layer that cannot be built
            self.net = ConvNet(square_image(features), s.hidden, outputs, s.activation, seed=s.seed)
        else:
            self.net = MLP((features, *s.hidden, outputs), s.activation, seed=s.seed)
        self.optimizer = make_optimizer(s.optimizer, s.lr)
        self.runner = ChipRunner(chip, s.engine, keep_operands)
        self.rng = np.random.default_rng([s.seed, 1])  # shuffling, independent of initialisation
        self.step_count = 0
        self.epoch = 0
        self.order = self.rng.permutation(len(self.data.x_train))
        self.position = 0
        self.history = History(HISTORY_COLUMNS)
        self.phase_costs = np.zeros((len(PHASES), len(COST_COLUMNS)))  # running totals per phase
        self._cost_cache: dict = {}
        self.diverged: Divergence | None = None
        self.last: StepReport | None = None
        self.last_update: tuple[list, list] | None = None  # (params before, gradients) of the last step

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Inputs as the network sees them: standardised with the training split's statistics."""
        return ((np.asarray(x, np.float32) - self.mean) / self.scale).astype(np.float32)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.x_train) / self.settings.batch_size)

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        if self.position >= len(self.order):
            self.epoch += 1
            self.order = self.rng.permutation(len(self.data.x_train))
            self.position = 0
        idx = self.order[self.position:self.position + self.settings.batch_size]
        self.position += len(idx)
        return self.data.x_train[idx], self.data.y_train[idx]

    def step(self) -> StepReport:
        """One mini-batch: forward, loss, backward, update — all on the chip."""
        if self.diverged:
            raise Diverged(self.diverged)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is caught below as divergence
            return self._step()

    def _step(self) -> StepReport:
        # the shuffling generator moves only when next_batch starts an epoch: its state is saved then
        rng_state = self.rng.bit_generator.state if self.position >= len(self.order) else None
        saved = (self.position, self.epoch, self.order, rng_state)
        x, y = self.next_batch()
        runner = self.runner
        runner.reset_log()
        out, cache = self.net.forward(x, runner)
        loss, d_out, acc = self._loss(out, y)
        if not math.isfinite(loss):
            return self._diverge("loss", loss, saved)
        grads_w, grads_b = self.net.backward(cache, d_out, runner)
        grads = [g for pair in zip(grads_w, grads_b) for g in pair]
        params = self.net.params
        before = [p.copy() for p in params]
        self.optimizer.step(params, grads)
        n_params = sum(p.size for p in before)
        optimizer = self.optimizer
        runner.vector(n_params, optimizer.ops_per_element, 0, UPDATE.id, _update_name(optimizer.name))
        if not _all_finite(params):  # NaN in a gradient reaches the weights too
            for p, old in zip(params, before):
                p[...] = old  # (the optimizer's state is not rolled back: a diverged run takes no more steps)
            what = "weight" if _all_finite(grads) else "gradient"
            return self._diverge(what, None, saved)
        self.step_count += 1
        self.last_update = (before, grads)
        costs, cycles, energy_pj, utilization = self._step_costs(runner.ops)
        self.phase_costs += costs
        report = StepReport(self.step_count, self.epoch, loss, acc, list(runner.ops), costs, self.chip.pes)
        self.last = report
        self.history.append(self.step_count, train_loss=loss, train_acc=acc, cycles=cycles, energy_pj=energy_pj,
                            utilization=utilization)
        return report

    def _diverge(self, what: str, value: float | None, saved) -> StepReport:
        self.position, self.epoch, self.order, state = saved
        if state is not None:
            self.rng.bit_generator.state = state
        self.diverged = Divergence(step=self.step_count + 1, what=what, value=value, lr=float(self.optimizer.lr),
                                   kept=self.step_count)
        raise Diverged(self.diverged)

    def _loss(self, out: np.ndarray, y: np.ndarray):
        n_out = out.shape[1]
        if self.settings.loss == "cross_entropy":
            if not self.data.n_classes:
                raise ValueError("cross_entropy needs a classification dataset; use loss='mse'")
            loss, grad = losses.cross_entropy(out, y)
        else:
            target = losses.one_hot(y, n_out) if self.data.n_classes else y.reshape(len(y), -1)
            loss, grad = losses.mse(out, target)
        self.runner.vector(out.size, 4, self.net.n_layers, LOSS_PHASE, _loss_name(self.settings.loss))
        acc = np.count_nonzero(out.argmax(axis=1) == y) / len(y) if self.data.n_classes else float("nan")
        return loss, grad, acc

    @property
    def totals(self) -> dict:
        """Running totals per phase: cycles, MACs, seconds and energy (pJ) by component."""
        return {p: {c: (int(v) if c in ("cycles", "macs") else float(v)) for c, v in zip(COST_COLUMNS, row)}
                for p, row in zip(PHASES, self.phase_costs)}

    @totals.setter
    def totals(self, value: dict) -> None:
        self.phase_costs = np.array([[value[p][c] for c in COST_COLUMNS] for p in PHASES], dtype=float)

    def _step_costs(self, ops):
        """Costs per phase of a step's ops, and the step's cycles, energy (pJ) and utilisation. Steps
        repeat the same (memoised) operations, so this is memoised by their identity; the cache holds
        the operations, so an id cannot be reused."""
        key = tuple(map(id, ops))
        hit = self._cost_cache.get(key)
        if hit is None:
            step = np.zeros_like(self.phase_costs)
            index = {p: i for i, p in enumerate(PHASES)}
            for op in ops:
                step[index[op.phase]] += op.stats.costs
            cycles, macs = step[:, 0].sum(), step[:, 1].sum()
            figures = (step, float(cycles), float(step[:, 3:].sum()), float(macs / (cycles * self.chip.pes)))
            if len(self._cost_cache) > 64:
                self._cost_cache.clear()
            self._cost_cache[key] = hit = (figures, list(ops))
        return hit[0]

    def evaluate(self, split: str = "test") -> tuple[float, float]:
        """Loss and accuracy on a split; the forward GEMMs run on the chip, in its precision (not
        counted as training)."""
        x, y = (self.data.x_test, self.data.y_test) if split == "test" else (self.data.x_train, self.data.y_train)
        runner = ChipRunner(self.chip, self.settings.engine)
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run may overflow: loss is inf
            out, _ = self.net.forward(x, runner)
            if self.settings.loss == "cross_entropy":
                loss, _ = losses.cross_entropy(out, y)
            else:
                target = losses.one_hot(y, out.shape[1]) if self.data.n_classes else y.reshape(len(y), -1)
                loss, _ = losses.mse(out, target)
        acc = float(np.mean(out.argmax(axis=1) == y)) if self.data.n_classes else float("nan")
        return loss, acc

    def record_evaluation(self) -> tuple[float, float]:
        """Evaluate on the test split and put it in the history at the current step."""
        loss, acc = self.evaluate("test")
        self.history.append(self.step_count, test_loss=loss, test_acc=acc)
        return loss, acc

    def fit(self, epochs: int, on_epoch=None) -> None:
        """Train for whole epochs, evaluating the test split after each."""
        checks.whole("epochs", epochs, 1, 100_000)
        target = self.epoch + epochs
        while True:
            self.step()
            if self.position >= len(self.order):
                loss, acc = self.record_evaluation()
                if on_epoch:
                    on_epoch(self.epoch + 1, loss, acc)
                if self.epoch + 1 >= target:
                    break


def _all_finite(arrays) -> bool:
    """All elements finite? A sum is NaN or ±inf when an element is, and is cheaper than
    isfinite().all(). A float32 total of the arrays' own sums decides when it is finite; when it is
    not, the float64 sums decide (float32 values cannot overflow them, so they are NaN or ±inf
    exactly when an element is)."""
    if math.isfinite(sum(_add(x, None) for x in arrays)):
        return True
    return math.isfinite(sum(_add(x, None, np.float64) for x in arrays))


_add = np.add.reduce


@lru_cache(maxsize=None)
def _update_name(optimizer: str) -> str:
    return UPDATE.vector_op.format(optimizer=optimizer)


@lru_cache(maxsize=None)
def _loss_name(loss: str) -> str:
    return f"loss ({loss})"


def standardization(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and scale; constant features (e.g. blank digit pixels) keep scale 1."""
    mean = x.mean(axis=0, dtype=np.float64)
    std = x.std(axis=0, dtype=np.float64)
    return mean.astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)
