"""Classroom lessons: Markdown files with a small TOML block per step, checked by the simulator.

No panel or bokeh import: parsed, rendered and checked headless (tests, CLI); LessonView
(lesson_view.py) displays them.

A lesson is one file per language, ``lessons/<lang>/NN-slug.md``::

    # The processing element                 <- title (required, first line)

    Short introduction (Markdown).

    ```toml                                  <- optional: the lesson's starting state
    dataset = "xor"
    lock = ["dataset"]
    ```

    ## Goals                                 <- or 学习目标: a bullet list
    - ...

    ## Step: One neuron                      <- or 步骤：…; 1 or more steps, in order
    Markdown text; numbers come from the simulator: {{cycles m=4 k=4 n=4 rows=4 cols=4}}

    ```toml                                  <- what the step sets (optional)
    rows = 4                                 <- settings by URL key (chipviz.settings.KEYS)
    op = "L1.forward"                        <- view: GEMM shown, cycle, training, controls
    cycle = 3
    train_steps = 200
    hide = ["lr"]
    lock = ["rows", "cols"]

    [question]                               <- optional "predict, then run"
    type = "number"
    measure = "cycles"
    gemm = { m = 4, k = 4, n = 4 }
    ```

    ### Look                                 <- or 观察: what to look at
    ### Question                             <- or 问题: the prompt (required with [question])
    ### Explanation                          <- or 解释: shown after an answer, right or wrong

    ## Exercises                             <- or 练习: for the teacher
    ### A title
    The exercise.
    **Answer:** the answer (or **答案：**).

Settings accumulate: a step's effective settings are the app defaults, then the lesson's
block, then every step's block up to this one, so a link can open any step. View keys (op,
cycle, train_steps, hide, lock) belong to their step only; hide and lock add to the
lesson's.

Placeholders ``{{measure key=value ...}}`` are a tiny language, never evaluated as code: a
measure name from MEASURES, then arguments — m, k, n (a GEMM), op (a GEMM of the network's
training step: L1.forward, L2.dX, L1.dW), steps (training steps first), digits (decimals
shown) and any setting by URL key. In a step they default to that step's settings, op and
train_steps; elsewhere to the lesson's settings.
"""
from __future__ import annotations

import math
import os
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, NamedTuple

import numpy as np

from ..chip import ChipConfig, Mapping, analyze, gemm
from ..chip import trace as chip_trace
from ..nn.trainer import Diverged, Trainer
from .. import i18n
from ..session import TrainingSession
from ..settings import KEYS, convert

LANGUAGES = i18n.LANGUAGES
LESSON_KEYS = ("lesson", "step", "lang", "hide", "lock")  # URL keys owned by the lesson mode
LESSONS_DIR = Path(os.environ.get("CHIPVIZ_LESSONS", Path(__file__).resolve().parents[2] / "lessons"))

SETTING_KEYS = {k: v for k, v in KEYS.items()}  # URL key -> TrainingSession parameter
CHIP_KEYS = ("rows", "cols", "dataflow", "clock", "sram", "bw", "precision")
NET_KEYS = ("dataset", "hidden", "w1", "w2", "w3", "w4", "act", "opt", "lr", "batch", "seed", "precision", "noise")
VIEW_KEYS = ("op", "cycle", "train_steps", "hide", "lock")
LESSON_BLOCK_KEYS = ("hide", "lock")
QUESTION_KEYS = ("type", "measure", "gemm", "op", "steps", "chip", "net", "source", "tolerance", "rel_tolerance",
                 "choices", "over", "choose", "bins", "minus", "divided_by")
OVERRIDE_EXTRA = ("m", "k", "n", "steps", "op", "measure")
MAX_TRAIN_STEPS = 5000
MAX_TRACE_SIDE = 64
OP_REF = re.compile(r"^L([1-9])\.(forward|dX|dW)$")
OP_PHASE = {"forward": "forward", "dX": "backward_data", "dW": "backward_weights"}

# Section headings, accepted in either language
SECTIONS = {"goals": ("goals", "learning goals", "学习目标", "目标"),
            "step": ("step", "步骤"),
            "exercises": ("exercises", "exercise", "练习", "教师练习")}
SUBSECTIONS = {"look": ("look", "观察"), "question": ("question", "问题"), "explanation": ("explanation", "解释")}
ANSWER_LINE = re.compile(r"^\s*(\*\*)?\s*(answer|答案)\s*[:：]\s*(\*\*)?\s*", re.IGNORECASE)
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([A-Za-z0-9_-]*)\s*$")
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# ----- the interface's own words, in both languages (used by LessonView too) -----
# One table for the whole app (chipviz.i18n); the lesson mode's words are its "lesson." keys.
UI = {lang: {key[len("lesson."):]: i18n.t(key, lang) for key in i18n.STRINGS if key.startswith("lesson.")}
      for lang in LANGUAGES}


def ui(lang: str, key: str, **values) -> str:
    """An interface string in `lang` (English if missing), formatted with `values`."""
    text = UI.get(lang, UI["en"]).get(key) or UI["en"][key]
    return text.format(**values) if values else text


def notice(lang: str, key: str, /, **values) -> str:
    """Like ui(), for a notice: a string that the dashboard can show again in the other language."""
    return i18n.Msg(f"lesson.{key}", lang if lang in LANGUAGES else "en", **values)


class LessonError(ValueError):
    """A lesson file that cannot be used; the message starts with `file:line:`."""


# ======================================================================================
# Settings: the app's defaults, validated values, configs built as the session builds them
# ======================================================================================

def default_settings() -> dict[str, Any]:
    """{TrainingSession parameter: default} for every URL setting."""
    return {name: TrainingSession.param[name].default for name in SETTING_KEYS.values()}


def convert_setting(key: str, value: Any) -> Any:
    """A TOML or URL value for setting `key` (a URL key), validated as a link's would be."""
    if isinstance(value, bool):
        raw = "true" if value else "false"
    elif isinstance(value, (int, float, str)):
        raw = str(value)
    else:
        raise ValueError(f"must be a single value, not {type(value).__name__}")
    return convert(raw, TrainingSession.param[SETTING_KEYS[key]])


def _namespace(settings: dict) -> SimpleNamespace:
    ns = SimpleNamespace(**settings)
    ns.hidden = tuple((settings["width1"], settings["width2"], settings["width3"], settings["width4"])
                      [: settings["hidden_layers"]])
    return ns


def chip_config(settings: dict) -> ChipConfig:
    """The chip a session with these settings trains on (the session's own construction)."""
    return TrainingSession.chip_config(_namespace(settings))


def train_settings(settings: dict):
    return TrainingSession.settings(_namespace(settings))


def _key(settings: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in settings.items() if k != "steps_per_second"))


# ======================================================================================
# Measures: every number a lesson states or checks
# ======================================================================================

@dataclass(frozen=True)
class Measure:
    name: str
    kind: str  # gemm: a GEMM on the chip; trace: the same, cycle by cycle; net: a training run; chip: the chip
    fmt: str  # int, float, percent, text
    decimals: int
    unit_en: str
    unit_zh: str
    fn: Callable
    doc: str

    def unit(self, lang: str) -> str:
        return self.unit_zh if lang == "zh" else self.unit_en


MEASURES: dict[str, Measure] = {}


def _measure(name, kind, fmt, decimals, unit_en, unit_zh, doc):
    def register(fn):
        MEASURES[name] = Measure(name, kind, fmt, decimals, unit_en, unit_zh, fn, doc)
        return fn
    return register


def _gemm_measure(name, fmt, decimals, unit_en, unit_zh, doc, get):
    MEASURES[name] = Measure(name, "gemm", fmt, decimals, unit_en, unit_zh, get, doc)


