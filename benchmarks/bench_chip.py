"""How fast is ChipViz's chip simulator? One run, one Markdown table.

    python benchmarks/bench_chip.py [--quick]

(a) cycle-accurate engine speed in simulated PE-cycles per second, per dataflow, with the
    trace off and with a trace recording the whole run;
(b) the GEMM M=256, K=784, N=64 on a 32×32 array, cycle-accurate, per dataflow: wall time,
    cycle counts against SCALE-Sim's formulas, speed-up against SCALE-Sim's published times;
(c) the analytic model's time per GEMM, for that GEMM and for a many-fold case (1×1 array);
(d) numba compile time on a cold cache and start-up on a warm one (fresh subprocesses).

See benchmarks/README.md for what each figure means.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

# One BLAS thread: (b)'s reference product would otherwise leave OpenBLAS threads spinning on the other
# core for a while, which slowed the timings that follow it by up to 2× on this 2-core machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numba  # noqa: E402
import numpy as np  # noqa: E402

from chipviz.chip import ChipConfig, analyze, gemm  # noqa: E402
from chipviz.chip.analytic import _analyze  # noqa: E402
from chipviz.chip import trace as tr  # noqa: E402

DATAFLOWS = ("ws", "os", "is")
# SCALE-Sim v3's time for M=256, K=784, N=64 on a 32×32 array: reference figures quoted in
# ../shared/REFERENCE.md §1 (and the project brief), not measured here.
SCALESIM_SECONDS = {"os": (3.0, 5.0), "ws": (3.0, 5.0), "is": (4.0, 6.0)}
BIG = (256, 784, 64)  # M, K, N
MODERATE = (128, 256, 64)  # for engine speed: a whole-run trace of it fits the trace budget on 16×16


def ample(rows: int, cols: int, dataflow: str) -> ChipConfig:
    """Memory so large that nothing stalls, as in SCALE-Sim's default run."""
    return ChipConfig(rows=rows, cols=cols, dataflow=dataflow, ifmap_sram_kib=4096.0, filter_sram_kib=4096.0,
                      ofmap_sram_kib=4096.0, dram_bytes_per_cycle=1e5)


def operands(m: int, k: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)


def median_time(fn, repeats: int) -> float:
    """Median wall time of `repeats` calls (the machine may be shared: the median resists outliers)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def scalesim_cycles(m: int, k: int, n: int, rows: int, cols: int, dataflow: str) -> int:
    """SCALE-Sim v3's compute cycles with no stalls, straight from REFERENCE.md §1."""
    ceil = lambda a, b: -(-a // b)  # noqa: E731
    if dataflow == "os":
        folds, per_fold = ceil(m, rows) * ceil(n, cols), k + rows + cols - 2
    elif dataflow == "ws":
        folds, per_fold = ceil(k, rows) * ceil(n, cols), 2 * rows + cols + m - 2
    else:
        folds, per_fold = ceil(k, rows) * ceil(m, cols), 2 * rows + cols + n - 2
    return folds * per_fold - 1


def fmt_seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.0f} µs"
    return f"{s * 1e9:.0f} ns"


