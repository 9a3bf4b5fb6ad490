"""A workload's cost on many chips at once: per item, then totals per (configuration, workload).

Plain GEMMs go through the vectorised model (vectorized.py); a GEMM whose A is a
convolution's unrolled input (`Gemm.a_layout`) through chipviz.chip.analyze itself, point by
point (its DRAM rule follows the input pixels fold by fold); vector-unit work through the
closed form of chipviz.chip.vector.vector_op, vectorised. Totals add the items up in the
workload's order, as a loop over analyze() results would (`reference` is that loop).
"""
from __future__ import annotations

import numpy as np

from ..chip import analyze
from ..chip.config import PRECISIONS, ChipConfig
from ..chip.mapping import Mapping
from ..chip.vector import vector_op
from . import vectorized as vz
from .vectorized import Configs
from .workload import FP32, Gemm, VectorWork, Workload

ENERGY_PARTS = ("mac", "register", "sram", "dram", "vector")
# Per item and in totals: integers, then floats (energy in pJ by component and in all).
SUM_INTS = ("cycles", "compute_cycles", "stall_cycles", "macs", "folds", "mapped_pes", "sram_reads", "sram_writes",
            "dram_reads", "dram_writes", "dram_bytes", "register_hops")
SUM_FLOATS = ("seconds", *(f"energy_{p}_pj" for p in ENERGY_PARTS), "energy_total_pj")
# Derived per (configuration, workload).
DERIVED = ("pes", "utilization", "mapping_efficiency", "macs_per_joule")
_FP32 = PRECISIONS.index("fp32")


def evaluate_items(configs: Configs, workload: Workload, cache: dict | None = None) -> dict[str, np.ndarray]:
    """Every item of `workload` on every configuration: columns SUM_INTS + SUM_FLOATS as
    (configurations × items) arrays, and `countable` (False where analyze() refuses the GEMM)."""
    size, items = len(configs), workload.items
    out = {name: np.zeros((size, len(items)), np.int64) for name in SUM_INTS}
    out.update({name: np.zeros((size, len(items))) for name in SUM_FLOATS})
    out["countable"] = np.ones((size, len(items)), bool)
    plain = [i for i, item in enumerate(items) if isinstance(item, Gemm) and item.a_layout is None]
    if plain and size:
        _plain_gemms(configs, [items[i] for i in plain], plain, out)
    for i, item in enumerate(items):
        if isinstance(item, VectorWork):
            _vector(configs, item, i, out)
        elif item.a_layout is not None:
            _official(configs, item, i, out, {} if cache is None else cache)
    return out


_ITEM_COLUMNS = ("cycles", "compute_cycles", "stall_cycles", "macs", "folds", "mapped_pes", "sram_reads",
                 "sram_writes", "dram_reads", "dram_writes", "dram_bytes", "register_hops", "seconds", "energy_mac_pj",
                 "energy_register_pj", "energy_sram_pj", "energy_dram_pj", "energy_total_pj", "countable")


