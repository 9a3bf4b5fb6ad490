"""Pareto-optimal designs: those no other design beats on both of two costs (both minimised).

`front(x, y)` marks them; `pareto_file` reads a sweep's Parquet file in batches (memory stays
bounded: only each batch and the fronts so far are held) and keeps, per workload, the
designs on the front of energy against cycles and of energy against PE count. Designs with
equal costs (an SRAM size or a clock these costs do not depend on) are shown once, the one
with the least resources, with how many designs it stands for.
"""
from __future__ import annotations

import numpy as np

OBJECTIVES = {"energy_vs_cycles": ("energy_total_pj", "cycles"), "energy_vs_pes": ("energy_total_pj", "pes")}
SHOWN = ("config", "rows", "cols", "dataflow", "precision", "clock_mhz", "ifmap_sram_kib", "filter_sram_kib",
         "ofmap_sram_kib", "dram_bytes_per_cycle", "pes", "cycles", "stall_cycles", "seconds", "utilization",
         "energy_total_pj", "macs_per_joule")


def front(x, y) -> np.ndarray:
    """Which points (x[i], y[i]) no other point dominates (<= on both and < on one). Points with
    equal costs are all kept (e.g. designs that differ only in their clock, for these costs)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) == 0:
        return np.zeros(0, bool)
    order = np.lexsort((y, x))
    xs, ys = x[order], y[order]
    best_before = np.concatenate([[np.inf], np.minimum.accumulate(ys)[:-1]])
    keep = ys < best_before
    same = np.concatenate([[False], (xs[1:] == xs[:-1]) & (ys[1:] == ys[:-1])])
    for i in np.flatnonzero(same):  # a tie with a kept point is kept too (runs are short)
        keep[i] = keep[i - 1]
    out = np.zeros(len(x), bool)
    out[order] = keep
    return out


def pareto_table(table: dict[str, np.ndarray], objectives=OBJECTIVES) -> dict[str, np.ndarray]:
    """{objective name: the row indices on its front, sorted by the first cost}."""
    ok = np.asarray(table["countable"], bool)
    out = {}
    for name, (a, b) in objectives.items():
        rows = np.flatnonzero(ok)
        mask = front(table[a][rows], table[b][rows])
        rows = rows[mask]
        out[name] = rows[np.lexsort((table[b][rows], table[a][rows]))]
    return out


def pareto_file(path: str, batch_rows: int = 262_144) -> dict[str, dict[str, list[dict]]]:
    """{workload: {objective: [design, ...]}} from a sweep's Parquet file, read in batches."""
    import pyarrow.parquet as pq

    columns = list(dict.fromkeys(("workload", "countable", *SHOWN)))
    kept: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    source = pq.ParquetFile(path)
    missing = [c for c in columns if c not in source.schema_arrow.names]
    if missing:
        raise ValueError(f"{path}: not a ChipViz sweep result (no column {missing[0]!r})")
    for batch in source.iter_batches(batch_size=batch_rows, columns=columns):
        data = {name: _numpy(batch.column(name)) for name in columns}
        data["ties"] = np.ones(len(data["config"]), np.int64)
        for workload in np.unique(data["workload"]):
            rows = data["workload"] == workload
            part = {name: values[rows] for name, values in data.items()}
            for objective, (a, b) in OBJECTIVES.items():
                old = kept.setdefault(str(workload), {}).get(objective)
                merged = part if old is None else {n: np.concatenate([old[n], part[n]]) for n in part}
                ok = merged["countable"].astype(bool)
                merged = {n: v[ok] for n, v in merged.items()}
                mask = front(merged[a], merged[b])
                kept[str(workload)][objective] = _one_per_tie({n: v[mask] for n, v in merged.items()}, a, b)
    return {w: {o: [_row(t, i) for i in range(len(t["config"]))] for o, t in fronts.items()}
            for w, fronts in kept.items()}


def _one_per_tie(t: dict, a: str, b: str) -> dict:
    """Designs with equal costs shown once: the one with the least SRAM, then bandwidth, then clock
    (then the lowest number); `ties` counts the designs it stands for."""
    sram = t["ifmap_sram_kib"] + t["filter_sram_kib"] + t["ofmap_sram_kib"]
    order = np.lexsort((t["config"], t["clock_mhz"], t["dram_bytes_per_cycle"], sram, t[b], t[a]))
    t = {n: v[order] for n, v in t.items()}
    first = np.concatenate([[True], (t[a][1:] != t[a][:-1]) | (t[b][1:] != t[b][:-1])]) if len(order) else order
    groups = np.cumsum(first) - 1
    ties = np.bincount(groups, weights=t["ties"]).astype(np.int64) if len(order) else t["ties"]
    out = {n: v[first] for n, v in t.items()}
    out["ties"] = ties
    return out


def _numpy(column) -> np.ndarray:
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    return column.to_numpy(zero_copy_only=False)


def _row(table: dict, i: int) -> dict:
    return {name: table[name][i].item() if hasattr(table[name][i], "item") else table[name][i]
            for name in (*SHOWN, "ties")}


def report(fronts: dict) -> str:
    """The fronts as text tables."""
    lines = []
    for workload, by_objective in fronts.items():
        for objective, designs in by_objective.items():
            a, b = OBJECTIVES[objective]
            against = "cycles" if b == "cycles" else "PE count"
            lines.append(f"{workload}: Pareto-optimal designs, energy against {against} ({len(designs)})")
            lines.append(f"  {'array':>7} {'flow':>4} {'prec':>4} {'ifmap':>6} {'filter':>6} {'ofmap':>6} "
                         f"{'DRAM B/c':>8} {'MHz':>6} {'PEs':>6} {'cycles':>12} {'stalls':>10} {'util':>6} "
                         f"{'energy µJ':>12} {'GMAC/J':>8}  designs alike")
            for d in designs:
                lines.append(f"  {str(d['rows']) + 'x' + str(d['cols']):>7} {d['dataflow']:>4} {d['precision']:>4} "
                             f"{d['ifmap_sram_kib']:>6g} {d['filter_sram_kib']:>6g} {d['ofmap_sram_kib']:>6g} "
                             f"{d['dram_bytes_per_cycle']:>8g} {d['clock_mhz']:>6g} {d['pes']:>6} "
                             f"{d['cycles']:>12,} {d['stall_cycles']:>10,} {d['utilization']:>6.1%} "
                             f"{d['energy_total_pj'] / 1e6:>12.4g} {d['macs_per_joule'] / 1e9:>8.3g}  {d['ties']:>5}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