def bench_engine_speed(rows_out: list, repeats: int, per_round: int = 5) -> None:
    """(a): every case timed in rounds (per_round calls each), the cases taking turns, `repeats` calls in all.
    This machine has slow spells of a few seconds (another guest on its host): timed back to back, a
    case's calls could all fall in one; in turns, each case's median spans the whole run."""
    m, k, n = MODERATE
    side = 16
    a, b = operands(m, k, n)
    cases = []
    for dataflow in DATAFLOWS:
        config = ample(side, side, dataflow)
        total = analyze(m, k, n, config).cycles
        gemm(a, b, config, engine="cycle", trace_window=(0, total))  # compile / warm up
        for label, window in (("trace off", None), ("trace on, whole run", (0, total))):
            result = gemm(a, b, config, engine="cycle", trace_window=window)
            assert result.stats.cycles == total
            cases.append((dataflow, label, config, window, total, result))
    rounds = max(1, repeats // per_round)
    times = {i: [] for i in range(len(cases))}
    fresh = {i: [] for i in range(len(cases))}
    for _ in range(rounds):
        for i, (dataflow, label, config, window, total, result) in enumerate(cases):
            run = lambda: gemm(a, b, config, engine="cycle", trace_window=window)  # noqa: E731
            times[i].append(median_time(run, per_round))
            if window is not None:
                # trace.allocate recycles the memory of traces no longer referenced (as here, call after call);
                # a trace in fresh memory pays the operating system's page faults on first write
                fresh[i].append(median_time(lambda: (tr._POOL.clear(), run()), per_round))
    for i, (dataflow, label, config, window, total, result) in enumerate(cases):
        t = statistics.median(times[i])
        speeds = [total * side * side / x / 1e6 for x in times[i]]
        detail = (f"{total:,} cycles × {side * side} PEs in {fmt_seconds(t)} (median of {rounds} rounds of "
                  f"{per_round} calls, the cases in turns; rounds {min(speeds):,.0f}–{max(speeds):,.0f})")
        if window is not None:
            detail += (f"; trace {result.trace.nbytes / 2**20:.0f} MiB, recycled memory; in fresh memory "
                       f"{total * side * side / statistics.median(fresh[i]) / 1e6:,.0f} M PE-cycles/s")
        rows_out.append(("(a) cycle engine speed", f"{dataflow}, {label}: M={m} K={k} N={n} on {side}×{side}",
                         f"{total * side * side / t / 1e6:,.0f} M PE-cycles/s", detail))


def bench_scalesim_case(rows_out: list, repeats: int) -> None:
    m, k, n = BIG
    side = 32
    a, b = operands(m, k, n)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    for dataflow in DATAFLOWS:
        config = ample(side, side, dataflow)
        result = gemm(a, b, config, engine="cycle")  # compile / warm up, and check
        s = result.stats
        formula = scalesim_cycles(m, k, n, side, side, dataflow)
        error = float(np.abs(result.c - expected).max())
        t = median_time(lambda: gemm(a, b, config, engine="cycle"), repeats)
        low, high = SCALESIM_SECONDS[dataflow]
        agree = "= formula ✓" if s.scalesim_cycles == formula and s.stall_cycles == 0 else "≠ formula ✗"
        rows_out.append((
            "(b) SCALE-Sim's test GEMM", f"{dataflow}: M={m} K={k} N={n} on {side}×{side}, cycle-accurate",
            fmt_seconds(t),
            f"median of {repeats}; {s.cycles:,} cycles ({s.folds} folds × {s.cycles_per_fold}, {s.stall_cycles} "
            f"stalls); SCALE-Sim count {s.scalesim_cycles:,} {agree} ({formula:,}); max abs error of C "
            f"{error:.1e}; speed-up vs SCALE-Sim's {low:g}–{high:g} s*: {low / t:,.0f}–{high / t:,.0f}×"))


def bench_analytic(rows_out: list, calls: int) -> None:
    """`analyze` is memoised (lru_cache): time the computation itself through __wrapped__,
    and the memoised lookup that a training loop's repeated shapes get."""
    m, k, n = BIG
    compute = _analyze.__wrapped__
    for side in (32, 1):
        for dataflow in DATAFLOWS:
            config = ample(side, side, dataflow)
            stats = compute(m, k, n, config)  # warm up
            assert stats.counters == analyze(m, k, n, config).counters
            reps = calls if stats.folds < 1000 else max(5, calls // 50)
            t = median_time(lambda: compute(m, k, n, config), reps)
            hit = median_time(lambda: analyze(m, k, n, config), calls)
            rows_out.append(("(c) analytic model", f"{dataflow}: M={m} K={k} N={n} on {side}×{side}",
                             f"{fmt_seconds(t)} per GEMM",
                             f"computed, median of {reps} calls; {stats.folds:,} folds, {stats.cycles:,} cycles; "
                             f"memoised repeat {fmt_seconds(hit)}"))


CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
from chipviz.chip import ChipConfig, analyze, gemm
from chipviz.chip.analytic import _analyze
t1 = time.perf_counter()
a = np.ones((3, 5), np.float32)
b = np.ones((5, 4), np.float32)
for dataflow in ("ws", "os", "is"):
    config = ChipConfig(rows=2, cols=2, dataflow=dataflow)
    gemm(a, b, config, engine="cycle")
    analyze(3, 5, 4, config)
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first_gemms": t2 - t1}))
"""


def bench_startup(rows_out: list) -> None:
    with tempfile.TemporaryDirectory(prefix="chipviz-numba-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold cache (compiles)", "warm cache (loads)"):
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - t
            inner = json.loads(done.stdout)
            files = sum(len(names) for _, _, names in os.walk(cache))
            rows_out.append((
                "(d) start-up", f"{label}: new process, import chipviz.chip, one tiny GEMM per dataflow "
                                "(cycle + analytic)",
                f"{fmt_seconds(wall)} wall",
                f"import (numpy, numba, chipviz) {fmt_seconds(inner['import'])}; first GEMMs "
                f"{fmt_seconds(inner['first_gemms'])}; {files} files in NUMBA_CACHE_DIR"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 7
    calls = 50 if args.quick else 1000
    rows: list[tuple[str, str, str, str]] = []
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    bench_startup(rows)  # first, before this process's own compiling warms the machine up
    bench_engine_speed(rows, 15 * repeats)  # runs of a few ms: a median of 3 would follow the machine's jitter
    bench_scalesim_case(rows, repeats)
    bench_analytic(rows, calls)
    rows = sorted(rows, key=lambda r: r[0][:3])  # (a) .. (d) in order
    print(f"ChipViz chip benchmark{' (--quick)' if args.quick else ''}: Python {platform.python_version()}, "
          f"numpy {np.__version__}, numba {numba.__version__}, {os.cpu_count()} CPUs ({platform.machine()}), "
          f"load average {load:.2f} at start; trace budget {tr.DEFAULT_BUDGET_BYTES // 2**20} MiB; "
          f"memory ample (4096 KiB per SRAM, 1e5 B/cycle DRAM) so nothing stalls\n")
    print("| measure | case | result | detail |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    print("\n\\* SCALE-Sim's times (about 3–5 s for os and ws, 4–6 s for is, pure Python) are the reference "
          "figures quoted in REFERENCE.md §1, not measured here; the speed-up divides them by our median. "
          "benchmarks/bench_scalesim.py times SCALE-Sim itself beside ChipViz in one run.")
    print(f"Total benchmark time {time.perf_counter() - t0:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
