"""ChipViz's cycle-accurate engine beside SCALE-Sim v3, timed in one run. One Markdown table.

    python benchmarks/bench_scalesim.py [--quick] [--repeats N] [--venv PATH]

The GEMM M=256, K=784, N=64 on a 32×32 array, for ws, os and is. SCALE-Sim (`scalesim==3.0.0`
from PyPI, which needs numpy < 2.4) lives in its own virtual environment, created on first use
under ~/.cache/chipviz-bench/scalesim-venv (or --venv); when it cannot be installed (no network,
no pip) the benchmark says so and exits 0 without a comparison. Each simulator is timed inside
its own process (`time.perf_counter` around the simulation call, interpreter start and imports
excluded, a warm-up run first): SCALE-Sim's `scalesim(...).run_scale()` with trace files off
(`save_disk_space=True`), and ChipViz's `gemm(..., engine="cycle")` on float32 operands with ample
memory (nothing stalls). Reported: the medians, their ratio per dataflow, and whether SCALE-Sim's
compute cycle count equals ChipViz's `scalesim_cycles` (SCALE-Sim's overall count, which adds its
own memory stalls, is shown beside it).
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
from pathlib import Path

M, K, N, SIDE = 256, 784, 64, 32
DATAFLOWS = ("ws", "os", "is")
VENV = Path.home() / ".cache" / "chipviz-bench" / "scalesim-venv"
REQUIREMENTS = ("scalesim==3.0.0", "numpy<2.4")

CONFIG = """[general]
run_name = chipviz_bench

[architecture_presets]
ArrayHeight : {side}
ArrayWidth : {side}
IfmapSramSzkB : 4096
FilterSramSzkB : 4096
OfmapSramSzkB : 4096
IfmapOffset : 0
FilterOffset : 10000000
OfmapOffset : 20000000
Dataflow : {dataflow}
Bandwidth : 10
ReadRequestBuffer : 32
WriteRequestBuffer : 32
MemoryBanks : 1

[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : 10
IfmapSRAMBankNum : 10
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : 10
FilterSRAMBankNum : 10
FilterSRAMBankPort : 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth : CALC
UseRamulatorTrace : False
"""

# Runs inside SCALE-Sim's venv: argv = workdir, dataflow, repeats. Prints one JSON line.
SCALESIM_CHILD = r"""
import contextlib, io, json, os, sys, time
work, dataflow, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
from scalesim.scale_sim import scalesim
config, topology = os.path.join(work, dataflow + ".cfg"), os.path.join(work, "gemm.csv")
layout = os.path.join(work, "layout.csv")
def run():
    sim = scalesim(save_disk_space=True, verbose=False, config=config, topology=topology, layout=layout,
                   input_type_gemm=True)
    out = os.path.join(work, "out_" + dataflow)
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        sim.run_scale(top_path=out)
    took = time.perf_counter() - t
    # (scalesim.get_total_cycles() is broken in 3.0.0: it indexes a method.) Per layer: overall cycles
    # (compute and stalls), then compute cycles.
    items = sim.runner.single_layer_sim_object_list[0].get_compute_report_items()
    return took, (int(items[0]), int(items[1]))
run()  # warm-up
times, cycles = [], None
for _ in range(repeats):
    took, cycles = run()
    times.append(took)
print(json.dumps({"times": times, "cycles": cycles}))
"""


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_scalesim(venv: Path) -> tuple[Path | None, str]:
    """SCALE-Sim's interpreter, installing it on first use; (None, why) when that fails."""
    python = venv_python(venv)
    check = [str(python), "-c", "import scalesim.scale_sim, numpy; print(numpy.__version__)"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python, "present"
    try:
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True, capture_output=True,
                       text=True, timeout=1800)
        subprocess.run(check, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        return None, f"could not install {' '.join(REQUIREMENTS)} into {venv}: {detail.strip().splitlines()[-1:]}"
    return python, "installed now"


def time_scalesim(python: Path, work: Path, dataflow: str, repeats: int) -> dict:
    (work / f"{dataflow}.cfg").write_text(CONFIG.format(side=SIDE, dataflow=dataflow))
    (work / "gemm.csv").write_text(f"Layer, M, N, K,\ngemm, {M}, {N}, {K},\n")
    # SCALE-Sim 3.0.0 reads a layout file even with custom layouts off (the config's default); unused then
    (work / "layout.csv").write_text("Layer name," + "x," * 20 + "\ngemm," + "1," * 20 + "\n")
    done = subprocess.run([str(python), "-c", SCALESIM_CHILD, str(work), dataflow, str(repeats)], cwd=work,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"SCALE-Sim failed on {dataflow}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_chipviz(dataflow: str, repeats: int) -> dict:
    import numpy as np

    from chipviz.chip import ChipConfig, gemm

    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    config = ChipConfig(rows=SIDE, cols=SIDE, dataflow=dataflow, ifmap_sram_kib=4096.0, filter_sram_kib=4096.0,
                        ofmap_sram_kib=4096.0, dram_bytes_per_cycle=1e5)
    result = gemm(a, b, config, engine="cycle")  # warm-up (numba loads or compiles the kernel)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        gemm(a, b, config, engine="cycle")
        times.append(time.perf_counter() - t)
    s = result.stats
    return {"times": times, "cycles": s.cycles, "scalesim_cycles": s.scalesim_cycles, "stalls": s.stall_cycles}


def fmt(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1e3:.1f} ms"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 runs of each instead of 7")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs of each simulator (median taken)")
    parser.add_argument("--venv", type=Path, default=VENV, help=f"SCALE-Sim's virtual environment (default {VENV})")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    load = os.getloadavg()[0]
    python, how = ensure_scalesim(args.venv)
    if python is None:
        print(f"SCALE-Sim comparison skipped: {how}")
        return 0
    import numba
    import numpy as np

    rows = []
    with tempfile.TemporaryDirectory(prefix="chipviz-scalesim-") as tmp:
        for dataflow in DATAFLOWS:
            theirs = time_scalesim(python, Path(tmp), dataflow, repeats)
            ours = time_chipviz(dataflow, repeats)
            t_theirs, t_ours = statistics.median(theirs["times"]), statistics.median(ours["times"])
            overall, compute = theirs["cycles"]
            match = "✓" if compute == ours["scalesim_cycles"] else "✗"
            rows.append((dataflow, fmt(t_theirs), fmt(t_ours), f"{t_theirs / t_ours:,.0f}×",
                         f"{compute:,} / {ours['scalesim_cycles']:,} {match} (SCALE-Sim overall, with its stalls: "
                         f"{overall:,}; ChipViz's true count {ours['cycles']:,}, {ours['stalls']} stalls)"))
    scalesim_numpy = subprocess.run([str(python), "-c", "import numpy; print(numpy.__version__)"],
                                    capture_output=True, text=True).stdout.strip()
    print(f"ChipViz vs SCALE-Sim 3.0.0 (venv {args.venv}, {how}, numpy {scalesim_numpy}): GEMM M={M} K={K} N={N} "
          f"on {SIDE}×{SIDE}; medians of {repeats} in-process runs after a warm-up; Python "
          f"{platform.python_version()}, ChipViz with numpy {np.__version__}, numba {numba.__version__}; "
          f"{os.cpu_count()} CPUs, load average {load:.2f} at start\n")
    print("| dataflow | SCALE-Sim | ChipViz cycle engine | ratio | cycles: SCALE-Sim / ChipViz's scalesim_cycles |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0 if all("✓" in row[-1] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
