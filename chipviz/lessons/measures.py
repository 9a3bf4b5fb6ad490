"""Measures: every number a lesson states or checks, asked of the simulator (a GEMM on the
chip, the same cycle by cycle, a training run, or the chip itself) and formatted as a lesson
shows it. A Query names one measurement fully; measure_value answers it (cached).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from ..chip import Mapping, analyze, gemm
from ..chip import trace as chip_trace
from ..data import Dataset
from .. import i18n
from ..nn.phases import FORWARD, PHASE_TABLE
from ..nn.trainer import Diverged, Trainer
from .common import _key, chip_config, train_settings, ui

MAX_TRAIN_STEPS = 5000
MAX_TRACE_SIDE = 64
# A lesson names a GEMM of the training step as L<layer>.<what>: "forward", or what the backward
# GEMM computes ("dX", "dW"), as the phase table (chipviz.nn.phases) says.
OP_PHASE = {("forward" if p.id == FORWARD.id else p.c): p for p in PHASE_TABLE.values() if p.is_gemm}
OP_REF = re.compile(rf"^L([1-9])\.({'|'.join(OP_PHASE)})$")


@dataclass(frozen=True)
class Measure:
    name: str
    kind: str  # gemm: a GEMM on the chip; trace: the same, cycle by cycle; net: a training run; chip: the chip;
    # mnist: one training step of the settings' network on MNIST's shape (no data needed)
    # sweep: the Design space tab's sweep of chips on the settings' training step (lesson 15)
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
    ("tops_per_watt", "float", 2, "TOPS/W", "TOPS/W", "operations per joule, in 10¹² (a MAC is 2 operations)",
     lambda s, mp: 2 * s.macs / s.energy_pj["total"]),
    ("arithmetic_intensity", "float", 2, "MACs/byte", "次乘累加/字节", "MACs per DRAM byte",
     lambda s, mp: s.arithmetic_intensity),
    ("attainable_macs_per_cycle", "float", 1, "MACs/cycle", "次乘累加/周期", "the roofline's bound",
     lambda s, mp: s.attainable_macs_per_cycle),
    ("achieved_macs_per_cycle", "float", 1, "MACs/cycle", "次乘累加/周期", "MACs per cycle achieved",
     lambda s, mp: s.achieved_macs_per_cycle),
    ("time_us", "float", 3, "µs", "微秒", "time at the chip's clock", lambda s, mp: s.seconds * 1e6),
    ("gemm_m", "int", 0, "", "", "M: rows of A and of the output", lambda s, mp: s.m),
    ("gemm_k", "int", 0, "", "", "K: columns of A, rows of B (the summed dimension)", lambda s, mp: s.k),
    ("gemm_n", "int", 0, "", "", "N: columns of B and of the output", lambda s, mp: s.n),
    ("dram_reads", "int", 0, "values", "个数值", "operand values read from DRAM (A and B, each value once if it fits)",
     lambda s, mp: s.dram_reads),
    ("sram_reads_ifmap", "int", 0, "reads", "次读取", "reads of A (the inputs) from SRAM into the array",
     lambda s, mp: s.sram_reads_ifmap),
    ("achieved_tops", "float", 2, "TOPS", "TOPS", "operations per second achieved, in 10¹² (2 × MACs / time)",
     lambda s, mp: 2 * s.macs / s.seconds / 1e12),
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

def _step_seconds(t):
    return _phase_sum(t.last, ("forward", "backward_data", "backward_weights", "update"), "seconds")


def _step_utilization(t):
    """The step's MACs over (its cycles × PEs): vector-unit cycles count as idle PE-cycles."""
    macs = _phase_sum(t.last, ("forward", "backward_data", "backward_weights", "update"), "macs")
    return 100 * macs / (t.last.cycles * t.chip.pes)