def _plain_gemms(configs: Configs, gemms: list[Gemm], where: list[int], out: dict) -> None:
    """The vectorised model on (configuration × GEMM) pairs, a cache-sized block of configurations at a time."""
    size, count = len(configs), len(gemms)
    shapes = {d: np.array([getattr(g, d) for g in gemms], np.int64) for d in "mkn"}
    fp32 = np.array([g.precision == FP32 for g in gemms])
    step = max(1, vz.BLOCK // count)
    contiguous = where == list(range(where[0], where[0] + count))
    for start in range(0, size, step):
        rows = slice(start, min(size, start + step))
        block = configs.take(rows)
        n_block = len(block)
        pairs = block.take(np.repeat(np.arange(n_block), count))
        precision = np.where(np.tile(fp32, n_block), _FP32, pairs.precision)
        r = vz.evaluate(pairs, *(np.tile(shapes[d], n_block) for d in "mkn"), precision)
        for name in _ITEM_COLUMNS:
            values = r[name].reshape(n_block, count)
            if contiguous:
                out[name][rows, where[0]:where[0] + count] = values
            else:
                out[name][rows, where] = values


def _vector(configs: Configs, item: VectorWork, i: int, out: dict) -> None:
    """chipviz.chip.vector.vector_op(elements, ops_per_element, the chip in fp32), vectorised."""
    spec = ChipConfig().with_(precision="fp32").spec  # the vector unit works on fp32 values (on_chip.ChipRunner)
    e = configs.energy
    ops = item.elements * item.ops_per_element
    cycles = -(-ops // configs.cols)
    moved = 2 * item.elements * spec.accumulator_bytes if ops else 0
    vector, sram = ops * e.vector_op_pj("fp32"), moved * e.sram_pj_per_byte
    out["cycles"][:, i] = cycles
    out["compute_cycles"][:, i] = cycles
    out["seconds"][:, i] = cycles / (configs.clock_mhz * 1e6)
    out["energy_vector_pj"][:, i] = vector
    out["energy_sram_pj"][:, i] = sram
    out["energy_total_pj"][:, i] = vector + sram


def _official(configs: Configs, item: Gemm, i: int, out: dict, cache: dict) -> None:
    """analyze() itself, point by point (memoised by the configuration it runs on)."""
    for c in range(len(configs)):
        precision = _FP32 if item.precision == FP32 else int(configs.precision[c])
        key = (id(item), configs.key(c)[:3], PRECISIONS[precision], configs.key(c)[4:])
        row = cache.get(key)
        if row is None:
            row = cache[key] = gemm_row(item, configs.config(c, precision))
        for name, value in row.items():
            out[name][c, i] = value


def gemm_row(item: Gemm, config: ChipConfig) -> dict:
    """One GEMM's item columns from analyze() (countable False where it refuses the GEMM)."""
    from ..chip import CountTooLarge

    try:
        s = analyze(item.m, item.k, item.n, config, item.a_layout)
    except CountTooLarge:
        return {"countable": False}
    sr, sc, _ = Mapping.of(item.m, item.k, item.n, config).spread
    row = {name: getattr(s, name) for name in ("cycles", "compute_cycles", "stall_cycles", "macs", "folds",
                                               "sram_reads", "sram_writes", "dram_reads", "dram_writes",
                                               "dram_bytes", "register_hops", "seconds")}
    row["mapped_pes"] = sr * sc
    for part in ENERGY_PARTS:
        row[f"energy_{part}_pj"] = s.energy_pj.get(part, 0.0)
    row["energy_total_pj"] = s.energy_pj["total"]
    row["countable"] = True
    return row


def totals(items: dict[str, np.ndarray], pes: np.ndarray) -> dict[str, np.ndarray]:
    """Per configuration: the items added up in order (left to right, as a Python loop adds), and
    utilisation, mapping efficiency (mapped PE-folds over all PE-folds of the GEMMs) and MACs per joule."""
    out = {}
    for name in (*SUM_INTS, *SUM_FLOATS):
        columns = items[name]
        acc = np.zeros(columns.shape[0], columns.dtype)
        for j in range(columns.shape[1]):
            acc += columns[:, j]
        out[name] = acc
    out["countable"] = items["countable"].all(axis=1)
    out["pes"] = pes
    with np.errstate(divide="ignore", invalid="ignore"):
        out["utilization"] = np.where(out["cycles"] > 0, out["macs"] / (out["cycles"] * pes), 0.0)
        out["mapping_efficiency"] = np.where(out["folds"] > 0, out["mapped_pes"] / (out["folds"] * pes), 0.0)
        out["macs_per_joule"] = np.where(out["energy_total_pj"] > 0,
                                         out["macs"] / (out["energy_total_pj"] * 1e-12), 0.0)
    return out


def evaluate_workload(configs: Configs, workload: Workload, cache: dict | None = None) -> dict[str, np.ndarray]:
    """Totals of `workload` on every configuration (see totals)."""
    return totals(evaluate_items(configs, workload, cache), configs.rows * configs.cols)


def reference(config: ChipConfig, workload: Workload) -> dict:
    """The same totals for one chip, from analyze() and vector_op() in a plain loop (for tests)."""
    fp32 = config.with_(precision="fp32")
    acc = {name: 0 for name in SUM_INTS} | {name: 0.0 for name in SUM_FLOATS}
    countable = True
    for item in workload.items:
        if isinstance(item, VectorWork):
            s = vector_op(item.elements, item.ops_per_element, fp32)
            row = {"cycles": s.cycles, "compute_cycles": s.cycles, "seconds": s.seconds,
                   "energy_vector_pj": s.energy_pj["vector"], "energy_sram_pj": s.energy_pj["sram"],
                   "energy_total_pj": s.energy_pj["total"]}
        else:
            row = gemm_row(item, fp32 if item.precision == FP32 else config)
            countable &= row.pop("countable")
        for name in acc:
            acc[name] += row.get(name, 0)
    pes = config.pes
    acc["countable"] = countable
    acc["pes"] = pes
    acc["utilization"] = acc["macs"] / (acc["cycles"] * pes) if acc["cycles"] else 0.0
    acc["mapping_efficiency"] = acc["mapped_pes"] / (acc["folds"] * pes) if acc["folds"] else 0.0
    acc["macs_per_joule"] = acc["macs"] / (acc["energy_total_pj"] * 1e-12) if acc["energy_total_pj"] else 0.0
    return acc
