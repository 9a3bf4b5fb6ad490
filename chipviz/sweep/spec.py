"""A sweep: every combination of some chip settings, each on some workloads.

A sweep file is TOML (see assets/sweeps/example.toml):

    [chip]                                  # each field: a value, a list, or a range
    array = ["8x8", "16x16", "32x32"]       # or rows = [...] and cols = [...] (every pair)
    dataflow = ["ws", "os", "is"]
    precision = ["fp32", "int8"]
    ifmap_sram_kib = { min = 16, max = 256, factor = 2 }
    dram_bytes_per_cycle = { min = 8, max = 64, step = 8 }

    [[workload]]
    name = "mlp"
    layers = "64,32,10"                     # a training step, as `chipviz train --layers`
    [[workload]]
    topology = "../topologies/alexnet.csv"  # relative to the sweep file
    [[workload]]
    gemms = [[256, 784, 64], "32x64x10"]    # M, K, N

    [sweep]
    chunk = 2048                            # configurations per task (default: about 2·10^5 evaluations)

Fields left out keep ChipConfig's defaults. Every mistake raises SpecError naming the file,
the line, the field and what is allowed. The configurations are numbered in a fixed order
(`CONFIG_AXES`, the last fastest), so a chunk is a range of numbers and needs no list.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field

import numpy as np

from ..chip.config import DATAFLOWS, PRECISIONS, ChipConfig, EnergyTable, parse_array
from . import workload as wl
from .vectorized import Configs

CONFIG_AXES = ("array", "dataflow", "precision", "clock_mhz", "ifmap_sram_kib", "filter_sram_kib", "ofmap_sram_kib",
               "dram_bytes_per_cycle")
CHIP_FIELDS = ("array", "rows", "cols", *CONFIG_AXES[1:])
NUMBER_FIELDS = CONFIG_AXES[3:]
TRAIN_FIELDS = ("dataset", "batch_size", "activation", "loss", "optimizer", "lr", "seed", "noise", "samples",
                "mnist_dir")
WORKLOAD_FIELDS = ("name", "gemms", "topology", "layers", *TRAIN_FIELDS)
SWEEP_FIELDS = ("chunk",)
TABLES = ("chip", "workload", "sweep", "energy")
RANGE_KEYS = ("min", "max", "step", "factor")
MAX_AXIS = 100_000  # values on one axis
EVALUATIONS_PER_CHUNK = 200_000
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ChipConfig) if f.name != "energy"}


class SpecError(ValueError):
    """A sweep that cannot run; the message names the file and line (or the option) and what is allowed."""


@dataclass
class SweepSpec:
    """The axes (lists of values, in CONFIG_AXES order) and the workloads."""

    axes: dict[str, list]
    workloads: list[wl.Workload]
    energy: EnergyTable = field(default_factory=EnergyTable)
    chunk: int | None = None
    source: str = "<command line>"

    @property
    def size(self) -> int:
        """Configurations in the sweep."""
        return math.prod(len(self.axes[a]) for a in CONFIG_AXES)

    @property
    def items_per_config(self) -> int:
        return sum(len(w.items) for w in self.workloads)

    @property
    def evaluations(self) -> int:
        """(configuration × workload item) evaluations in the sweep."""
        return self.size * self.items_per_config

    @property
    def points(self) -> int:
        """Result rows: one per (configuration, workload)."""
        return self.size * len(self.workloads)

    @property
    def chunk_size(self) -> int:
        """Configurations per task: the spec's, or about EVALUATIONS_PER_CHUNK evaluations."""
        if self.chunk:
            return self.chunk
        return max(1, min(self.size, EVALUATIONS_PER_CHUNK // max(1, self.items_per_config)))

    @property
    def chunks(self) -> int:
        return -(-self.size // self.chunk_size)

    def chunk_range(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_size
        return start, min(self.size, start + self.chunk_size)

    def configs(self, start: int, stop: int) -> Configs:
        """Configurations number start .. stop − 1 (mixed-radix over CONFIG_AXES, the last fastest)."""
        index = np.arange(start, stop, dtype=np.int64)
        columns = {}
        for axis in reversed(CONFIG_AXES):
            values = self.axes[axis]
            digit = index % len(values)
            index = index // len(values)
            if axis == "array":
                columns["rows"] = np.array([r for r, _ in values], np.int64)[digit]
                columns["cols"] = np.array([c for _, c in values], np.int64)[digit]
            elif axis == "dataflow":
                columns[axis] = np.array([DATAFLOWS.index(v) for v in values], np.int64)[digit]
            elif axis == "precision":
                columns[axis] = np.array([PRECISIONS.index(v) for v in values], np.int64)[digit]
            else:
                columns[axis] = np.array(values, np.float64)[digit]
        return Configs(**columns, energy=self.energy)

    def fingerprint(self) -> str:
        """A digest of everything the results depend on (a resumed sweep must match it)."""
        payload = {"version": 1, "axes": {a: [list(v) if isinstance(v, tuple) else v for v in self.axes[a]]
                                          for a in CONFIG_AXES},
                   "workloads": [w.fingerprint() for w in self.workloads],
                   "energy": dataclasses.asdict(self.energy), "chunk": self.chunk_size}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def describe(self) -> str:
        axes = ", ".join(f"{len(self.axes[a])} {a}" for a in CONFIG_AXES if len(self.axes[a]) > 1) or "1 chip"
        return (f"{self.size:,} configurations ({axes}) × {len(self.workloads)} workloads "
                f"= {self.points:,} results, {self.evaluations:,} evaluations")


# ------------------------------------------------------------------------------------ values


def expand(field_name: str, value, where: str) -> list:
    """A field's values from a scalar, a list or a range table {min, max, step | factor}."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in RANGE_KEYS]
        if unknown:
            raise SpecError(f"{where}: {field_name}: unknown range key {unknown[0]!r}; a range is "
                            f"{{ min = A, max = B, step = S }} or {{ min = A, max = B, factor = F }}")
        if "min" not in value or "max" not in value or ("step" in value) == ("factor" in value):
            raise SpecError(f"{where}: {field_name}: a range needs min, max and one of step or factor, "
                            f"e.g. {{ min = 8, max = 64, factor = 2 }}")
        return _range(field_name, value, where)
    values = value if isinstance(value, list) else [value]
    if not values:
        raise SpecError(f"{where}: {field_name}: an empty list; give at least one value")
    return values


def _range(field_name: str, spec: dict, where: str) -> list:
    low, high = spec["min"], spec["max"]
    for key in ("min", "max", "step", "factor"):
        v = spec.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise SpecError(f"{where}: {field_name}: range {key} must be a number, got {v!r}")
    if high < low:
        raise SpecError(f"{where}: {field_name}: range max {high} is below min {low}")
    step, factor = spec.get("step"), spec.get("factor")
    if step is not None and step <= 0:
        raise SpecError(f"{where}: {field_name}: range step must be > 0, got {step}")
    if factor is not None and (factor <= 1 or low <= 0):
        raise SpecError(f"{where}: {field_name}: a range with a factor needs factor > 1 and min > 0, "
                        f"got factor {factor} and min {low}")
    whole = all(isinstance(spec.get(k), int) for k in ("min", "max", "step", "factor") if k in spec)
    values, v, i = [], low, 0
    while v <= high * (1 + 1e-12) and len(values) <= MAX_AXIS:
        values.append(v)
        i += 1
        v = low + i * step if step is not None else low * factor ** i
        if whole:
            v = int(round(v))
    if len(values) > MAX_AXIS:
        raise SpecError(f"{where}: {field_name}: the range has more than {MAX_AXIS:,} values")
    return values


def check_axis(axis: str, values: list, where: str) -> list:
    """Each value checked as ChipConfig checks it; the error names the field and what is allowed."""
    out = []
    for value in values:
        try:
            if axis == "dataflow":
                if value not in DATAFLOWS:
                    raise ValueError(f"{value!r} is not a dataflow; allowed: {', '.join(DATAFLOWS)}")
            elif axis == "precision":
                if value not in PRECISIONS:
                    raise ValueError(f"{value!r} is not a precision; allowed: {', '.join(PRECISIONS)}")
            elif axis == "array":
                if not isinstance(value, (str, tuple)):
                    raise ValueError(f"an array size is a string ROWSxCOLS, e.g. \"8x8\", got {value!r}")
                value = parse_array(value) if isinstance(value, str) else value
            elif axis in ("rows", "cols"):
                ChipConfig(**{axis: value})
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{axis} must be a number, got {value!r}")
                ChipConfig(**{axis: value})
                value = float(value)
        except ValueError as exc:
            message = str(exc)
            named = message.startswith((axis + " ", "array "))
            raise SpecError(f"{where}: {message if named else f'{axis}: {message}'}") from None
        out.append(value)
    if len(set(out)) != len(out):
        repeated = next(v for v in out if out.count(v) > 1)
        raise SpecError(f"{where}: {axis}: the value {repeated!r} is listed twice")
    return out


def make_axes(chip: dict, where) -> dict[str, list]:
    """The CONFIG_AXES from a [chip] table's fields (`where(field)` says where each was written)."""
    for key in chip:
        if key not in CHIP_FIELDS:
            raise SpecError(f"{where(key)}: unknown field {key!r} in [chip]; allowed: {', '.join(CHIP_FIELDS)}")
    if "array" in chip and ("rows" in chip or "cols" in chip):
        other = "rows" if "rows" in chip else "cols"
        raise SpecError(f"{where(other)}: give either array or rows and cols, not both")
    axes: dict[str, list] = {}
    if "array" in chip:
        axes["array"] = check_axis("array", expand("array", chip["array"], where("array")), where("array"))
    else:
        rows = check_axis("rows", expand("rows", chip.get("rows", _DEFAULTS["rows"]), where("rows")), where("rows"))
        cols = check_axis("cols", expand("cols", chip.get("cols", _DEFAULTS["cols"]), where("cols")), where("cols"))
        axes["array"] = [(r, c) for r in rows for c in cols]
    for axis in CONFIG_AXES[1:]:
        values = expand(axis, chip.get(axis, _DEFAULTS[axis]), where(axis))
        axes[axis] = check_axis(axis, values, where(axis))
    return axes


def make_workload(table: dict, number: int, where, base_dir: str = ".") -> wl.Workload:
    """A [[workload]] table: exactly one of gemms, topology or layers (with training settings)."""
    for key in table:
        if key not in WORKLOAD_FIELDS:
            raise SpecError(f"{where(key)}: unknown field {key!r} in [[workload]] {number}; allowed: "
                            f"{', '.join(WORKLOAD_FIELDS)}")
    kinds = [k for k in ("gemms", "topology", "layers") if k in table]
    if len(kinds) != 1:
        at = where(kinds[1]) if len(kinds) > 1 else where(None)
        raise SpecError(f"{at}: [[workload]] {number} needs exactly one of gemms (a list of [M, K, N]), topology "
                        f"(a SCALE-Sim CSV file) or layers (a network, as chipviz train --layers), got "
                        f"{', '.join(kinds) or 'none'}")
    kind = kinds[0]
    name = table.get("name", f"{kind}{number}")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{where('name')}: name must be a non-empty string, got {name!r}")
    train = [k for k in TRAIN_FIELDS if k in table]
    if train and kind != "layers":
        raise SpecError(f"{where(train[0])}: {train[0]} is a training setting: it goes with layers, not {kind}")
    try:
        if kind == "gemms":
            shapes = table["gemms"]
            if not isinstance(shapes, list):
                raise ValueError(f"gemms must be a list of [M, K, N] (or \"MxKxN\"), got {shapes!r}")
            return wl.gemm_list(name, shapes)
        if kind == "topology":
            path = table["topology"]
            if not isinstance(path, str):
                raise ValueError(f"topology must be a file name, got {path!r}")
            full = path if os.path.isabs(path) else os.path.join(base_dir, path)
            try:
                return wl.topology(name, full)
            except OSError as exc:
                raise ValueError(f"topology: cannot open {full!r}: {exc.strerror or exc}") from None
        settings = {("n_samples" if k == "samples" else k): table[k] for k in train}
        if not isinstance(table["layers"], str):
            raise ValueError(f"layers must be a string such as \"64,32,10\", got {table['layers']!r}")
        return wl.training_step_of(name, table["layers"], **settings)
    except SpecError:
        raise
    except (ValueError, TypeError) as exc:
        key = kind if kind != "layers" or not train else None
        message = str(exc)
        for k in train:
            if message.startswith(("n_samples" if k == "samples" else k) + " "):
                key = k
        raise SpecError(f"{where(key or kind)}: {message}") from None


def make_spec(chip: dict, workloads: list[wl.Workload], energy: dict | None = None, chunk=None,
              source: str = "<command line>", where=None) -> SweepSpec:
    where = where or (lambda key: source)
    axes = make_axes(chip, where)
    try:
        table = EnergyTable(**(energy or {}))
    except TypeError as exc:
        raise SpecError(f"{where('energy')}: [energy]: {exc}; allowed: "
                        f"{', '.join(f.name for f in dataclasses.fields(EnergyTable))}") from None
    except ValueError as exc:
        raise SpecError(f"{where('energy')}: {exc}") from None
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise SpecError(f"{where('chunk')}: chunk must be a whole number >= 1 (configurations per task), "
                        f"got {chunk!r}")
    if not workloads:
        raise SpecError(f"{source}: no workload: add a [[workload]] table with gemms, topology or layers")
    names = [w.name for w in workloads]
    for name in names:
        if names.count(name) > 1:
            raise SpecError(f"{source}: two workloads are named {name!r}; give each its own name")
    spec = SweepSpec(axes, workloads, table, chunk, source)
    if spec.size > 2**53:
        raise SpecError(f"{source}: {spec.size:.3g} configurations is too many to number (at most 2^53)")
    return spec


# ------------------------------------------------------------------------------------ files


def read_spec(path) -> SweepSpec:
    """Read and check a sweep file (SpecError names the file and line; OSError if it cannot be read)."""
    name = os.fspath(path)
    with open(name, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{name}: not a UTF-8 text file (byte {exc.start})") from None
    return parse_spec(text, name)


def parse_spec(text: str, source: str = "<sweep>") -> SweepSpec:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = match.group(1) if match else str(max(1, len(text.rstrip().splitlines())))  # "at end of document"
        message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        raise SpecError(f"{source}:{line}: not valid TOML: {message}") from None
    lines = _locate(text)

    def at(table: str):
        def where(key):
            line = lines.get((table, key)) or lines.get((table, None)) or 1
            return f"{source}:{line}"
        return where

    for key in data:
        if key not in TABLES:
            raise SpecError(f"{at('')(key)}: unknown table or field {key!r}; allowed: "
                            f"{', '.join(f'[{t}]' if t != 'workload' else '[[workload]]' for t in TABLES)}")
    for key in ("chip", "sweep", "energy"):
        if key in data and not isinstance(data[key], dict):
            raise SpecError(f"{at('')(key)}: {key} must be a table, [{key}]")
    workloads_raw = data.get("workload", [])
    if not isinstance(workloads_raw, list):
        raise SpecError(f"{at('workload')(None)}: workloads are [[workload]] tables (note the double brackets)")
    sweep = data.get("sweep", {})
    for key in sweep:
        if key not in SWEEP_FIELDS:
            raise SpecError(f"{at('sweep')(key)}: unknown field {key!r} in [sweep]; allowed: "
                            f"{', '.join(SWEEP_FIELDS)}")
    base = os.path.dirname(os.path.abspath(source)) if os.path.exists(source) else "."
    workloads = [make_workload(table, i + 1, at(f"workload.{i}"), base) for i, table in enumerate(workloads_raw)]

    def where(key):
        if key == "chunk":
            return at("sweep")(key)
        if key == "energy":
            return at("energy")(None)
        return at("chip")(key)

    return make_spec(data.get("chip", {}), workloads, data.get("energy"), sweep.get("chunk"), source, where)


_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"]+)\s*\]\s*(#.*)?$")
_ARRAY_TABLE = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_.\-\"]+)\s*\]\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=")
_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'")


def _locate(text: str) -> dict:
    """(table, key) -> line of its first mention; (table, None) -> the table's header line.
    Tables: "" (top level), "chip", "sweep", "energy", "workload.<i>". Good enough for TOML as
    people write sweep files (one key per line, multi-line arrays allowed)."""
    lines: dict = {}
    table, depth, counts = "", 0, {}
    for number, line in enumerate(text.splitlines(), 1):
        bare = _STRING.sub('""', line).split("#", 1)[0]
        if depth == 0:
            if m := _ARRAY_TABLE.match(line):
                name = m.group(1).strip('"')
                counts[name] = counts.get(name, -1) + 1
                table = f"{name}.{counts[name]}"
                lines.setdefault((table, None), number)
                lines.setdefault(("", name), number)
                lines.setdefault((name, None), number)
                continue
            if m := _TABLE.match(line):
                table = m.group(1).strip('"')
                lines.setdefault((table, None), number)
                lines.setdefault(("", table), number)
                continue
            if m := _KEY.match(line):
                key = m.group(1).strip('"')
                lines.setdefault((table, key), number)
                if table == "":
                    lines.setdefault(("", key), number)
        depth = max(0, depth + bare.count("[") + bare.count("{") - bare.count("]") - bare.count("}"))
    return lines