for _name, _fmt, _dec, _ue, _uz, _doc, _get in [
    ("step_utilization", "percent", 1, "", "", "MACs of one training step / (its cycles × PEs)", _step_utilization),
    ("step_energy_with_static_uj", "float", 2, "µJ", "µJ",
     "energy of one training step plus the assumed static power (STATIC_W_PER_PE × PEs) over its time",
     lambda t: t.last.energy_pj / 1e6 + STATIC_W_PER_PE * t.chip.pes * _step_seconds(t) * 1e6),
    ("steps_per_epoch", "int", 0, "steps", "步", "training steps (weight updates) in one pass over the training split",
     lambda t: t.steps_per_epoch),
    ("epoch_time_ms", "float", 2, "ms", "毫秒", "time of one epoch: one step's time × steps per epoch",
     lambda t: _step_seconds(t) * t.steps_per_epoch * 1e3),
    ("epoch_energy_mj", "float", 2, "mJ", "mJ", "energy of one epoch: one step's energy × steps per epoch",
     lambda t: t.last.energy_pj * t.steps_per_epoch / 1e9),
]:
    MEASURES[_name] = Measure(_name, "net", _fmt, _dec, _ue, _uz, _get, _doc)

# The seed article's network trained on MNIST's shape (784 inputs, 10 classes, 60,000 training images):
# the step's hidden layers, optimizer, batch and chip, on synthetic inputs (a step's cost does not
# depend on the values), so the lesson needs no MNIST files.
MNIST_INPUTS, MNIST_CLASSES, MNIST_TRAIN_IMAGES = 784, 10, 60_000
USD_PER_KWH = 0.15  # an assumed electricity price, stated in the lessons that use it
# ChipViz's energy is dynamic only. Lesson 14 adds static (leakage) power as a stated assumption:
# TPU v1's idle power, 28 W (Jouppi et al., ISCA 2017, Table 2), shared by its 65,536 PEs.
STATIC_W_PER_PE = 28 / 65_536


def _mnist_epoch_steps(t):
    return math.ceil(MNIST_TRAIN_IMAGES / t.settings.batch_size)


for _name, _fmt, _dec, _ue, _uz, _doc, _get in [
    ("mnist_params", "int", 0, "parameters", "个参数", "weights and biases of the network on MNIST's shape",
     lambda t: int(sum(p.size for p in t.net.params))),
    ("mnist_step_cycles", "int", 0, "cycles", "个周期", "cycles of one training step on MNIST's shape",
     lambda t: t.last.cycles),
    ("mnist_step_macs", "int", 0, "MACs", "次乘累加", "MACs of one training step on MNIST's shape",
     lambda t: _phase_sum(t.last, ("forward", "backward_data", "backward_weights", "update"), "macs")),
    ("mnist_step_utilization", "percent", 1, "", "", "MACs / (cycles × PEs) of one training step on MNIST's shape",
     _step_utilization),
    ("mnist_step_energy_uj", "float", 2, "µJ", "µJ", "energy of one training step on MNIST's shape",
     lambda t: t.last.energy_pj / 1e6),
    ("mnist_step_time_us", "float", 2, "µs", "微秒", "time of one training step on MNIST's shape",
     lambda t: _step_seconds(t) * 1e6),
    ("mnist_steps_per_epoch", "int", 0, "steps", "步", "training steps in one epoch of MNIST's 60,000 images",
     _mnist_epoch_steps),
    ("mnist_epoch_time_s", "float", 3, "s", "秒", "time of one MNIST epoch: step time × steps per epoch",
     lambda t: _step_seconds(t) * _mnist_epoch_steps(t)),
    ("mnist_epoch_energy_j", "float", 3, "J", "J", "energy of one MNIST epoch: step energy × steps per epoch",
     lambda t: t.last.energy_pj * 1e-12 * _mnist_epoch_steps(t)),
    ("mnist_epoch_kwh", "float", 9, "kWh", "千瓦时", "the same in kilowatt-hours (3.6 million joules each)",
     lambda t: t.last.energy_pj * 1e-12 * _mnist_epoch_steps(t) / 3.6e6),
    ("mnist_epoch_cost_usd", "float", 9, "USD", "美元",
     f"the electricity of one MNIST epoch at {USD_PER_KWH} USD per kWh (an assumed price)",
     lambda t: t.last.energy_pj * 1e-12 * _mnist_epoch_steps(t) / 3.6e6 * USD_PER_KWH),
]:
    MEASURES[_name] = Measure(_name, "mnist", _fmt, _dec, _ue, _uz, _get, _doc)

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
    ("peak_mac_power_w", "float", 1, "W", "W", "power of the MACs alone with every PE busy: PEs × MAC energy × clock",
     lambda c: c.pes * c.energy.mac_pj(c.precision) * 1e-12 * c.clock_mhz * 1e6),
    ("static_power_w", "float", 2, "W", "W", "the assumed static power: STATIC_W_PER_PE × PEs (ChipViz has none)",
     lambda c: STATIC_W_PER_PE * c.pes),
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