for _name, _fmt, _dec, _ue, _uz, _doc, _get in [
    ("cycles", "int", 0, "cycles", "个周期", "clock cycles of the GEMM (all folds, stalls included)",
     lambda s, mp: s.cycles),
    ("folds", "int", 0, "folds", "次折叠", "folds (tiles run one after another)", lambda s, mp: s.folds),
    ("row_folds", "int", 0, "row folds", "次行折叠", "folds along the array's rows", lambda s, mp: mp.row_folds),
    ("col_folds", "int", 0, "column folds", "次列折叠", "folds along the array's columns",
     lambda s, mp: mp.col_folds),
    ("cycles_per_fold", "int", 0, "cycles", "个周期", "cycles one fold takes", lambda s, mp: s.cycles_per_fold),
    ("preload_cycles", "int", 0, "cycles", "个周期", "cycles a fold spends loading the stationary operand",
     lambda s, mp: mp.preload_cycles),
    ("stall_cycles", "int", 0, "cycles", "个周期", "cycles the array waits for DRAM", lambda s, mp: s.stall_cycles),
    ("macs", "int", 0, "MACs", "次乘累加", "multiply-accumulates", lambda s, mp: s.macs),
    ("utilization", "percent", 1, "", "", "MACs / (cycles × PEs)", lambda s, mp: 100 * s.utilization),
    ("mapping_efficiency", "percent", 1, "", "", "mean share of PEs a fold maps work to",
     lambda s, mp: 100 * s.mapping_efficiency),
    ("energy_nj", "float", 1, "nJ", "nJ", "energy of the GEMM", lambda s, mp: s.energy_pj["total"] / 1e3),
    ("mac_energy_nj", "float", 1, "nJ", "nJ", "energy of its MACs", lambda s, mp: s.energy_pj["mac"] / 1e3),
    ("dram_energy_nj", "float", 1, "nJ", "nJ", "energy of its DRAM traffic", lambda s, mp: s.energy_pj["dram"] / 1e3),
    ("sram_energy_nj", "float", 1, "nJ", "nJ", "energy of its SRAM traffic", lambda s, mp: s.energy_pj["sram"] / 1e3),
    ("register_energy_nj", "float", 1, "nJ", "nJ", "energy of PE-to-PE hops",
     lambda s, mp: s.energy_pj["register"] / 1e3),
    ("dram_energy_share", "percent", 1, "", "", "share of the energy spent on DRAM",
     lambda s, mp: 100 * s.energy_pj["dram"] / s.energy_pj["total"]),
    ("mac_energy_share", "percent", 1, "", "", "share of the energy spent on MACs",
     lambda s, mp: 100 * s.energy_pj["mac"] / s.energy_pj["total"]),
    ("dram_bytes", "int", 0, "bytes", "字节", "bytes moved to and from DRAM", lambda s, mp: s.dram_bytes),
    ("sram_reads", "int", 0, "reads", "次读取", "operand reads from SRAM", lambda s, mp: s.sram_reads),
    ("sram_writes", "int", 0, "writes", "次写入", "output (partial-sum) writes to SRAM", lambda s, mp: s.sram_writes),
    ("register_hops", "int", 0, "hops", "次传递", "values passed from PE to PE", lambda s, mp: s.register_hops),
    ("arithmetic_intensity", "float", 2, "MACs/byte", "次乘累加/字节", "MACs per DRAM byte",
     lambda s, mp: s.arithmetic_intensity),
    ("attainable_macs_per_cycle", "float", 1, "MACs/cycle", "次乘累加/周期", "the roofline's bound",
     lambda s, mp: s.attainable_macs_per_cycle),
    ("achieved_macs_per_cycle", "float", 1, "MACs/cycle", "次乘累加/周期", "MACs per cycle achieved",
     lambda s, mp: s.achieved_macs_per_cycle),
    ("time_us", "float", 3, "µs", "微秒", "time at the chip's clock", lambda s, mp: s.seconds * 1e6),
]:
    _gemm_measure(_name, _fmt, _dec, _ue, _uz, _doc, _get)


MEASURES["bound"] = Measure(
    "bound", "gemm", "text", 0, "", "", lambda s, mp: "memory" if s.attainable_macs_per_cycle < s.rows * s.cols
    else "compute", "memory if the roofline caps this GEMM below the array's peak, else compute")


@_measure("full_cycles", "trace", "int", 0, "cycles", "个周期", "cycles in which every PE does a MAC")
def _full_cycles(tr):
    return int((tr.state == chip_trace.MAC).all(axis=(1, 2)).sum())


@_measure("first_mac_cycle", "trace", "int", 0, "", "", "the first cycle (from 0) in which a PE does a MAC")
def _first_mac(tr):
    busy = np.flatnonzero((tr.state == chip_trace.MAC).any(axis=(1, 2)))
    return int(busy[0]) + tr.start if busy.size else -1


@_measure("last_output_cycle", "trace", "int", 0, "", "",
          "the last cycle (from 0) in which an output leaves the array's bottom edge (ws, is)")
def _last_output(tr):
    out = np.flatnonzero((tr.bottom_out >= 0).any(axis=1))
    return int(out[-1]) + tr.start if out.size else -1


@_measure("busy_pes_peak", "trace", "int", 0, "PEs", "个处理单元", "most PEs doing a MAC in one cycle")
def _busy_peak(tr):
    return int((tr.state == chip_trace.MAC).sum(axis=(1, 2)).max())


def _phase_sum(report, phases, column):
    return sum(report.phases[p][column] for p in phases)


for _name, _fmt, _dec, _ue, _uz, _doc, _get in [
    ("step_cycles", "int", 0, "cycles", "个周期", "cycles of one training step (the last one)",
     lambda t: t.last.cycles),
    ("forward_cycles", "int", 0, "cycles", "个周期", "cycles of the step's forward pass (with the loss)",
     lambda t: _phase_sum(t.last, ("forward",), "cycles")),
    ("backward_cycles", "int", 0, "cycles", "个周期", "cycles of the step's backward pass",
     lambda t: _phase_sum(t.last, ("backward_data", "backward_weights"), "cycles")),
    ("update_cycles", "int", 0, "cycles", "个周期", "cycles of the optimizer's update",
     lambda t: _phase_sum(t.last, ("update",), "cycles")),
    ("step_macs", "int", 0, "MACs", "次乘累加", "MACs of one training step", lambda t: _phase_sum(
        t.last, ("forward", "backward_data", "backward_weights", "update"), "macs")),
    ("step_energy_uj", "float", 2, "µJ", "µJ", "energy of one training step", lambda t: t.last.energy_pj / 1e6),
    ("step_time_us", "float", 2, "µs", "微秒", "time of one training step at the chip's clock",
     lambda t: _phase_sum(t.last, ("forward", "backward_data", "backward_weights", "update"), "seconds") * 1e6),
    ("step_power_w", "float", 2, "W", "W", "mean power during a training step: its energy / its time",
     lambda t: t.last.energy_pj * 1e-12 / _phase_sum(t.last, ("forward", "backward_data", "backward_weights",
                                                                "update"), "seconds")),
    ("gemm_count", "int", 0, "GEMMs", "个矩阵乘法", "matrix multiplies in one training step",
     lambda t: sum(op.is_gemm for op in t.last.ops)),
    ("params", "int", 0, "parameters", "个参数", "weights and biases of the network",
     lambda t: int(sum(p.size for p in t.net.params))),
    ("test_accuracy", "percent", 1, "", "", "accuracy on the test split", lambda t: 100 * t.evaluate("test")[1]),
    ("test_loss", "float", 3, "", "", "loss on the test split", lambda t: t.evaluate("test")[0]),
    ("train_loss", "float", 3, "", "", "loss of the last training batch", lambda t: t.last.loss),
]:
    MEASURES[_name] = Measure(_name, "net", _fmt, _dec, _ue, _uz, _get, _doc)

MEASURES["diverged"] = Measure("diverged", "net", "text", 0, "", "", lambda t: "yes" if t.diverged else "no",
                               "whether training diverged (yes/no)")
MEASURES["diverged_at"] = Measure("diverged_at", "net", "int", 0, "", "",
                                  lambda t: t.step_count + 1 if t.diverged else 0,
                                  "the step at which training diverged (0: it did not)")

for _name, _fmt, _dec, _ue, _uz, _doc, _get in [
    ("pes", "int", 0, "PEs", "个处理单元", "processing elements of the array", lambda c: c.pes),
    ("peak_tops", "float", 1, "TOPS", "TOPS", "peak tera-operations per second (a MAC is 2 operations)",
     lambda c: 2 * c.pes * c.clock_mhz * 1e6 / 1e12),
    ("peak_gmacs", "float", 1, "GMAC/s", "GMAC/s", "peak MACs per second, in billions",
     lambda c: c.pes * c.clock_mhz * 1e6 / 1e9),
    ("dram_gbs", "float", 1, "GB/s", "GB/s", "DRAM bandwidth", lambda c: c.dram_bytes_per_cycle * c.clock_mhz / 1e3),
    ("ridge_intensity", "float", 1, "MACs/byte", "次乘累加/字节",
     "arithmetic intensity where the roofline bends: PEs / DRAM bytes per cycle",
     lambda c: c.pes / c.dram_bytes_per_cycle),
    ("mac_pj", "float", 1, "pJ", "pJ", "energy of one MAC in the chosen precision",
     lambda c: c.energy.mac_pj(c.precision)),
    ("dram_pj_per_byte", "float", 1, "pJ", "pJ", "energy to move one byte from DRAM",
     lambda c: c.energy.dram_pj_per_byte),
    ("sram_pj_per_byte", "float", 2, "pJ", "pJ", "energy to move one byte from SRAM",
     lambda c: c.energy.sram_pj_per_byte),
    ("register_pj_per_byte", "float", 2, "pJ", "pJ", "energy to pass one byte to the next PE",
     lambda c: c.energy.register_pj_per_byte),
    ("operand_bytes", "int", 0, "bytes", "字节", "bytes per operand in the chosen precision",
     lambda c: c.spec.operand_bytes),
    ("dram_word_macs", "float", 0, "MACs", "次乘累加",
     "energy of fetching one operand from DRAM, counted in MACs of the same precision",
     lambda c: c.spec.operand_bytes * c.energy.dram_pj_per_byte / c.energy.mac_pj(c.precision)),
    ("sram_word_macs", "float", 1, "MACs", "次乘累加",
     "energy of fetching one operand from SRAM, counted in MACs of the same precision",
     lambda c: c.spec.operand_bytes * c.energy.sram_pj_per_byte / c.energy.mac_pj(c.precision)),
]:
    MEASURES[_name] = Measure(_name, "chip", _fmt, _dec, _ue, _uz, _get, _doc)

