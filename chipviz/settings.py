"""Every setting of a ChipViz session, stated once: its default, its bounds, its URL key.

The table SETTINGS is the one place a default lives. Everything else derives from it:
the session's parameters (chipviz.session.TrainingSession), the widgets bound to them,
the link of a page (`parse_query`, `to_query`), the lessons' settings, and the chip and
training configurations a session builds (`chip_config`, `train_settings`).

Three groups: `network` settings define the network and its data (changing one rebuilds
the network: fresh weights, step 0); `training` and `chip` settings apply from the next
step on; `run` is the pace of the worker. VIEW_SETTINGS belong to a page, not to a session
(which GEMM is shown, the animation's pace, the language); LESSON_KEYS are read by
chipviz.lessons. A link holds only these keys.

Reading a link is forgiving: a bad value is left out, the default stays, and a notice
(a chipviz.i18n.Message, rendered in the page's language) says which key was wrong and
what is allowed. No panel import: tested headless.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import param

from .chip import DATAFLOWS, PRECISIONS, ChipConfig
from .data import TOYS
from .i18n import LANGUAGES, Message
from .nn.activations import ACTIVATIONS
from .nn.optimizers import OPTIMIZERS
from .nn.trainer import TrainSettings

APP_DATASETS = ("digits", "mnist") + TOYS
IMAGE_DATASETS = ("digits", "mnist")  # what a CNN can learn (the 2-D toys have no image)
MNIST_ENV = "CHIPVIZ_MNIST_DIR"  # where the app finds MNIST's IDX files (`chipviz serve --mnist-dir` sets it)
MODELS = ("mlp", "cnn")
MAX_WIDTH = 512
MAX_HIDDEN_LAYERS = 4
MAX_TEXT = 200  # longest string value a link may set
MAX_DIGITS = 12  # longest whole number a link may set (Python refuses to convert 4,301 digits and more)
MAX_NOTICED_KEYS = 3  # unknown keys a link's notices name one by one; more are summed up in one notice


@dataclass(frozen=True)
class Setting:
    """One setting: `name` is the session parameter, `key` the URL key (and the control's id)."""

    name: str
    key: str
    group: str  # network, training, chip, run, view
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    doc: str = ""

    @property
    def kind(self) -> str:
        if self.choices is not None:
            return "choice"
        if isinstance(self.default, bool):
            return "bool"
        return "int" if isinstance(self.default, int) else "float"

    @property
    def rebuilds(self) -> bool:
        """Changing it makes a new network (fresh weights, step 0)."""
        return self.group == "network"

    def parameter(self) -> param.Parameter:
        kind = self.kind
        if kind == "choice":
            return param.Selector(default=self.default, objects=list(self.choices), doc=self.doc)
        if kind == "bool":
            return param.Boolean(default=self.default, doc=self.doc)
        if kind == "int":
            return param.Integer(default=self.default, bounds=(self.low, self.high), doc=self.doc)
        return param.Number(default=self.default, bounds=(self.low, self.high), doc=self.doc)


# Defaults the layers below already state (a training run's, a chip's) are taken from them.
_RUN, _CHIP = TrainSettings(), ChipConfig()

SETTINGS: tuple[Setting, ...] = (
    # the network and its data: a change rebuilds it
    Setting("dataset", "dataset", "network", _RUN.dataset, choices=APP_DATASETS, doc="data set trained on"),
    Setting("model", "model", "network", "mlp", choices=MODELS,
            doc="network: an MLP, or a CNN (a convolution, 2×2 max pooling, then the dense layers)"),
    Setting("filters", "filters", "network", 8, 1, 32, doc="CNN: filters of the convolution"),
    Setting("kernel", "kernel", "network", 3, 1, 7, doc="CNN: kernel size of the convolution (k×k, padding same)"),
    Setting("hidden_layers", "hidden", "network", len(_RUN.hidden), 0, MAX_HIDDEN_LAYERS,
            doc="number of hidden (dense) layers"),
    Setting("width1", "w1", "network", _RUN.hidden[0], 1, MAX_WIDTH, doc="units of hidden layer 1"),
    Setting("width2", "w2", "network", 16, 1, MAX_WIDTH, doc="units of hidden layer 2"),
    Setting("width3", "w3", "network", 16, 1, MAX_WIDTH, doc="units of hidden layer 3"),
    Setting("width4", "w4", "network", 16, 1, MAX_WIDTH, doc="units of hidden layer 4"),
    Setting("activation", "act", "network", _RUN.activation, choices=tuple(ACTIVATIONS),
            doc="hidden layers' activation"),
    Setting("seed", "seed", "network", _RUN.seed, 0, 2**31 - 1, doc="seed of the weights, the data and the batches"),
    Setting("noise", "noise", "network", _RUN.noise, 0.0, 0.5, doc="noise of the 2-D toy data sets"),
    # training: applies from the next step on
    Setting("optimizer", "opt", "training", _RUN.optimizer, choices=tuple(OPTIMIZERS), doc="optimizer"),
    Setting("lr", "lr", "training", _RUN.lr, 1e-4, 10.0, doc="learning rate α"),
    Setting("batch_size", "batch", "training", _RUN.batch_size, 1, 256, doc="mini-batch size"),
    # the chip: applies from the next step on
    Setting("precision", "precision", "chip", _CHIP.precision, choices=PRECISIONS,
            doc="number format of the forward GEMMs (int8 as on TPU v1; the backward pass stays fp32)"),
    Setting("rows", "rows", "chip", _CHIP.rows, 1, 256, doc="PE rows of the array"),
    Setting("cols", "cols", "chip", _CHIP.cols, 1, 256, doc="PE columns of the array"),
    Setting("dataflow", "dataflow", "chip", _CHIP.dataflow, choices=DATAFLOWS,
            doc="dataflow: which operand stays in the PEs"),
    Setting("clock_mhz", "clock", "chip", _CHIP.clock_mhz, 1.0, 10_000.0, doc="clock (MHz)"),
    Setting("sram_kib", "sram", "chip", 256.0,  # one size for all three buffers here
            1.0, 65_536.0, doc="each SRAM buffer (KiB)"),
    Setting("dram_bytes_per_cycle", "bw", "chip", _CHIP.dram_bytes_per_cycle, 0.01, 100_000.0,
            doc="DRAM bandwidth (bytes per cycle)"),
    # the worker's pace
    Setting("steps_per_second", "speed", "run", 20, 1, 1000, doc="training steps per second while training"),
)

MAX_ANIMATED_SIDE = 64  # arrays up to this side are animated cycle by cycle (larger ones: numbers only)

# a page's own settings: not the session's (several views of one session could differ)
VIEW_SETTINGS: tuple[Setting, ...] = (
    Setting("op", "op", "view", 0, 0, 64, doc="which operation of the last step the PE array shows"),
    Setting("fps", "fps", "view", 24, 1, 60, doc="cycles per second of the animation"),
    Setting("pace", "pace", "view", "tour", choices=("tour", "every"),
            doc="while training: tour plays each GEMM's first fold and skips the rest; every plays every cycle"),
    Setting("lang", "lang", "view", "en", choices=LANGUAGES, doc="language of the whole interface"),
)
LESSON_KEYS = ("lesson", "step", "hide", "lock")  # read by chipviz.lessons (they need the lesson files)

BY_NAME = {s.name: s for s in SETTINGS}
BY_KEY = {s.key: s for s in SETTINGS + VIEW_SETTINGS}
KEYS = {s.key: s.name for s in SETTINGS}  # URL key -> session parameter
DEFAULTS = {s.name: s.default for s in SETTINGS}
NETWORK = tuple(s.name for s in SETTINGS if s.group == "network")
CHIP = tuple(s.name for s in SETTINGS if s.group == "chip")
LIVE = tuple(s.name for s in SETTINGS if s.group in ("training", "chip"))
KNOWN_KEYS = tuple(BY_KEY) + LESSON_KEYS


class InvalidValue(ValueError):
    """A value a setting does not allow; `reason` says what is allowed (a Message)."""

    def __init__(self, reason: Message):
        super().__init__(str(reason))
        self.reason = reason


def session_parameters() -> dict[str, param.Parameter]:
    """{name: param.Parameter} of every session setting (the session class is built from these)."""
    return {s.name: s.parameter() for s in SETTINGS}


def _range(setting: Setting) -> dict:
    fmt = (lambda v: f"{v:g}") if setting.kind == "float" else str
    return {"low": fmt(setting.low), "high": fmt(setting.high)}


def convert(setting: Setting | str, raw: Any) -> Any:
    """The value `raw` (a link's text, or a TOML/JSON value) means for `setting` (a Setting or
    URL key); InvalidValue says what is allowed."""
    s = BY_KEY[setting] if isinstance(setting, str) else setting
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, bool):
        raw = "true" if raw else "false"
    if not isinstance(raw, (str, int, float)):
        raise InvalidValue(Message("reason.single"))
    text = str(raw).strip()
    kind = s.kind
    if kind == "choice":
        if text not in s.choices:
            raise InvalidValue(Message("reason.one_of", allowed=", ".join(map(str, s.choices))))
        return text
    if kind == "bool":
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise InvalidValue(Message("reason.bool"))
    if kind == "int":
        digits = text.lstrip("-")
        if not (digits.isascii() and digits.isdigit() and len(digits) <= MAX_DIGITS):
            raise InvalidValue(Message("reason.whole", **_range(s)))
        value = int(text)
        if not s.low <= value <= s.high:
            raise InvalidValue(Message("reason.whole", **_range(s)))
        return value
    if len(text) > 64:  # no float needs more; a huge text is refused before converting it
        raise InvalidValue(Message("reason.number", **_range(s)))
    try:
        value = float(text)
    except ValueError:
        raise InvalidValue(Message("reason.number", **_range(s))) from None
    if not math.isfinite(value) or not s.low <= value <= s.high:
        raise InvalidValue(Message("reason.number", **_range(s)))
    return value