# ----- lesson 15: the Design space tab's sweep, run headless -----
# The tab (chipviz/app/design_space.py, which this package cannot import; tests/test_lessons.py checks
# that the lists agree) sweeps chips on the current network's training step, with the sidebar's SRAM
# size, clock and energy table. A lesson names one of two spaces: "tab", what pressing "Run sweep"
# evaluates with the tab's default choices, and "wide", every choice the tab offers.
SWEEP_ARRAYS = ("2x2", "4x4", "8x8", "16x16", "32x32", "64x64", "128x128", "8x32", "32x8", "16x64", "64x16")
SWEEP_BANDWIDTHS = (1, 2, 4, 8, 16, 32, 64, 128)
SWEEP_SPACES = {
    "tab": (("4x4", "8x8", "16x16", "32x32"), ("ws", "os", "is"), ("fp32",), (8, 32)),
    "wide": (SWEEP_ARRAYS, ("ws", "os", "is"), ("fp32", "int8"), SWEEP_BANDWIDTHS),
}
# a sweep measure's arguments: the space, and limits a design must meet to count (PEs, µJ per step)
SWEEP_ARGS = ("space", "max_pes", "max_uj")


def sweep_arg(key: str, value):
    """A sweep argument (placeholder or question), validated: space "tab"/"wide", max_pes > 0, max_uj > 0."""
    if key == "space":
        if value not in SWEEP_SPACES:
            raise ValueError(f"space must be one of {', '.join(SWEEP_SPACES)}, got {value!r}")
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise ValueError(f"{key} must be a number > 0, got {value!r}")
    return int(number) if key == "max_pes" and number == int(number) else number


@lru_cache(maxsize=32)
def sweep_table(settings: tuple, space: str = "tab") -> dict:
    """Every design of the space on one training step of the settings' network, as the Design space
    tab evaluates it: {column: array} (rows, cols, pes, dataflow, precision, bw, cycles, energy_uj)."""
    from ..sweep import workload as wl
    from ..sweep.model import evaluate_workload
    from ..sweep.spec import make_spec

    values = dict(settings)
    base = chip_config(values)
    arrays, flows, precisions, bandwidths = SWEEP_SPACES[space]
    chip = {"array": list(arrays), "dataflow": list(flows), "precision": list(precisions),
            "clock_mhz": base.clock_mhz, "ifmap_sram_kib": [base.ifmap_sram_kib],
            "filter_sram_kib": [base.filter_sram_kib], "ofmap_sram_kib": [base.ofmap_sram_kib],
            "dram_bytes_per_cycle": list(bandwidths)}
    energy = {f: getattr(base.energy, f) for f in base.energy.__dataclass_fields__}
    workload = wl.training_step("network", train_settings(values))
    spec = make_spec(chip, [workload], energy=energy)
    configs = spec.configs(0, spec.size)
    totals = evaluate_workload(configs, workload, cache={})
    from ..chip.config import DATAFLOWS, PRECISIONS

    ok = np.asarray(totals["countable"], bool)
    out = {"rows": configs.rows, "cols": configs.cols, "pes": totals["pes"],
           "dataflow": np.array(DATAFLOWS)[configs.dataflow], "precision": np.array(PRECISIONS)[configs.precision],
           "bw": configs.dram_bytes_per_cycle, "cycles": totals["cycles"], "energy_uj": totals["energy_total_pj"] / 1e6}
    return {k: np.asarray(v)[ok] for k, v in out.items()}


