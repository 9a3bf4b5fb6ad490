"""The analytic model over many (configuration, GEMM) pairs at once, with numpy arrays.

`analyze(m, k, n, config)` builds a table with one row per fold and sums it. Its folds come in
at most nine kinds: a row fold is the first, a middle or the last one (the last is the partial
edge fold; with one row fold it is also the first), and likewise a column fold. Every counter
of a fold, its DRAM traffic (chipviz/chip/memory.py: first-use and final flags) and so its
stall, max(0, ⌈traffic / bandwidth⌉ − cycles per fold), depend only on its kind. So each kind
is priced once and multiplied by how many folds it has: exact integer sums, the same
float64 operations afterwards, hence the same numbers as analyze() for every point (the
tests hold them equal with hypothesis).

Everything the dataflows do differently is read from the dataflow table
(chipviz/chip/dataflow_table.py): which dimension lies on the rows, the columns, in time;
whether an operand is preloaded; whether the rows carry the reduction; which operand enters
from the left.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from ..chip.analytic import COUNT_LIMIT, counter_bound
from ..chip.config import DATAFLOWS, PRECISION_SPECS, PRECISIONS, ChipConfig, EnergyTable
from ..chip.dataflow_table import DATAFLOW_TABLE, DIMENSIONS
from ..chip.mapping import Mapping

# The ChipConfig fields a sweep varies, in the order configurations are enumerated.
CONFIG_FIELDS = ("rows", "cols", "dataflow", "precision", "clock_mhz", "ifmap_sram_kib", "filter_sram_kib",
                 "ofmap_sram_kib", "dram_bytes_per_cycle")
FP32 = PRECISIONS.index("fp32")

# The dataflow table as arrays indexed by a dataflow's code (its position in DATAFLOWS).
_FLOWS = [DATAFLOW_TABLE[d] for d in DATAFLOWS]
_ROW_DIM = np.array([DIMENSIONS.index(f.rows) for f in _FLOWS])
_COL_DIM = np.array([DIMENSIONS.index(f.cols) for f in _FLOWS])
_TIME_DIM = np.array([DIMENSIONS.index(f.streamed) for f in _FLOWS])
_OUTPUT_STATIONARY = np.array([f.output_stationary for f in _FLOWS])
_PRELOADS = np.array([f.preloads for f in _FLOWS])
_REDUCTION_ON_ROWS = np.array([f.reduction_on_rows for f in _FLOWS])
_MOVING_IS_A = np.array([f.moving == "A" for f in _FLOWS])
# Per precision code: operand and accumulator bytes.
_OPERAND_BYTES = np.array([PRECISION_SPECS[p].operand_bytes for p in PRECISIONS], np.int64)
_ACC_BYTES = np.array([PRECISION_SPECS[p].accumulator_bytes for p in PRECISIONS], np.int64)

# What evaluate() returns per pair: GemmStats' numeric fields, energy by component, and `countable`.
INT_FIELDS = ("m", "k", "n", "rows", "cols", "folds", "cycles_per_fold", "compute_cycles", "stall_cycles", "cycles",
              "scalesim_cycles", "macs", "sram_reads_ifmap", "sram_reads_filter", "sram_reads", "sram_writes",
              "scalesim_sram_writes", "dram_reads", "dram_writes", "dram_bytes", "register_hops", "mapped_pes")
FLOAT_FIELDS = ("utilization", "scalesim_utilization", "mapping_efficiency", "seconds", "arithmetic_intensity",
                "attainable_macs_per_cycle", "achieved_macs_per_cycle", "energy_mac_pj", "energy_register_pj",
                "energy_sram_pj", "energy_dram_pj", "energy_total_pj")
ENERGY_FIELDS = {"mac": "energy_mac_pj", "register": "energy_register_pj", "sram": "energy_sram_pj",
                 "dram": "energy_dram_pj", "total": "energy_total_pj"}
_EXACT = 2 ** 52  # below this a float64 estimate of a count cannot hide one past 2^53


@dataclass
class Configs:
    """Chip configurations as columns: one entry per configuration (codes index DATAFLOWS and
    PRECISIONS). The energy table is shared by all of them."""

    rows: np.ndarray
    cols: np.ndarray
    dataflow: np.ndarray
    precision: np.ndarray
    clock_mhz: np.ndarray
    ifmap_sram_kib: np.ndarray
    filter_sram_kib: np.ndarray
    ofmap_sram_kib: np.ndarray
    dram_bytes_per_cycle: np.ndarray
    energy: EnergyTable = field(default_factory=EnergyTable)

    def __post_init__(self):
        for name in CONFIG_FIELDS:
            dtype = np.float64 if name in ("clock_mhz",) or name.endswith(("_kib", "_cycle")) else np.int64
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=dtype).reshape(-1))
        lengths = {len(getattr(self, name)) for name in CONFIG_FIELDS}
        if len(lengths) != 1:
            raise ValueError(f"every configuration column must have the same length, got {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def of(cls, configs: list[ChipConfig]) -> "Configs":
        """Columns from ChipConfig objects (which must share one energy table)."""
        energies = {c.energy for c in configs}
        if len(energies) > 1:
            raise ValueError("the configurations must share one energy table")
        columns = {name: [getattr(c, name) for c in configs] for name in CONFIG_FIELDS}
        columns["dataflow"] = [DATAFLOWS.index(d) for d in columns["dataflow"]]
        columns["precision"] = [PRECISIONS.index(p) for p in columns["precision"]]
        return cls(**columns, energy=energies.pop() if energies else EnergyTable())

    def take(self, index) -> "Configs":
        return Configs(**{name: getattr(self, name)[index] for name in CONFIG_FIELDS}, energy=self.energy)

    def config(self, i: int, precision: int | None = None) -> ChipConfig:
        """The i-th configuration as a ChipConfig (optionally in another precision)."""
        values = {name: getattr(self, name)[i].item() for name in CONFIG_FIELDS}
        values["dataflow"] = DATAFLOWS[values["dataflow"]]
        values["precision"] = PRECISIONS[values["precision"] if precision is None else precision]
        return ChipConfig(**values, energy=self.energy)

    def key(self, i: int) -> tuple:
        return tuple(getattr(self, name)[i].item() for name in CONFIG_FIELDS)


BLOCK = 4096  # pairs evaluated together: their nine-fold-kind temporaries stay small (cache; and Dask workers,
# whose MALLOC_TRIM_THRESHOLD_ makes glibc map and unmap every large temporary: 4x slower at 16384)


def evaluate(configs: Configs, m, k, n, precision=None) -> dict[str, np.ndarray]:
    """analyze(m[i], k[i], n[i], configs.config(i)) for every i, as columns (INT_FIELDS, FLOAT_FIELDS
    and `countable`: False where analyze() would raise CountTooLarge; that row's numbers are then
    meaningless). `precision` (codes) overrides the configurations' number format per pair.

    All arrays have one entry per pair; broadcast (np.repeat/np.tile) to evaluate a product."""
    size = len(configs)
    m, k, n = (np.broadcast_to(np.asarray(x, np.int64), (size,)) for x in (m, k, n))
    prec = configs.precision if precision is None else np.broadcast_to(np.asarray(precision, np.int64), (size,))
    if size <= BLOCK:
        return _evaluate(configs, m, k, n, prec)
    out = None
    for start in range(0, size, BLOCK):
        part = slice(start, start + BLOCK)
        block = _evaluate(configs.take(part), m[part], k[part], n[part], prec[part])
        if out is None:
            out = {name: np.empty(size, column.dtype) for name, column in block.items()}
        for name, column in block.items():
            out[name][part] = column
    return out


def _evaluate(configs: Configs, m, k, n, prec) -> dict[str, np.ndarray]:
    R, C = configs.rows, configs.cols
    size = len(R)
    flow = configs.dataflow
    dims = np.stack([m, k, n])
    cols_idx = np.arange(size)
    Sr = dims[_ROW_DIM[flow], cols_idx]
    Sc = dims[_COL_DIM[flow], cols_idx]
    T = dims[_TIME_DIM[flow], cols_idx]
    os_ = _OUTPUT_STATIONARY[flow]
    reduction = _REDUCTION_ON_ROWS[flow]
    moving_is_a = _MOVING_IS_A[flow]
    ob = _OPERAND_BYTES[prec]
    ab = _ACC_BYTES[prec]
    bw = configs.dram_bytes_per_cycle

    rf = -(-Sr // R)
    cf = -(-Sc // C)
    folds = rf * cf
    cpf = T + R + C - 2 + np.where(_PRELOADS[flow], R, 0)
    ur_last = Sr - (rf - 1) * R
    uc_last = Sc - (cf - 1) * C

    # Which operands fit their SRAM buffers (memory.operand_fits), in the engines' roles.
    a_fits = m * k * ob <= configs.ifmap_sram_kib * 1024
    b_fits = k * n * ob <= configs.filter_sram_kib * 1024
    c_fits = m * n * ab <= configs.ofmap_sram_kib * 1024
    moving_fits = np.where(moving_is_a, a_fits, b_fits)
    other_fits = np.where(moving_is_a, b_fits, a_fits)

    # The nine kinds of fold: row kind (first, middle, last) × column kind (first, middle, last).
    one, zero = np.ones(size, np.int64), np.zeros(size, np.int64)
    row_count = np.stack([(rf > 1).astype(np.int64), np.maximum(rf - 2, 0), one])[:, None]
    col_count = np.stack([(cf > 1).astype(np.int64), np.maximum(cf - 2, 0), one])[None]
    ur = np.stack([R, R, ur_last])[:, None]
    uc = np.stack([C, C, uc_last])[None]
    row_first = np.stack([one.astype(bool), zero.astype(bool), rf == 1])[:, None]
    row_last = np.stack([zero.astype(bool), zero.astype(bool), one.astype(bool)])[:, None]
    col_first = np.stack([one.astype(bool), zero.astype(bool), cf == 1])[None]
    # mapping.fold_flags: [moving first use, other first use, outputs final, psum first]
    moving_first = col_first
    other_first = np.where(reduction, True, row_first)
    final = np.where(reduction, row_last, True)
    psum_first = np.where(reduction, row_first, True)
    # the per-fold counters the DRAM rule reads (analytic.fold_counters)
    moving_reads = T * ur
    other_reads = np.where(os_, uc * T, ur * uc)
    sram_writes = np.where(os_, ur * uc, T * uc)
    # memory.all_folds_dram
    reads = np.where(moving_first | ~moving_fits, moving_reads, 0) + np.where(other_first | ~other_fits,
                                                                              other_reads, 0)
    writes = np.where(final | ~c_fits, sram_writes, 0)
    psum_reads = np.where(~psum_first & ~c_fits, sram_writes, 0)
    traffic = reads * ob + (psum_reads + writes) * ab
    needed = np.ceil(traffic / bw).astype(np.int64)
    stall = np.maximum(0, needed - cpf)
    weight = row_count * col_count
    stalls = (weight * stall).sum(axis=(0, 1))
    op_reads = (weight * reads).sum(axis=(0, 1))
    psum_total = (weight * psum_reads).sum(axis=(0, 1))
    dram_writes = (weight * writes).sum(axis=(0, 1))

    # Totals of the other counters in closed form (sums over the fold tiles).
    macs = T * Sr * Sc
    moving_total = T * cf * Sr
    other_total = np.where(os_, T * rf * Sc, Sr * Sc)
    writes_total = np.where(os_, Sr * Sc, T * rf * Sc)
    triangle = (rf - 1) * (R * (R + 1) // 2) + ur_last * (ur_last + 1) // 2  # Σ over row folds of r(r+1)/2
    operand_hops = np.where(os_, T * (C * cf * Sr + R * rf * Sc), Sc * triangle + T * C * cf * Sr)
    psum_hops = np.where(os_, 0, T * R * rf * Sc)

    # stats.summarize
    compute = folds * cpf
    cycles = compute + stalls
    ifmap = np.where(moving_is_a, moving_total, other_total)
    filt = np.where(moving_is_a, other_total, moving_total)
    spurious = np.where(os_, folds * (R + C), 0)
    dram_bytes = op_reads * ob + (psum_total + dram_writes) * ab
    e = configs.energy
    mac_pj = np.array([e.mac_pj(p) for p in PRECISIONS])[prec]
    energy_mac = macs * mac_pj
    energy_register = (operand_hops * ob + psum_hops * ab) * e.register_pj_per_byte
    energy_sram = ((ifmap + filt) * ob + writes_total * ab) * e.sram_pj_per_byte
    energy_dram = dram_bytes * e.dram_pj_per_byte
    energy_total = energy_mac + energy_register + energy_sram + energy_dram
    pes = R * C
    mapped = Sr * Sc
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        utilization = macs / (cycles * pes)
        scalesim_utilization = np.where(cycles > 1, macs / ((cycles - 1) * pes), 1.0)
        mapping_efficiency = mapped / (pes * folds)
        intensity = np.where(dram_bytes > 0, macs / dram_bytes, np.inf)
        achieved = macs / cycles
    out = {
        "m": m, "k": k, "n": n, "rows": R, "cols": C, "folds": folds, "cycles_per_fold": cpf,
        "compute_cycles": compute, "stall_cycles": stalls, "cycles": cycles, "scalesim_cycles": cycles - 1,
        "macs": macs, "sram_reads_ifmap": ifmap, "sram_reads_filter": filt, "sram_reads": ifmap + filt,
        "sram_writes": writes_total, "scalesim_sram_writes": writes_total + spurious,
        "dram_reads": op_reads + psum_total, "dram_writes": dram_writes, "dram_bytes": dram_bytes,
        "register_hops": operand_hops + psum_hops, "mapped_pes": mapped,
        "utilization": utilization, "scalesim_utilization": scalesim_utilization,
        "mapping_efficiency": mapping_efficiency, "seconds": cycles / (configs.clock_mhz * 1e6),
        "arithmetic_intensity": intensity,
        "attainable_macs_per_cycle": np.minimum(pes.astype(np.float64), intensity * bw),
        "achieved_macs_per_cycle": achieved,
        "energy_mac_pj": energy_mac, "energy_register_pj": energy_register, "energy_sram_pj": energy_sram,
        "energy_dram_pj": energy_dram, "energy_total_pj": energy_total,
    }
    out["countable"] = _countable(configs, m, k, n, Sr, Sc, T, folds, cpf, ob, ab, prec)
    _exact_ratios(out, configs, prec, pes)
    return out


def _countable(configs, m, k, n, Sr, Sc, T, folds, cpf, ob, ab, prec) -> np.ndarray:
    """analytic.counter_bound(...) <= COUNT_LIMIT per pair: estimated in float64, and computed
    exactly (by analytic.counter_bound itself) only where the estimate comes near the limit."""
    R, C = configs.rows.astype(np.float64), configs.cols.astype(np.float64)
    r, c, t = np.minimum(R, Sr), np.minimum(C, Sc), T.astype(np.float64)
    reads = r * t + c * t + r * c
    writes = r * c + t * c
    hops = t * (r * C + c * R) + r * c * (r + 1) / 2
    traffic = reads * ob + 2 * writes * ab
    bound = folds * np.maximum.reduce([r * c * t, reads, writes + R + C, hops, traffic,
                                       cpf + np.ceil(traffic / configs.dram_bytes_per_cycle) + 1])
    ok = bound < _EXACT
    for i in np.flatnonzero(~ok):
        config = configs.config(int(i), int(prec[i]))
        ok[i] = counter_bound(Mapping.of(int(m[i]), int(k[i]), int(n[i]), config), config) <= COUNT_LIMIT
    return ok


def _exact_ratios(out: dict, configs: Configs, prec, pes) -> None:
    """Where a ratio's integer denominator passes 2^52 (cycles × PEs of a huge run), float64
    could round it: those few ratios are computed from Python integers, as summarize() does."""
    big = (out["cycles"].astype(np.float64) * pes >= _EXACT) | (out["folds"].astype(np.float64) * pes >= _EXACT)
    for i in np.flatnonzero(big & out["countable"]):
        macs, cycles, p = int(out["macs"][i]), int(out["cycles"][i]), int(pes[i])
        out["utilization"][i] = macs / (cycles * p)
        out["scalesim_utilization"][i] = macs / ((cycles - 1) * p) if cycles > 1 else 1.0
        out["mapping_efficiency"][i] = int(out["mapped_pes"][i]) / (p * int(out["folds"][i]))


def stats_dict(stats) -> dict:
    """A GemmStats as evaluate()'s columns (for comparisons)."""
    d = {f.name: getattr(stats, f.name) for f in fields(stats)}
    for part, column in ENERGY_FIELDS.items():
        d[column] = stats.energy_pj[part]
    sr, sc, _ = Mapping.of(stats.m, stats.k, stats.n, ChipConfig(rows=stats.rows, cols=stats.cols,
                                                                 dataflow=stats.dataflow)).spread
    d["mapped_pes"] = sr * sc
    return {name: d[name] for name in (*INT_FIELDS, *FLOAT_FIELDS)}