def _text(raw) -> str:
    if isinstance(raw, (list, tuple)):
        raw = raw[-1] if raw else ""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    return str(raw)


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 3] + "…"


@dataclass
class Link:
    """What a link asks for, validated: session settings, view settings, the lesson part, notices."""

    settings: dict  # session parameter -> value
    view: dict  # op, fps, lang -> value
    lesson: dict  # lesson, step, hide, lock -> raw text (validated by chipviz.lessons)
    notices: list  # Messages


def parse_query(query: dict) -> Link:
    """A URL query ({key: text or [texts or bytes]}) as a Link; every bad or unknown key is a notice."""
    link = Link({}, {}, {}, [])
    unknown = []
    for key, raw in query.items():
        text = _text(raw)
        if key in LESSON_KEYS:
            link.lesson[key] = text
            continue
        setting = BY_KEY.get(key)
        if setting is None:
            unknown.append(_short(str(key)))
            continue
        try:
            value = convert(setting, text)
        except InvalidValue as exc:
            link.notices.append(Message("url.bad_value", key=key, value=_short(text), reason=exc.reason))
            continue
        (link.view if setting.group == "view" else link.settings)[setting.name] = value
    if link.settings.get("dataset") == "mnist" and mnist_dir() is None:
        link.notices.append(Message("url.no_mnist", env=MNIST_ENV))
        del link.settings["dataset"]
    if link.settings.get("model") == "cnn" and link.settings.get("dataset", DEFAULTS["dataset"]) not in IMAGE_DATASETS:
        link.notices.append(Message("url.cnn_needs_images", dataset=link.settings["dataset"]))
        del link.settings["model"]
    if len(unknown) > MAX_NOTICED_KEYS:  # a link with thousands of keys: one notice, not thousands
        link.notices.append(Message("url.unknown_keys", n=f"{len(unknown):,}",
                                    some=", ".join(unknown[:MAX_NOTICED_KEYS])))
    else:
        link.notices += [Message("url.unknown_key", key=key) for key in unknown]
    return link