def _sweep_of(query: "Query") -> dict:
    """The designs of the query's sweep that meet its limits (ValueError when none does)."""
    args = dict(query.sweep)
    d = sweep_table(query.settings, args.get("space", "tab"))
    keep = np.ones(len(d["cycles"]), bool)
    if "max_pes" in args:
        keep &= d["pes"] <= args["max_pes"]
    if "max_uj" in args:
        keep &= d["energy_uj"] <= args["max_uj"]
    if not keep.any():
        raise ValueError(f"no design of the {args.get('space', 'tab')!r} sweep meets "
                         + " and ".join(f"{k} = {v}" for k, v in args.items() if k != "space"))
    return {k: v[keep] for k, v in d.items()}


def _fastest(d) -> int:
    """The fastest design: fewest cycles, then least energy, fewest PEs, least bandwidth."""
    return int(np.lexsort((d["bw"], d["pes"], d["energy_uj"], d["cycles"]))[0])


def _frugal(d) -> int:
    """The most frugal design: least energy, then fewest cycles, fewest PEs, least bandwidth."""
    return int(np.lexsort((d["bw"], d["pes"], d["cycles"], d["energy_uj"]))[0])


def _front_count(d, cost) -> int:
    from ..sweep.pareto import front

    return int(front(d["energy_uj"], d[cost]).sum())


def _array(d, i) -> str:
    return f"{int(d['rows'][i])}x{int(d['cols'][i])}"


for _name, _fmt, _dec, _ue, _uz, _doc, _get in [
    ("sweep_designs", "int", 0, "designs", "个设计", "designs of the sweep that meet the limits",
     lambda d: len(d["cycles"])),
    ("sweep_front", "int", 0, "designs", "个设计",
     "designs on the Pareto front of energy against cycles (as the tab counts them: ties all kept)",
     lambda d: _front_count(d, "cycles")),
    ("sweep_front_pes", "int", 0, "designs", "个设计", "designs on the Pareto front of energy against PE count",
     lambda d: _front_count(d, "pes")),
    ("sweep_energy_ratio", "float", 2, "", "", "the most energy per step of a design / the least",
     lambda d: float(d["energy_uj"].max() / d["energy_uj"].min())),
    ("sweep_cycles_ratio", "float", 1, "", "", "the most cycles per step of a design / the fewest",
     lambda d: float(d["cycles"].max() / d["cycles"].min())),
    ("sweep_max_energy_uj", "float", 2, "µJ", "µJ", "the most energy per step of a design",
     lambda d: float(d["energy_uj"].max())),
    ("sweep_fastest_cycles", "int", 0, "cycles", "个周期", "cycles per step of the fastest design",
     lambda d: int(d["cycles"][_fastest(d)])),
    ("sweep_fastest_energy_uj", "float", 2, "µJ", "µJ", "energy per step of the fastest design",
     lambda d: float(d["energy_uj"][_fastest(d)])),
    ("sweep_fastest_pes", "int", 0, "PEs", "个处理单元", "PEs of the fastest design",
     lambda d: int(d["pes"][_fastest(d)])),
    ("sweep_fastest_array", "text", 0, "", "", "array of the fastest design (e.g. 32x32)",
     lambda d: _array(d, _fastest(d))),
    ("sweep_fastest_dataflow", "text", 0, "", "", "dataflow of the fastest design (ws, os, is)",
     lambda d: str(d["dataflow"][_fastest(d)])),
    ("sweep_fastest_precision", "text", 0, "", "", "precision of the fastest design (fp32, int8)",
     lambda d: str(d["precision"][_fastest(d)])),
    ("sweep_fastest_bw", "float", 0, "bytes/cycle", "字节/周期", "DRAM bandwidth of the fastest design",
     lambda d: float(d["bw"][_fastest(d)])),
    ("sweep_frugal_energy_uj", "float", 2, "µJ", "µJ", "energy per step of the most frugal design",
     lambda d: float(d["energy_uj"][_frugal(d)])),
    ("sweep_frugal_cycles", "int", 0, "cycles", "个周期", "cycles per step of the most frugal design",
     lambda d: int(d["cycles"][_frugal(d)])),
    ("sweep_frugal_pes", "int", 0, "PEs", "个处理单元", "PEs of the most frugal design",
     lambda d: int(d["pes"][_frugal(d)])),
    ("sweep_frugal_array", "text", 0, "", "", "array of the most frugal design", lambda d: _array(d, _frugal(d))),
    ("sweep_frugal_dataflow", "text", 0, "", "", "dataflow of the most frugal design",
     lambda d: str(d["dataflow"][_frugal(d)])),
    ("sweep_frugal_precision", "text", 0, "", "", "precision of the most frugal design",
     lambda d: str(d["precision"][_frugal(d)])),
]:
    MEASURES[_name] = Measure(_name, "sweep", _fmt, _dec, _ue, _uz, _get, _doc)

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
    sweep: tuple = ()  # sweep measures: sorted (argument, value) pairs of SWEEP_ARGS

    def with_changes(self, changes: dict) -> "Query":
        settings = dict(self.settings)
        gemm_dims = list(self.gemm) if self.gemm else None
        steps, op, measure = self.steps, self.op, self.measure
        sweep = dict(self.sweep)
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
            elif key in SWEEP_ARGS:
                sweep[key] = value
            else:
                settings[key] = value
        return Query(measure, _key(settings), tuple(gemm_dims) if gemm_dims else None, op, steps,
                     tuple(sorted(sweep.items())))


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
    if m.kind == "mnist":
        return m.fn(mnist_trained(query.settings))
    if m.kind == "sweep":
        return m.fn(_sweep_of(query))
    stats, mapping, operands = _gemm_of(query, settings, traced=m.kind == "trace")
    if m.kind == "gemm":
        return m.fn(stats, mapping)
    a, b, config, a_layout = operands
    if max(config.rows, config.cols) > MAX_TRACE_SIDE or stats.cycles > 20_000:
        raise ValueError(f"{query.measure} runs the GEMM cycle by cycle: arrays up to {MAX_TRACE_SIDE}×"
                         f"{MAX_TRACE_SIDE} and 20,000 cycles")
    result = gemm(a, b, config, engine="cycle", trace_window=(0, stats.cycles), a_layout=a_layout)
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
            operands = (a, b, config, None)
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