TEXT_VALUES = {"yes", "no", "memory", "compute"}
TEXT_MEASURES = {"diverged": ("yes", "no"), "bound": ("memory", "compute")}


@dataclass(frozen=True)
class Query:
    """One measurement: a measure of the chip, a GEMM on it, or a training run, fully specified."""

    measure: str
    settings: tuple  # sorted (parameter, value) pairs
    gemm: tuple[int, int, int] | None = None
    op: str | None = None
    steps: int = 1

    def with_changes(self, changes: dict) -> "Query":
        settings = dict(self.settings)
        gemm_dims = list(self.gemm) if self.gemm else None
        steps, op, measure = self.steps, self.op, self.measure
        for key, value in changes.items():
            if key in ("m", "k", "n"):
                if gemm_dims is None:
                    raise ValueError(f"{key} changes a GEMM dimension, but this measure has no m, k, n")
                gemm_dims["mkn".index(key)] = value
            elif key == "steps":
                steps = value
            elif key == "op":
                op = value
            elif key == "measure":
                measure = value
            else:
                settings[key] = value
        return Query(measure, _key(settings), tuple(gemm_dims) if gemm_dims else None, op, steps)


def measure_value(query: Query):
    """The simulator's value for `query` (cached: the same question asks the same thing)."""
    return _measure_value(query)


@lru_cache(maxsize=1024)
def _measure_value(query: Query):
    m = MEASURES[query.measure]
    settings = dict(query.settings)
    if m.kind == "chip":
        return m.fn(chip_config(settings).with_(precision=settings["precision"]))
    if m.kind == "net":
        return m.fn(trained(query.settings, query.steps))
    stats, mapping, operands = _gemm_of(query, settings, traced=m.kind == "trace")
    if m.kind == "gemm":
        return m.fn(stats, mapping)
    a, b, config = operands
    if max(config.rows, config.cols) > MAX_TRACE_SIDE or stats.cycles > 20_000:
        raise ValueError(f"{query.measure} runs the GEMM cycle by cycle: arrays up to {MAX_TRACE_SIDE}×"
                         f"{MAX_TRACE_SIDE} and 20,000 cycles")
    result = gemm(a, b, config, engine="cycle", trace_window=(0, stats.cycles))
    return m.fn(result.trace)


def _gemm_of(query: Query, settings: dict, traced: bool):
    """(stats, mapping, operands or None) of the query's GEMM: a given shape, or a network op."""
    if query.gemm:
        m, k, n = query.gemm
        config = chip_config(settings).with_(precision=settings["precision"])
        stats = analyze(m, k, n, config)
        operands = None
        if traced:
            rng = np.random.default_rng(0)
            if config.precision == "int8":
                a, b = rng.integers(-8, 8, (m, k)).astype(np.int8), rng.integers(-8, 8, (k, n)).astype(np.int8)
            else:
                a, b = rng.random((m, k), np.float32) + 0.5, rng.random((k, n), np.float32) + 0.5
            operands = (a, b, config)
        return stats, Mapping.of(m, k, n, config), operands
    ref = query.op or "L1.forward"
    trainer = trained(query.settings, query.steps, keep_operands=traced)
    index = find_op(trainer.last.ops if trainer.last else [], ref)
    if index is None:
        raise ValueError(f"this network computes no {ref} (layers 1 to {trainer.net.n_layers}; "
                         f"layer 1 computes no dX)")
    stats = trainer.last.ops[index].stats
    operands = trainer.runner.operands[index] if traced else None
    config = chip_config(settings)
    return stats, Mapping.of(stats.m, stats.k, stats.n, config.with_(precision=stats.precision)), operands


@lru_cache(maxsize=48)
def trained(settings: tuple, steps: int, keep_operands: bool = False) -> Trainer:
    """A fresh network with these settings after `steps` training steps (as apply_step trains it).

    A diverged run stops at its last good step; its `diverged` attribute says so. Shared: do
    not step it further.
    """
    values = dict(settings)
    values.setdefault("steps_per_second", 1)
    trainer = Trainer(train_settings(values), chip_config(values), keep_operands=keep_operands)
    try:
        for _ in range(steps):
            trainer.step()
    except Diverged:
        pass
    return trainer


def find_op(ops, ref: str) -> int | None:
    """Index in a step's op list of the GEMM `ref` (e.g. "L2.dX"), or None."""
    match = OP_REF.match(ref)
    if not match:
        return None
    layer, kind = int(match.group(1)), match.group(2)
    for i, op in enumerate(ops):
        if op.is_gemm and op.layer == layer and op.phase == OP_PHASE[kind]:
            return i
    return None


def op_label(ref: str, lang: str) -> str:
    match = OP_REF.match(ref)
    if not match:
        return ref
    layer, kind = match.groups()
    if lang == "zh":
        return {"forward": f"第 {layer} 层前向 Y = X·W", "dX": f"第 {layer} 层反向 dX = dY·Wᵀ",
                "dW": f"第 {layer} 层反向 dW = Xᵀ·dY"}[kind]
    return {"forward": f"layer {layer} forward Y = X·W", "dX": f"layer {layer} backward dX = dY·Wᵀ",
            "dW": f"layer {layer} backward dW = Xᵀ·dY"}[kind]


def format_value(measure: str, value, lang: str = "en", digits: int | None = None, unit: bool = True) -> str:
    """A measured value as a lesson shows it: 1,746 cycles, 58.6%, 4.6 pJ, yes/是."""
    m = MEASURES[measure]
    if m.fmt == "text":
        return ui(lang, value) if value in TEXT_VALUES else str(value)
    d = m.decimals if digits is None else digits
    if m.fmt == "int" and digits is None:
        text = f"{int(value):,}"
    else:
        text = f"{float(value):,.{d}f}"
    if m.fmt == "percent":
        return text + "%"
    u = m.unit(lang) if unit else ""
    if lang != "zh" and u in SINGULAR and float(value) == 1 and (m.fmt == "int" or d == 0):
        u = SINGULAR[u]
    return f"{text} {u}" if u else text


SINGULAR = {"cycles": "cycle", "folds": "fold", "row folds": "row fold", "column folds": "column fold",
            "MACs": "MAC", "bytes": "byte", "reads": "read", "writes": "write", "hops": "hop", "PEs": "PE",
            "GEMMs": "GEMM", "parameters": "parameter"}


# ======================================================================================
# Lesson data
# ======================================================================================

@dataclass(frozen=True)
class View:
    op: str | None = None
    cycle: int | None = None
    train_steps: int | None = None
    hide: tuple[str, ...] = ()
    lock: tuple[str, ...] = ()


@dataclass(frozen=True)
class Question:
    kind: str  # "number" or "choice"
    prompt: str
    explanation: str
    spec: dict  # the [question] table as written
    query: Query
    language: str
    choices: tuple[str, ...] = ()
    labels: dict = field(default_factory=dict)
    over: tuple[dict, ...] = ()  # per choice: the changes that make it (choice questions with `over`)
    choose: str | None = None  # "min" or "max"
    minus: dict | None = None
    divided_by: dict | None = None
    tolerance: float | None = None
    rel_tolerance: float | None = None
    source: str = "lesson"  # or "app": measure the live session
    line: int = 0
    source_file: str = ""
    bins: tuple[float, ...] = ()  # choice questions: limits between the choices' ranges

    @property
    def measure(self) -> Measure:
        return MEASURES[self.query.measure]

    def label(self, choice: str) -> str:
        return self.labels.get(choice, choice)