def format_value(value) -> str:
    """A value as a link writes it (numbers compactly)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def to_query(values: dict, view: dict | None = None, lesson: dict | None = None) -> dict[str, str]:
    """The query that reproduces session settings `values` (by name), a page's `view` settings
    (by key) and a lesson position (by key). Only known keys."""
    query = {s.key: format_value(values[s.name]) for s in SETTINGS if s.name in values}
    for key, value in (view or {}).items():
        if key in BY_KEY:
            query[key] = format_value(value)
    for key, value in (lesson or {}).items():
        if key in LESSON_KEYS:
            query[key] = str(value)
    return query


def values_of(target) -> dict:
    """{name: value} of every session setting of `target` (a session, or any object with them)."""
    return {s.name: getattr(target, s.name) for s in SETTINGS}


def hidden(values: dict) -> tuple[int, ...]:
    """The hidden dense layers' widths the settings describe."""
    widths = tuple(values[f"width{i}"] for i in range(1, MAX_HIDDEN_LAYERS + 1))
    return widths[: values["hidden_layers"]]


def conv_layers(values: dict) -> tuple[str, ...]:
    """A CNN's layers before the dense ones, in chipviz.nn.conv's grammar (none for an MLP)."""
    if values["model"] != "cnn":
        return ()
    k = values["kernel"]
    return (f"conv{k}x{k}x{values['filters']}", "pool2")


def mnist_dir() -> str | None:
    """The folder with MNIST's IDX files this server was given (CHIPVIZ_MNIST_DIR), if any."""
    folder = os.environ.get(MNIST_ENV, "").strip()
    return folder if folder and os.path.isdir(folder) else None


def coherent(values: dict, changed: tuple = ()) -> dict:
    """The changes that keep settings meaningful together: a CNN needs an image data set, so
    choosing a CNN on a 2-D toy switches to digits, and choosing a toy switches to the MLP."""
    if values["model"] == "cnn" and values["dataset"] not in IMAGE_DATASETS:
        return {"model": "mlp"} if "dataset" in changed and "model" not in changed else {"dataset": "digits"}
    return {}


def chip_config(values: dict) -> ChipConfig:
    """The chip a session with these settings trains on (precision included: the chip owns it)."""
    kib = values["sram_kib"]
    return ChipConfig(rows=values["rows"], cols=values["cols"], dataflow=values["dataflow"],
                      precision=values["precision"], clock_mhz=values["clock_mhz"], ifmap_sram_kib=kib,
                      filter_sram_kib=kib, ofmap_sram_kib=kib, dram_bytes_per_cycle=values["dram_bytes_per_cycle"])


def train_settings(values: dict) -> TrainSettings:
    """The training run a session with these settings makes (the chip is configured apart)."""
    return TrainSettings(dataset=values["dataset"], hidden=conv_layers(values) + hidden(values),
                         activation=values["activation"], optimizer=values["optimizer"], lr=values["lr"],
                         batch_size=values["batch_size"], seed=values["seed"], noise=values["noise"],
                         mnist_dir=mnist_dir() if values["dataset"] == "mnist" else None)