@lru_cache(maxsize=16)
def mnist_trained(settings: tuple) -> Trainer:
    """One training step of the settings' network on MNIST's shape (synthetic inputs, as above)."""
    values = dict(settings)
    values.setdefault("steps_per_second", 1)
    rng = np.random.default_rng(0)
    n = 256  # the largest batch a setting allows: one batch, whatever the batch size
    data = Dataset("mnist-shaped", rng.random((n, MNIST_INPUTS), np.float32), rng.integers(0, MNIST_CLASSES, n),
                   rng.random((MNIST_CLASSES, MNIST_INPUTS), np.float32), np.arange(MNIST_CLASSES),
                   MNIST_CLASSES, None, "MNIST's shape, synthetic values")
    trainer = Trainer(train_settings(values), chip_config(values), data=data)
    trainer.step()
    return trainer


def find_op(ops, ref: str) -> int | None:
    """Index in a step's op list of the GEMM `ref` (e.g. "L2.dX"), or None."""
    match = OP_REF.match(ref)
    if not match:
        return None
    layer, kind = int(match.group(1)), match.group(2)
    for i, op in enumerate(ops):
        if op.is_gemm and op.layer == layer and op.phase == OP_PHASE[kind].id:
            return i
    return None


def op_label(ref: str):
    """The GEMM `ref` (e.g. "L2.dX") in words, as a Message: "layer 2 backward dX = dZ·Wᵀ"."""
    match = OP_REF.match(ref)
    if not match:
        return ref
    phase = OP_PHASE[match.group(2)]
    return i18n.Message("lesson.op_label", layer=int(match.group(1)), direction=i18n.Message(
        f"direction.{phase.direction}"), name=phase.op)


def format_value(measure: str, value, lang: str = "en", digits: int | None = None, unit: bool = True) -> str:
    """A measured value as a lesson shows it: 1,746 cycles, 58.6%, 4.6 pJ, yes/是."""
    m = MEASURES[measure]
    if m.fmt == "text":
        if value in TEXT_VALUES:
            return ui(lang, value)
        return re.sub(r"(\d)x(\d)", r"\1×\2", str(value))  # an array: 32x32 -> 32×32
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
            "GEMMs": "GEMM", "parameters": "parameter", "steps": "step", "values": "value",
            "designs": "design"}