@dataclass(frozen=True)
class Step:
    number: int  # 1-based
    title: str
    text: str
    state: dict  # the TOML block as written (without [question])
    settings: dict  # effective settings: TrainingSession parameter -> value
    view: View
    look: str
    question: Question | None
    language: str
    line: int
    source_file: str

    @property
    def hide(self) -> tuple[str, ...]:
        return self.view.hide

    @property
    def lock(self) -> tuple[str, ...]:
        return self.view.lock


@dataclass(frozen=True)
class Exercise:
    title: str
    text: str
    answer: str
    line: int


@dataclass(frozen=True)
class Lesson:
    id: str  # the file's stem, e.g. "01-processing-element"
    number: int
    language: str
    title: str
    intro: str
    goals: tuple[str, ...]
    steps: tuple[Step, ...]
    exercises: tuple[Exercise, ...]
    settings: dict  # the lesson's starting settings
    hide: tuple[str, ...]
    lock: tuple[str, ...]
    path: str

    @property
    def slug(self) -> str:
        return self.id.split("-", 1)[1] if "-" in self.id else self.id


# ======================================================================================
# Parsing
# ======================================================================================

def _display_path(path) -> str:
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


class _Parser:
    def __init__(self, text: str, path: str, language: str):
        self.path = path
        self.where = _display_path(path)
        self.language = language
        self.lines = text.splitlines()

    def error(self, line: int, message: str) -> LessonError:
        return LessonError(f"{self.where}:{line}: {message}")

    # ----- structure -----
    def parse(self, number: int, lesson_id: str) -> Lesson:
        blocks = self._split()
        title_line, title = blocks["title"]
        lesson_settings = default_settings()
        hide: tuple = ()
        lock: tuple = ()
        intro_text, intro_toml = self._body(blocks["intro"], allow_toml=True)
        if intro_toml:
            table, start, block = intro_toml
            lesson_settings, extra = self._state(table, start, block, lesson_settings, LESSON_BLOCK_KEYS)
            hide, lock = extra.get("hide", ()), extra.get("lock", ())
        self.lesson_settings = lesson_settings
        self._check_placeholders(intro_text, blocks["intro"], settings=lesson_settings)
        goals = self._goals(blocks["goals"]) if blocks["goals"] else None
        if not goals:
            line = blocks["goals_line"] or title_line
            raise self.error(line, "no learning goals: add a '## Goals' (or '## 学习目标') section with a bullet list")
        steps = []
        settings = lesson_settings
        for step_line, step_title, body in blocks["steps"]:
            step = self._step(len(steps) + 1, step_line, step_title, body, settings)
            steps.append(step)
            settings = step.settings
        if not steps:
            raise self.error(title_line, "no steps: add at least one '## Step: title' (or '## 步骤：title') section")
        exercises = self._exercises(blocks["exercises"], blocks["exercises_line"]) if blocks["exercises_line"] else ()
        return Lesson(lesson_id, number, self.language, title, intro_text, tuple(goals), tuple(steps),
                      tuple(exercises), lesson_settings, tuple(hide), tuple(lock), self.path)

    def _split(self) -> dict:
        """Cut the file into title, intro, goals, steps and exercises (lines keep their numbers)."""
        out = {"title": None, "intro": [], "goals": [], "goals_line": 0, "steps": [], "exercises": [],
               "exercises_line": 0}
        current = None
        in_fence = None
        for number, line in enumerate(self.lines, start=1):
            fence = FENCE.match(line)
            if in_fence:
                if fence and fence.group(1)[0] == in_fence[0] and len(fence.group(1)) >= len(in_fence) \
                        and not fence.group(2):
                    in_fence = None
                self._append(out, current, number, line)
                continue
            if fence:
                in_fence = fence.group(1)
                if out["title"] is None:
                    raise self.error(number, "missing title: the file must start with a '# Title' line")
                self._append(out, current, number, line)
                continue
            if out["title"] is None:
                if not line.strip():
                    continue
                if line.startswith("# ") and line[2:].strip():
                    out["title"] = (number, line[2:].strip())
                    current = "intro"
                    continue
                raise self.error(number, "missing title: the file must start with a '# Title' line, got "
                                         f"{line.strip()[:40]!r}")
            if line.startswith("# "):
                raise self.error(number, "a second '# ' title; sections start with '## ' (Goals, Step: …, Exercises)")
            if line.startswith("## "):
                kind, rest = self._heading(line[3:], SECTIONS, number, "## ")
                if kind == "goals":
                    if out["goals_line"]:
                        raise self.error(number, f"a second goals section (the first is at line {out['goals_line']})")
                    out["goals_line"] = number
                    current = "goals"
                elif kind == "step":
                    if out["exercises_line"]:
                        raise self.error(number, "a step after the exercises: exercises come last")
                    if not rest:
                        raise self.error(number, "a step needs a title: '## Step: title' (or '## 步骤：标题')")
                    out["steps"].append((number, rest, []))
                    current = "step"
                else:
                    if out["exercises_line"]:
                        raise self.error(number, "a second exercises section")
                    out["exercises_line"] = number
                    current = "exercises"
                continue
            self._append(out, current, number, line)
        if in_fence:
            raise self.error(len(self.lines), f"a code block opened with {in_fence} is never closed")
        if out["title"] is None:
            raise self.error(1, "missing title: the file must start with a '# Title' line")
        return out

    @staticmethod
    def _append(out, current, number, line):
        if current == "step":
            out["steps"][-1][2].append((number, line))
        elif current in ("intro", "goals", "exercises"):
            out[current].append((number, line))

    def _heading(self, text: str, table: dict, number: int, marks: str) -> tuple[str, str]:
        """(section kind, the rest of the heading) for a heading in either language."""
        stripped = text.strip()
        low = stripped.lower()
        for kind, words in table.items():
            for word in sorted(words, key=len, reverse=True):
                if low.startswith(word):
                    rest = stripped[len(word):]
                    if rest and rest[0] not in ":： \t":
                        continue
                    return kind, rest.lstrip(":： \t").strip()
        allowed = ", ".join(f"{marks}{words[0].capitalize()}" for words in table.values())
        raise self.error(number, f"unknown section heading {marks}{stripped!r} (allowed: {allowed}, "
                                 f"or in Chinese: {', '.join(marks + w[-1] for w in table.values())})")

    def _body(self, lines, allow_toml: bool, what: str = "lesson introduction"):
        """(Markdown text, (TOML table, first line, block lines) or None) of a section's lines."""
        text, toml_block = [], None
        i = 0
        while i < len(lines):
            number, line = lines[i]
            fence = FENCE.match(line)
            if fence and fence.group(2).lower() == "toml":
                end = i + 1
                while end < len(lines) and not (FENCE.match(lines[end][1]) and not FENCE.match(lines[end][1]).group(2)):
                    end += 1
                block = lines[i + 1:end]
                if not allow_toml:
                    raise self.error(number, f"a ```toml block is not allowed in the {what}")
                if toml_block is not None:
                    raise self.error(number, f"a second ```toml block in the {what} (the first is at line "
                                             f"{toml_block[1] - 1}); put all settings in one block")
                table = self._toml(block, number + 1)
                toml_block = (table, number + 1, block)
                i = end + 1
                continue
            text.append((number, line))
            i += 1
        return _join(text), toml_block

    def _toml(self, block, first_line: int) -> dict:
        source = "\n".join(line for _, line in block)
        try:
            return tomllib.loads(source)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            at = re.search(r"\(at line (\d+), column (\d+)\)", message)
            line = first_line + int(at.group(1)) - 1 if at else first_line
            message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
            if at:
                message += f" (column {at.group(2)})"
            raise self.error(line, f"invalid TOML: {message}") from None

    def _key_line(self, block, first_line: int, key: str, after: int = 0) -> int:
        pattern = re.compile(rf'(^|[\s{{,\[])"?{re.escape(key)}"?\s*=')
        for offset, (number, line) in enumerate(block):
            if number >= after and pattern.search(line.split("#", 1)[0]):
                return number
        return first_line

    def _state(self, table: dict, first_line: int, block, base: dict, view_keys) -> tuple[dict, dict]:
        """(effective settings, {view key: value}) of a TOML block; every key and value checked."""
        settings = dict(base)
        view = {}
        allowed = sorted(SETTING_KEYS) + list(view_keys)
        for key, value in table.items():
            line = self._key_line(block, first_line, key)
            if key == "question" and "question" in view_keys:
                continue  # checked by _question
            if key in SETTING_KEYS:
                try:
                    settings[SETTING_KEYS[key]] = convert_setting(key, value)
                except ValueError as exc:
                    raise self.error(line, f"{key} = {value!r}: {exc}") from None
            elif key in view_keys:
                view[key] = self._view_value(key, value, line)
            else:
                hint = _close(key, allowed)
                raise self.error(line, f"unknown state key {key!r}{hint} (allowed: {', '.join(allowed)}"
                                       f"{', [question]' if 'op' in view_keys else ''})")
        return settings, view

    def _view_value(self, key: str, value, line: int):
        if key in ("hide", "lock"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.error(line, f"{key} must be a list of control keys, e.g. [\"lr\", \"batch\"]")
            bad = [v for v in value if v not in SETTING_KEYS]
            if bad:
                raise self.error(line, f"{key}: unknown control {bad[0]!r} (allowed: {', '.join(SETTING_KEYS)})")
            return tuple(value)
        if key == "op":
            if not isinstance(value, str) or not OP_REF.match(value):
                raise self.error(line, f"op = {value!r}: must name a GEMM of the training step like "
                                       f"\"L1.forward\", \"L2.dX\" or \"L1.dW\"")
            return value
        limit = MAX_TRAIN_STEPS if key == "train_steps" else 10**9
        low = 1 if key == "train_steps" else 0
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= limit:
            raise self.error(line, f"{key} = {value!r}: must be a whole number from {low} to {limit}")
        return value

    # ----- sections -----
    def _goals(self, lines) -> list[str]:
        goals = []
        for number, line in lines:
            item = re.match(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$", line)
            if item:
                goals.append(item.group(1).strip())
            elif line.strip() and goals and line.startswith((" ", "\t")):
                goals[-1] += " " + line.strip()
            elif line.strip():
                raise self.error(number, "the goals section is a bullet list ('- goal'), got "
                                         f"{line.strip()[:40]!r}")
        self._check_placeholders("\n".join(goals), lines, settings=self.lesson_settings)
        return goals

    def _step(self, index: int, line: int, title: str, body, base: dict) -> Step:
        parts = {"text": []}
        part = "text"
        seen = {}
        in_fence = False
        for number, text in body:
            fence = FENCE.match(text)
            if fence and not in_fence:
                in_fence = True
            elif fence and not fence.group(2):
                in_fence = False
            if not in_fence and text.startswith("### "):
                kind, rest = self._heading(text[4:], SUBSECTIONS, number, "### ")
                if kind in seen:
                    raise self.error(number, f"a second ### {kind} section in this step (the first is at line "
                                             f"{seen[kind]})")
                seen[kind] = number
                part = kind
                parts[kind] = [(number, rest)] if rest else []
                continue
            parts.setdefault(part, []).append((number, text))
        text, toml_block = self._body(parts["text"], allow_toml=True, what=f"step {index}")
        for kind in ("look", "question", "explanation"):
            if kind in parts:
                for number, t in parts[kind]:
                    if FENCE.match(t) and FENCE.match(t).group(2).lower() == "toml":
                        raise self.error(number, "the step's ```toml block belongs before its ### sections")
        table, first, block = toml_block if toml_block else ({}, line, [])
        settings, view = self._state(table, first, block, base, VIEW_KEYS + ("question",))
        state = {k: v for k, v in table.items() if k != "question"}
        vw = View(view.get("op"), view.get("cycle"), view.get("train_steps"), view.get("hide", ()),
                  view.get("lock", ()))
        where = dict(settings=settings, op=vw.op, steps=vw.train_steps or 1)
        look = _join(parts.get("look", []))
        prompt_lines = parts.get("question", [])
        question = None
        if "question" in table:
            q = table["question"]
            q_line = self._key_line(block, first, "question") if block else line
            for number, t in block:
                if re.match(r"^\s*\[question\]", t):
                    q_line = number
            if not isinstance(q, dict):
                raise self.error(q_line, "question must be a table: [question] then type = …, measure = …")
            if "question" not in parts:
                raise self.error(q_line, "this step has a [question] but no '### Question' (or '### 问题') "
                                         "section with its prompt")
            if "explanation" not in parts:
                raise self.error(q_line, "this step has a [question] but no '### Explanation' (or '### 解释') "
                                         "section shown after the answer")
            question = self._question(q, q_line, block, prompt_lines, _join(parts["explanation"]), where)
        elif "question" in parts or "explanation" in parts:
            number = seen.get("question") or seen.get("explanation")
            raise self.error(number, "a question section without a [question] table in the step's ```toml block")
        for kind in ("look", "explanation"):
            self._check_placeholders(_join(parts.get(kind, [])), parts.get(kind, []), **where)
        self._check_placeholders(text, parts["text"], **where)
        return Step(index, title, text, state, settings, vw, look, question, self.language, line, self.where)

    def _question(self, q: dict, q_line: int, block, prompt_lines, explanation: str, where: dict) -> Question:
        def at(key):
            return self._key_line(block, q_line, key, after=q_line)

        for key in q:
            if key not in QUESTION_KEYS:
                raise self.error(at(key), f"unknown question key {key!r}{_close(key, QUESTION_KEYS)} "
                                          f"(allowed: {', '.join(QUESTION_KEYS)})")
        kind = q.get("type")
        if kind not in ("number", "choice"):
            raise self.error(at("type") if "type" in q else q_line,
                             f"question type must be \"number\" or \"choice\", got {kind!r}")
        name = q.get("measure")
        if name not in MEASURES:
            raise self.error(at("measure") if "measure" in q else q_line,
                             f"unknown measure {name!r}{_close(str(name), MEASURES)} "
                             f"(allowed: {', '.join(MEASURES)})")
        measure = MEASURES[name]
        settings = dict(where["settings"])
        for table_name, allowed in (("chip", CHIP_KEYS), ("net", NET_KEYS)):
            table = q.get(table_name, {})
            if not isinstance(table, dict):
                raise self.error(at(table_name), f"{table_name} must be a table like {{ rows = 4 }}")
            for key, value in table.items():
                if key not in allowed:
                    raise self.error(at(key), f"{table_name}: unknown key {key!r} (allowed: {', '.join(allowed)})")
                try:
                    settings[SETTING_KEYS[key]] = convert_setting(key, value)
                except ValueError as exc:
                    raise self.error(at(key), f"{table_name}.{key} = {value!r}: {exc}") from None
        dims = None
        if "gemm" in q:
            g = q["gemm"]
            if not isinstance(g, dict) or sorted(g) != ["k", "m", "n"]:
                raise self.error(at("gemm"), "gemm must be a table { m = …, k = …, n = … } (A is m×k, B is k×n)")
            dims = tuple(self._whole(g[d], f"gemm.{d}", at("gemm"), 1, 1_000_000) for d in "mkn")
        if dims and "op" in q:
            raise self.error(at("op"), "give either gemm = { m, k, n } or op = \"L…\", not both")
        op = q.get("op", where["op"] if not dims else None)
        if op is not None and (not isinstance(op, str) or not OP_REF.match(op)):
            raise self.error(at("op"), f"op = {op!r}: must be like \"L1.forward\", \"L2.dX\" or \"L1.dW\"")
        steps = self._whole(q["steps"], "steps", at("steps"), 1, MAX_TRAIN_STEPS) if "steps" in q else where["steps"]
        source = q.get("source", "lesson")
        if source not in ("lesson", "app"):
            raise self.error(at("source"), f"source must be \"lesson\" (the step's state) or \"app\" (the live "
                                           f"session), got {source!r}")
        if measure.kind in ("gemm", "trace") and not dims and not op and source == "lesson":
            raise self.error(q_line, f"measure {name!r} needs a GEMM: gemm = {{ m = …, k = …, n = … }} or op = "
                                     "\"L1.forward\"")
        query = Query(name, _key(settings), dims, op if not dims else None, steps)
        tol = self._number(q, "tolerance", at)
        rel = self._number(q, "rel_tolerance", at)
        choices, labels, over, choose, bin_limits = (), {}, (), None, ()
        prompt = _join(prompt_lines)
        if kind == "choice":
            raw = q.get("choices")
            if not isinstance(raw, list) or len(raw) < 2 or not all(isinstance(c, str) and c for c in raw) \
                    or len(set(raw)) != len(raw):
                raise self.error(at("choices") if "choices" in q else q_line,
                                 "a choice question needs choices = [\"…\", \"…\"]: two or more different texts")
            choices = tuple(raw)
            if "over" in q:
                table = q["over"]
                if not isinstance(table, dict) or not table:
                    raise self.error(at("over"), "over must be a table of lists, one value per choice, "
                                                 "e.g. over = { dataflow = [\"ws\", \"os\", \"is\"] }")
                per_choice = [dict() for _ in choices]
                for key, values in table.items():
                    if not isinstance(values, list) or len(values) != len(choices):
                        raise self.error(at(key), f"over.{key} must list {len(choices)} values, one per choice")
                    for i, value in enumerate(values):
                        per_choice[i].update(self._override(key, value, at(key), "over", dims))
                over = tuple(per_choice)
                choose = q.get("choose", "min")
                if choose not in ("min", "max"):
                    raise self.error(at("choose"), f"choose must be \"min\" or \"max\", got {choose!r}")
            elif "bins" in q:
                bins = q["bins"]
                ok = isinstance(bins, list) and len(bins) == len(choices) - 1 and all(
                    isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bins)
                if not ok or sorted(bins) != bins or len(set(bins)) != len(bins):
                    raise self.error(at("bins"), f"bins must list {len(choices) - 1} increasing numbers: the "
                                                 "limits between the choices, e.g. bins = [50, 90] for three choices")
                if measure.fmt == "text":
                    raise self.error(at("bins"), f"bins need a numeric measure, not {name!r}")
                bin_limits = tuple(float(b) for b in bins)
            elif measure.fmt != "text":
                raise self.error(q_line, f"a choice question needs over = {{…}} (which choice gives the min or max "
                                         f"of {name}), bins = […] (which range {name} falls in), or a measure "
                                         f"that answers in words ({', '.join(TEXT_MEASURES)})")
            else:
                allowed = TEXT_MEASURES[name]
                if sorted(choices) != sorted(allowed):
                    raise self.error(at("choices"), f"{name} answers {' or '.join(allowed)}: choices must be "
                                                    f"{list(allowed)}")
            prompt, labels = _choice_labels(prompt_lines, choices)
        elif measure.fmt == "text":
            raise self.error(at("type"), f"measure {name!r} answers in words: use type = \"choice\"")
        for key in ("over", "choose", "bins"):
            if key in q and kind != "choice":
                raise self.error(at(key), f"{key} is for choice questions (type = \"choice\")")
        minus = self._overrides(q, "minus", at, dims)
        divided = self._overrides(q, "divided_by", at, dims)
        if minus and divided:
            raise self.error(at("divided_by"), "use minus or divided_by, not both")
        if (minus or divided) and kind != "number" and not bin_limits:
            raise self.error(at("minus" if minus else "divided_by"),
                             "minus and divided_by are for number questions and choice questions with bins")
        self._check_placeholders(prompt, prompt_lines, **where)
        return Question(kind, prompt, explanation, dict(q), query, self.language, choices, labels, over, choose,
                        minus, divided, tol, rel, source, q_line, self.where, bin_limits)

    def _overrides(self, q, key, at, dims):
        if key not in q:
            return None
        table = q[key]
        if not isinstance(table, dict) or not table:
            raise self.error(at(key), f"{key} must be a table of changes, e.g. {key} = {{ precision = \"fp32\" }}")
        out = {}
        for k, v in table.items():
            out.update(self._override(k, v, at(key), key, dims))
        return out

    def _override(self, key, value, line, where, dims) -> dict:
        if key in ("m", "k", "n"):
            if not dims:
                raise self.error(line, f"{where}.{key}: a GEMM dimension needs gemm = {{ m, k, n }} in the question")
            return {key: self._whole(value, f"{where}.{key}", line, 1, 1_000_000)}
        if key == "steps":
            return {key: self._whole(value, f"{where}.steps", line, 1, MAX_TRAIN_STEPS)}
        if key == "op":
            if dims or not isinstance(value, str) or not OP_REF.match(value):
                raise self.error(line, f"{where}.op = {value!r}: must be like \"L1.forward\", \"L2.dX\" or "
                                       f"\"L1.dW\" (and the question must not give gemm = …)")
            return {key: value}
        if key == "measure":
            if value not in MEASURES or MEASURES[value].fmt == "text":
                raise self.error(line, f"{where}.measure = {value!r}: must be a numeric measure "
                                       f"({', '.join(n for n, m in MEASURES.items() if m.fmt != 'text')})")
            return {key: value}
        if key not in SETTING_KEYS:
            allowed = sorted(SETTING_KEYS) + list(OVERRIDE_EXTRA)
            raise self.error(line, f"{where}: unknown key {key!r}{_close(key, allowed)} "
                                   f"(allowed: {', '.join(allowed)})")
        try:
            return {SETTING_KEYS[key]: convert_setting(key, value)}
        except ValueError as exc:
            raise self.error(line, f"{where}.{key} = {value!r}: {exc}") from None

    def _whole(self, value, name, line, low, high) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.error(line, f"{name} = {value!r}: must be a whole number from {low} to {high:,}")
        return value

    def _number(self, q, key, at):
        if key not in q:
            return None
        value = q[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise self.error(at(key), f"{key} = {value!r}: must be a number >= 0")
        return float(value)

    def _exercises(self, lines, heading_line) -> list[Exercise]:
        exercises = []
        current = None
        for number, line in lines:
            if line.startswith("### "):
                current = [line[4:].strip(), number, [], None]
                exercises.append(current)
                continue
            if current is None:
                if line.strip():
                    raise self.error(number, "exercises start with '### title' (then the text, then "
                                             "'**Answer:** …' or '**答案：** …')")
                continue
            answer = ANSWER_LINE.match(line)
            if answer and current[3] is None:
                current[3] = [(number, line[answer.end():])]
            elif current[3] is not None:
                current[3].append((number, line))
            else:
                current[2].append((number, line))
        if not exercises:
            raise self.error(heading_line, "an exercises section with no '### title' exercise in it")
        out = []
        for title, number, text, answer in exercises:
            if answer is None:
                raise self.error(number, f"exercise {title!r} has no answer: add a line '**Answer:** …' "
                                         "(or '**答案：** …')")
            self._check_placeholders(_join(text), text, settings=self.lesson_settings)
            self._check_placeholders(_join(answer), answer, settings=self.lesson_settings)
            out.append(Exercise(title, _join(text), _join(answer), number))
        return out

    # ----- placeholders -----
    def _check_placeholders(self, _text, lines, settings=None, op=None, steps=1):
        for number, line in lines:
            try:
                for spec in placeholders_in(line):
                    resolve_placeholder(spec, settings or default_settings(), op, steps)
            except ValueError as exc:
                raise self.error(number, str(exc)) from None


def _join(lines) -> str:
    text = "\n".join(line for _, line in lines)
    return text.strip("\n").rstrip()


def _close(word: str, allowed) -> str:
    import difflib

    match = difflib.get_close_matches(word, list(allowed), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _choice_labels(lines, choices) -> tuple[str, dict]:
    """Prompt text and {choice: label} from list items '- choice: label' in the question section."""
    labels, kept = {}, []
    for number, line in lines:
        item = re.match(r"^\s*[-*+]\s+`?([^`:：]+?)`?\s*[:：]\s*(.+)$", line)
        if item and item.group(1).strip() in choices:
            labels[item.group(1).strip()] = item.group(2).strip()
        else:
            kept.append((number, line))
    return _join(kept), labels


# ----- the placeholder language -----
PLACEHOLDER_ARGS = ("m", "k", "n", "op", "steps", "digits")


def placeholders_in(line: str) -> list[str]:
    """The inner texts of the line's {{…}} placeholders; ValueError for an unclosed one."""
    found = PLACEHOLDER.findall(line)
    rest = PLACEHOLDER.sub("", line)
    if "{{" in rest or "}}" in rest:
        raise ValueError("a placeholder must open with {{ and close with }} on the same line")
    return found


@dataclass(frozen=True)
class Placeholder:
    query: Query
    digits: int | None


def resolve_placeholder(spec: str, settings: dict, op: str | None = None, steps: int = 1) -> Placeholder:
    """Parse `measure key=value …` (never evaluated) against default settings, op and steps."""
    tokens = spec.split()
    if not tokens:
        raise ValueError("an empty placeholder {{ }}: write {{measure key=value …}}, e.g. {{cycles m=4 k=4 n=4}}")
    name = tokens[0]
    if name not in MEASURES:
        raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: unknown measure {name!r}{_close(name, MEASURES)} "
                         f"(allowed: {', '.join(MEASURES)})")
    measure = MEASURES[name]
    values = dict(settings)
    dims: dict[str, int] = {}
    digits = None
    given_op = None
    for token in tokens[1:]:
        key, sep, raw = token.partition("=")
        if not sep or not NAME.match(key) or not raw:
            raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: {token!r} is not key=value")
        if key in ("m", "k", "n", "steps", "digits"):
            if not raw.isdigit() or len(raw) > 7:
                raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: {key}={raw} must be a whole number")
            number = int(raw)
            if key == "digits":
                if number > 6:
                    raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: digits must be 0 to 6")
                digits = number
            elif key == "steps":
                if not 1 <= number <= MAX_TRAIN_STEPS:
                    raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: steps must be 1 to {MAX_TRAIN_STEPS}")
                steps = number
            else:
                if number < 1:
                    raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: {key} must be >= 1")
                dims[key] = number
        elif key == "op":
            if not OP_REF.match(raw):
                raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: op={raw} must be like L1.forward, L2.dX, L1.dW")
            given_op = raw
        elif key in SETTING_KEYS:
            try:
                values[SETTING_KEYS[key]] = convert_setting(key, raw)
            except ValueError as exc:
                raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: {key}={raw} {exc}") from None
        else:
            allowed = list(PLACEHOLDER_ARGS) + sorted(SETTING_KEYS)
            raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: unknown argument {key!r}{_close(key, allowed)} "
                             f"(allowed: {', '.join(allowed)})")
    if dims and len(dims) != 3:
        raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: give all of m, k and n (A is m×k, B is k×n)")
    gemm_dims = (dims["m"], dims["k"], dims["n"]) if dims else None
    use_op = None
    if measure.kind in ("gemm", "trace") and not gemm_dims:
        use_op = given_op or op
        if not use_op:
            raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: {name} needs a GEMM: m=… k=… n=… or op=L1.forward")
    return Placeholder(Query(name, _key(values), gemm_dims, use_op, steps), digits)


def render(text: str, settings: dict | None = None, lang: str = "en", op: str | None = None, steps: int = 1) -> str:
    """`text` with every {{placeholder}} replaced by the simulator's value (errors shown inline)."""
    base = settings or default_settings()

    def one(match):
        try:
            ph = resolve_placeholder(match.group(1), base, op, steps)
            return format_value(ph.query.measure, measure_value(ph.query), lang, ph.digits)
        except (ValueError, KeyError) as exc:
            return f"⟨{exc}⟩"

    return PLACEHOLDER.sub(one, text)


def render_step(step: Step, text: str | None = None) -> str:
    """A step's text (or another text of the step) rendered with the step's settings, op and steps."""
    return render(step.text if text is None else text, step.settings, step.language, step.view.op,
                  step.view.train_steps or 1)


def render_lesson_text(lesson: Lesson, text: str) -> str:
    return render(text, lesson.settings, lesson.language)


# ======================================================================================
# Loading
# ======================================================================================

def parse_lesson(text: str, path: str = "<lesson>", language: str = "en") -> Lesson:
    """Parse the text of a lesson file; LessonError names the file and line of any problem."""
    stem = Path(path).stem
    match = re.match(r"^(\d+)", stem)
    if not match:
        raise LessonError(f"{_display_path(path)}:1: the file name must start with the lesson's number, "
                          f"e.g. 03-dataflows.md")
    return _Parser(text, str(path), language).parse(int(match.group(1)), stem)


def load_lesson(path) -> Lesson:
    path = Path(path)
    language = path.parent.name if path.parent.name in LANGUAGES else "en"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LessonError(f"{_display_path(path)}:1: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_lesson(text, str(path), language)


def lesson_files(lang: str, root=None) -> list[Path]:
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {lang!r}")
    folder = Path(root or LESSONS_DIR) / lang
    return sorted(folder.glob("*.md")) if folder.is_dir() else []


def load_lessons(lang: str = "en", root=None) -> list[Lesson]:
    """Every lesson of a language, in order of their numbers (two files with one number: an error)."""
    lessons = [load_lesson(p) for p in lesson_files(lang, root)]
    seen = {}
    for lesson in lessons:
        if lesson.number in seen:
            raise LessonError(f"{_display_path(lesson.path)}:1: lesson number {lesson.number} is also used by "
                              f"{_display_path(seen[lesson.number])}")
        seen[lesson.number] = lesson.path
    return sorted(lessons, key=lambda l: l.number)


@lru_cache(maxsize=8)
def _cached_lessons(lang: str, root: str, stamp: tuple) -> tuple:
    return tuple(load_lessons(lang, root))


def cached_lessons(lang: str, root=None) -> list[Lesson]:
    """load_lessons, reloaded only when a file changes (for the app)."""
    files = lesson_files(lang, root)
    stamp = tuple((str(p), p.stat().st_mtime_ns) for p in files)
    return list(_cached_lessons(lang, str(root or LESSONS_DIR), stamp))


# ======================================================================================
# Checking answers
# ======================================================================================

class Feedback(NamedTuple):
    """check_answer's result. expected is None when the answer could not be checked (empty,
    not a number, not a choice); explanation then says what to enter."""

    correct: bool
    expected: Any
    explanation: str


@dataclass
class AnswerContext:
    """What a question is measured against: the lesson's declared state, or the live session."""

    session: Any = None  # a TrainingSession, for questions with source = "app"
    op: int | None = None  # index (in the session's last step) of the GEMM shown


def expected_answer(question: Question, context: AnswerContext | None = None):
    """The simulator's answer: a number (number questions) or one of the choices."""
    if question.kind == "choice" and question.bins:
        value = _numeric_value(question, context)
        return question.choices[sum(value >= b for b in question.bins)]
    if question.kind == "choice" and question.over:
        values = [measure_value(question.query.with_changes(c)) for c in question.over]
        best = min(values) if question.choose == "min" else max(values)
        winners = [c for c, v in zip(question.choices, values) if math.isclose(v, best, rel_tol=1e-12)]
        return winners[0] if len(winners) == 1 else tuple(winners)
    return _numeric_value(question, context)


def _numeric_value(question: Question, context: AnswerContext | None):
    value = _live_value(question, context) if question.source == "app" else measure_value(question.query)
    if question.minus is not None:
        value = value - measure_value(question.query.with_changes(question.minus))
    elif question.divided_by is not None:
        value = value / measure_value(question.query.with_changes(question.divided_by))
    return value


def _live_value(question: Question, context: AnswerContext | None):
    """The question's measure taken from the live session (source = "app")."""
    session = getattr(context, "session", None)
    if session is None:
        return measure_value(question.query)
    measure = question.measure
    settings = {name: getattr(session, name) for name in SETTING_KEYS.values()}
    if measure.kind == "chip":
        return measure.fn(chip_config(settings).with_(precision=settings["precision"]))
    if measure.kind == "net":
        with session.lock:
            if session.trainer.last is None and measure.name not in ("params", "test_accuracy", "test_loss"):
                raise ValueError("the network has not trained yet: press “One step”")
            return measure.fn(session.trainer)
    ops = session.operations()
    index = context.op
    if index is None or not (0 <= index < len(ops)) or not ops[index].is_gemm:
        index = find_op(ops, question.query.op or "L1.forward")
    if index is None:
        raise ValueError("the app shows no matrix multiply yet: press “One step”")
    stats = ops[index].stats
    if measure.kind == "trace":
        trace = session.trace_operation(index, (0, stats.cycles))
        return measure.fn(trace)
    config = chip_config(settings).with_(precision=stats.precision)
    return measure.fn(stats, Mapping.of(stats.m, stats.k, stats.n, config))


def parse_number(text: str) -> float | None:
    """A number typed by a student: '14', ' 1,746 ', '28.6%', '１４', '3.2 cycles'; None if not one."""
    t = unicodedata.normalize("NFKC", str(text)).strip()
    t = t.replace("−", "-").replace("％", "%")
    match = re.fullmatch(r"([-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*%?\s*[^\d\s.,%]*", t)
    if not match or not re.search(r"\d", match.group(1)):
        return None
    try:
        value = float(match.group(1).replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def tolerance_of(question: Question, expected: float) -> float:
    """Absolute tolerance: the question's, else exact for whole-number measures, else 1% (0.5 points for %)."""
    if question.tolerance is not None or question.rel_tolerance is not None:
        return max(question.tolerance or 0.0, (question.rel_tolerance or 0.0) * abs(expected))
    m = question.measure
    if question.minus is None and question.divided_by is None:
        if m.fmt == "int":
            return 0.0
        if m.fmt == "percent":
            return 0.5
    return max(0.01 * abs(expected), 0.5 * 10 ** -m.decimals if question.divided_by is None else 0.0)


def format_expected(question: Question, expected) -> str:
    lang = question.language
    if question.kind == "choice":
        if isinstance(expected, tuple):
            return " / ".join(question.label(c) for c in expected)
        return question.label(expected) if expected in question.choices else format_value(
            question.query.measure, expected, lang)
    if question.divided_by is not None:
        return f"{expected:,.2f}×" if abs(expected) < 100 else f"{expected:,.0f}×"
    if question.minus is not None and question.measure.fmt == "percent":
        return f"{expected:+,.1f} " + ("个百分点" if lang == "zh" else "percentage points")
    if question.minus is not None:
        return f"{expected:+,.{question.measure.decimals}f}"
    return format_value(question.query.measure, expected, lang)


def check_answer(question: Question, answer_text, context: AnswerContext | None = None) -> Feedback:
    """Check a student's answer against the simulator: (correct, expected, explanation).

    expected is None when the input could not be checked (empty, not a number, not one of the
    choices); explanation then says what to type. Otherwise explanation starts with the verdict
    and the simulator's value, followed by the lesson's explanation.
    """
    lang = question.language
    text = "" if answer_text is None else str(answer_text).strip()
    if question.kind == "choice":
        if text not in question.choices:
            return Feedback(False, None, ui(lang, "choose_one"))
        expected = expected_answer(question, context)
        correct = text in expected if isinstance(expected, tuple) else text == expected
        given = question.label(text)
    else:
        if not text:
            return Feedback(False, None, ui(lang, "empty"))
        value = parse_number(text)
        if value is None:
            return Feedback(False, None, ui(lang, "not_a_number", given=text[:40]))
        expected = expected_answer(question, context)
        correct = abs(value - expected) <= tolerance_of(question, expected) + 1e-9 * max(1.0, abs(expected))
        given = text
    shown = format_expected(question, expected)
    verdict = ui(lang, "right") if correct else ui(lang, "wrong")
    detail = ui(lang, "simulator_says", expected=shown) if correct else ui(lang, "you_said", given=given,
                                                                          expected=shown)
    step_settings = dict(question.query.settings)
    explanation = render(question.explanation, step_settings, lang, question.query.op, question.query.steps)
    return Feedback(bool(correct), expected, f"**{verdict}** {detail}\n\n{explanation}".rstrip())


# ======================================================================================
# Applying a step to a session; links
# ======================================================================================

@dataclass
class Applied:
    """What apply_step did: the GEMM to show (index in the session's last step), the cycle,
    the controls to hide and lock, and notices for anything it had to change."""

    op: int | None
    cycle: int | None
    hide: list[str]
    lock: list[str]
    notices: list[str]
    rebuilt: bool


def apply_step(step: Step, session, lesson: Lesson | None = None, extra_hide=(), extra_lock=(),
               lang: str | None = None) -> Applied:
    """Put `session` in the state `step` sets: settings (validated at parse time), a fresh network
    trained `train_steps` steps when the step asks for it or when any setting changed; then
    find the GEMM and cycle to show. Safe headless (no panel)."""
    lang = lang or step.language
    session.pause()
    changed = {k: v for k, v in step.settings.items() if getattr(session, k) != v}
    rebuilt = False
    if changed:
        # watchers (widgets, URL) follow; a reset setting rebuilds. The dataset goes alone: the
        # dashboard's Controls._on_shape accepts one event only and both are among its triggers.
        if "dataset" in changed and "hidden_layers" in changed:
            session.dataset = changed.pop("dataset")
        session.param.update(**changed)
    if changed or step.view.train_steps:
        session.build()  # a fresh, deterministic network, as the lesson's numbers assume
        session.step(step.view.train_steps or 1)
        rebuilt = True
    elif not session.operations():
        session.step()
    if rebuilt:
        session.notice = ""  # the lesson reset the network on purpose; a later reset must notify again
    notices = []
    ops = session.operations()
    index = None
    if step.view.op:
        index = find_op(ops, step.view.op)
        if index is None:
            notices.append(notice(lang, "op_missing", op=op_label(step.view.op, lang)))
    if index is None:
        index = next((i for i, op in enumerate(ops) if op.is_gemm), None)
    cycle = step.view.cycle
    if cycle is not None and index is not None:
        total = ops[index].stats.cycles
        if cycle >= total:
            notices.append(notice(lang, "cycle_clamped", cycle=cycle, total=total))
            cycle = total - 1
    hide = sorted(set(lesson.hide if lesson else ()) | set(step.view.hide) | set(extra_hide))
    lock = sorted(set(lesson.lock if lesson else ()) | set(step.view.lock) | set(extra_lock))
    return Applied(index, cycle, hide, lock, notices, rebuilt)


def _controls(raw: str) -> tuple[list[str], list[str]]:
    keys = [k.strip() for k in str(raw).split(",") if k.strip()]
    return [k for k in keys if k in SETTING_KEYS], [k for k in keys if k not in SETTING_KEYS]


def lesson_state_from_query(query: dict, root=None) -> tuple[dict, list[str]]:
    """The lesson-mode part of a URL query, validated: ({lesson, step, lang, hide, lock}, notices).

    lesson is a lesson number, step 1-based, lang "en" or "zh", hide and lock lists of control
    (URL) keys. Missing keys are left out; a bad value is left out with a notice (in the
    link's language when it has a valid one), as chipviz.settings.parse_query does.
    """
    values: dict[str, Any] = {}
    notices: list[str] = []

    def raw(key):
        value = query.get(key)
        if isinstance(value, (list, tuple)):
            value = value[-1] if value else ""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return None if value is None else str(value).strip()

    lang_raw = raw("lang")
    lang = "en"
    if lang_raw is not None:
        if lang_raw in LANGUAGES:
            values["lang"] = lang = lang_raw
        else:
            notices.append(notice("en", "unknown_lang", value=lang_raw[:20], allowed=", ".join(LANGUAGES)))
    lessons = cached_lessons(lang, root)
    numbers = [lesson.number for lesson in lessons]
    lesson_raw = raw("lesson")
    chosen = None
    if lesson_raw is not None:
        if lesson_raw.isdigit() and len(lesson_raw) < 6 and int(lesson_raw) in numbers:
            chosen = next(l for l in lessons if l.number == int(lesson_raw))
            values["lesson"] = chosen.number
        else:
            notices.append(notice(lang, "unknown_lesson", value=lesson_raw[:20],
                              allowed=f"{min(numbers)}–{max(numbers)}" if numbers else "—"))
    step_raw = raw("step")
    if step_raw is not None:
        target = chosen or (lessons[0] if lessons else None)
        n = len(target.steps) if target else 0
        if target and step_raw.isdigit() and len(step_raw) < 6 and 1 <= int(step_raw) <= n:
            values["step"] = int(step_raw)
        else:
            notices.append(notice(lang, "bad_step", value=step_raw[:20], lesson=target.number if target else "?", n=n))
    for key in ("hide", "lock"):
        value = raw(key)
        if value is None:
            continue
        good, bad = _controls(value)
        values[key] = good
        if bad:
            notices.append(notice(lang, "bad_control", which=key, value=value[:40], bad=", ".join(b[:20] for b in bad),
                              allowed=", ".join(SETTING_KEYS)))
    return values, notices


def lesson_query(lesson: int, step: int, lang: str, hide=(), lock=()) -> dict[str, str]:
    """The URL query of a lesson position (the inverse of lesson_state_from_query)."""
    query = {"lesson": str(lesson), "step": str(step), "lang": lang}
    if hide:
        query["hide"] = ",".join(hide)
    if lock:
        query["lock"] = ",".join(lock)
    return query


# ======================================================================================
# A checker for teachers: python -m chipviz.lessons [FILE.md ...]
# ======================================================================================

def check_lesson(lesson: Lesson) -> list[str]:
    """Render every text and compute every answer of a lesson; return the problems found."""
    problems = []
    texts = [(lesson.intro, lesson.settings, None, 1)] + [(g, lesson.settings, None, 1) for g in lesson.goals]
    texts += [(t, lesson.settings, None, 1) for e in lesson.exercises for t in (e.text, e.answer)]
    for step in lesson.steps:
        ctx = (step.settings, step.view.op, step.view.train_steps or 1)
        texts += [(t, *ctx) for t in (step.text, step.look)]
        if step.question:
            texts += [(t, *ctx) for t in (step.question.prompt, step.question.explanation)]
            try:
                expected = expected_answer(step.question)
                if step.question.kind == "choice":
                    got = set(expected) if isinstance(expected, tuple) else {expected}
                    if not got <= set(step.question.choices):
                        problems.append(f"{step.source_file}:{step.question.line}: the simulator answers "
                                        f"{expected!r}, which is not among the choices")
            except (ValueError, KeyError) as exc:
                problems.append(f"{step.source_file}:{step.question.line}: {exc}")
    for text, settings, op, steps in texts:
        for bad in re.findall(r"⟨(.*?)⟩", render(text, settings, lesson.language, op, steps)):
            problems.append(f"{_display_path(lesson.path)}: {bad}")
    return problems


def main(argv=None) -> int:
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        lessons = [load_lesson(p) for p in args] if args else [l for lang in LANGUAGES for l in load_lessons(lang)]
    except LessonError as exc:
        print(exc)
        return 1
    status = 0
    for lesson in lessons:
        problems = check_lesson(lesson)
        for problem in problems:
            print(problem)
        status |= bool(problems)
        if not problems:
            print(f"ok  {_display_path(lesson.path)}: {lesson.title} ({len(lesson.steps)} steps, "
                  f"{sum(1 for s in lesson.steps if s.question)} questions)")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
