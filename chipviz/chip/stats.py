"""The numbers a GEMM run reports, derived from per-fold counters that both engines fill alike."""
from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property
from types import MappingProxyType

import numpy as np

from . import memory as mem
from .config import ChipConfig
from .mapping import Mapping


@dataclass(frozen=True)
class GemmStats:
    """Counters and figures for one GEMM C = A·B (A: M×K, B: K×N) on one chip.

    `cycles` is the true count (every fold fills and drains, plus stalls); `scalesim_cycles`
    is what SCALE-Sim v3 reports for the same run (it counts from 0, so one less), and
    `scalesim_sram_writes` adds its spurious R + C output writes per os fold.
    """

    engine: str
    dataflow: str
    precision: str
    m: int
    k: int
    n: int
    rows: int
    cols: int
    folds: int
    cycles_per_fold: int
    compute_cycles: int
    stall_cycles: int
    cycles: int
    scalesim_cycles: int
    macs: int
    utilization: float
    scalesim_utilization: float
    mapping_efficiency: float
    sram_reads_ifmap: int
    sram_reads_filter: int
    sram_reads: int
    sram_writes: int
    scalesim_sram_writes: int
    dram_reads: int
    dram_writes: int
    dram_bytes: int
    register_hops: int
    energy_pj: MappingProxyType[str, float]  # read-only, by component and 'total'
    seconds: float
    arithmetic_intensity: float
    attainable_macs_per_cycle: float
    achieved_macs_per_cycle: float

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["energy_pj"] = dict(self.energy_pj)
        return out

    @cached_property
    def costs(self) -> np.ndarray:
        """[cycles, macs, seconds, then energy (pJ) by COST_PARTS], for fast bookkeeping by callers."""
        return cost_vector(self.cycles, self.macs, self.seconds, self.energy_pj)

    @property
    def counters(self) -> dict:
        """The integer counters that the two engines must agree on exactly."""
        return {k: v for k, v in self.to_dict().items() if isinstance(v, int) and not isinstance(v, bool)}


ENERGY_PARTS = ("mac", "register", "sram", "dram", "vector")


def cost_vector(cycles: int, macs: int, seconds: float, energy_pj: dict) -> np.ndarray:
    return np.array([cycles, macs, seconds, *(energy_pj.get(part, 0.0) for part in ENERGY_PARTS)])


def summarize(per_fold: np.ndarray, mapping: Mapping, config: ChipConfig, engine: str) -> GemmStats:
    """Turn the per-fold counter table (see memory.py) into a report."""
    totals = per_fold.sum(axis=0, dtype=np.int64)
    spec = config.spec
    tiles = mapping.fold_tiles()
    mapped_pes = int(((tiles[:, 1] - tiles[:, 0]) * (tiles[:, 3] - tiles[:, 2])).sum())
    folds, per_fold_cycles = mapping.folds, mapping.cycles_per_fold
    compute = folds * per_fold_cycles
    stalls = int(totals[mem.STALLS])
    cycles = compute + stalls
    macs = int(totals[mem.MACS])
    flow = mapping.flow
    moving, other = int(totals[mem.MOVING_READS]), int(totals[mem.OTHER_READS])
    ifmap, filt = flow.operand_order(moving, other)  # (A's reads, B's reads): the order is its own inverse
    writes = int(totals[mem.SRAM_WRITES])
    spurious = folds * (config.rows + config.cols) if flow.output_stationary else 0
    dram_reads = int(totals[mem.DRAM_OPERAND_READS] + totals[mem.DRAM_PSUM_READS])
    dram_writes = int(totals[mem.DRAM_WRITES])
    dram_bytes = int(totals[mem.DRAM_OPERAND_READS]) * spec.operand_bytes + (
        int(totals[mem.DRAM_PSUM_READS]) + dram_writes) * spec.accumulator_bytes
    operand_hops, psum_hops = int(totals[mem.OPERAND_HOPS]), int(totals[mem.PSUM_HOPS])
    e = config.energy
    energy = {
        "mac": macs * e.mac_pj(config.precision),
        "register": (operand_hops * spec.operand_bytes + psum_hops * spec.accumulator_bytes) * e.register_pj_per_byte,
        "sram": ((ifmap + filt) * spec.operand_bytes + writes * spec.accumulator_bytes) * e.sram_pj_per_byte,
        "dram": dram_bytes * e.dram_pj_per_byte,
    }
    energy["total"] = sum(energy.values())
    pes = config.pes
    intensity = macs / dram_bytes if dram_bytes else float("inf")
    return GemmStats(
        engine=engine, dataflow=mapping.dataflow, precision=config.precision,
        m=mapping.m, k=mapping.k, n=mapping.n, rows=config.rows, cols=config.cols,
        folds=folds, cycles_per_fold=per_fold_cycles, compute_cycles=compute, stall_cycles=stalls,
        cycles=cycles, scalesim_cycles=cycles - 1, macs=macs,
        utilization=macs / (cycles * pes), scalesim_utilization=macs / ((cycles - 1) * pes) if cycles > 1 else 1.0,
        mapping_efficiency=mapped_pes / (pes * folds),
        sram_reads_ifmap=ifmap, sram_reads_filter=filt, sram_reads=ifmap + filt,
        sram_writes=writes, scalesim_sram_writes=writes + spurious,
        dram_reads=dram_reads, dram_writes=dram_writes, dram_bytes=dram_bytes,
        register_hops=operand_hops + psum_hops, energy_pj=MappingProxyType(energy),  # read-only: results are cached
        seconds=cycles / (config.clock_mhz * 1e6),
        arithmetic_intensity=intensity,
        attainable_macs_per_cycle=min(float(pes), intensity * config.dram_bytes_per_cycle),
        achieved_macs_per_cycle=macs / cycles,
    )
