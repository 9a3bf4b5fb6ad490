"""Design-space sweeps: how fast, how well they scale on Dask, and that memory stays bounded.

    python benchmarks/bench_sweep.py            # everything (a few minutes on 2 cores)
    python benchmarks/bench_sweep.py --quick    # smaller sweeps

1. (configuration × GEMM) evaluations per second on one core: the vectorised model
   (chipviz.sweep.vectorized.evaluate), a whole chunk of a sweep (workload totals and the
   Arrow table), and, for contrast in the same run, uncached analyze() calls.
2. Wall time of a sweep of >= 10^6 (configuration, workload) results on a LocalCluster of 1 and
   of 2 worker processes (the cluster started beforehand, then with its start-up included).
3. Peak memory (max RSS) of the one-core sweep and of one ten times larger, each in a fresh
   process: bounded, since results stream to Parquet chunk by chunk.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from chipviz.chip import ChipConfig, analyze
from chipviz.chip.config import DATAFLOWS
from chipviz.sweep.spec import make_spec
from chipviz.sweep.vectorized import Configs, evaluate
from chipviz.sweep.workload import gemm_list

GEMMS = [[256, 784, 64], [32, 64, 32], [64, 32, 32], [1024, 1024, 512]]


def sweep_spec(configs: int):
    """A sweep of about `configs` configurations on one workload of four GEMMs."""
    arrays = [f"{r}x{c}" for r in (4, 8, 16, 32, 64, 128) for c in (4, 8, 16, 32, 64, 128)]  # 36
    per = 36 * 3 * 2 * 4 * 4
    bandwidths = max(1, round(configs / per))
    chip = {"array": arrays, "dataflow": list(DATAFLOWS), "precision": ["fp32", "int8"],
            "ifmap_sram_kib": [16, 64, 256, 1024], "filter_sram_kib": [16, 64, 256, 1024],
            "dram_bytes_per_cycle": {"min": 1, "max": bandwidths, "step": 1}}
    return make_spec(chip, [gemm_list("four", GEMMS)])


def one_core(pairs: int) -> dict:
    rng = np.random.default_rng(0)
    configs = Configs(rows=rng.integers(1, 129, pairs), cols=rng.integers(1, 129, pairs),
                      dataflow=rng.integers(0, 3, pairs), precision=rng.integers(0, 2, pairs),
                      clock_mhz=np.full(pairs, 700.0), ifmap_sram_kib=rng.choice([16.0, 256.0], pairs),
                      filter_sram_kib=rng.choice([16.0, 256.0], pairs), ofmap_sram_kib=np.full(pairs, 64.0),
                      dram_bytes_per_cycle=rng.choice([1.0, 8.0, 32.0], pairs))
    shapes = np.array(GEMMS)[rng.integers(0, len(GEMMS), pairs)]
    evaluate(configs.take(slice(0, 1000)), *shapes[:1000].T)  # warm
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        evaluate(configs, *shapes.T)
        best = min(best, time.perf_counter() - t)
    from chipviz.sweep.run import evaluate_chunk

    spec = sweep_spec(pairs // len(GEMMS))
    spec.chunk = 50_000
    evaluate_chunk(spec, spec.chunks - 1)  # warm: imports pyarrow
    t = time.perf_counter()
    done = 0
    for index in range(spec.chunks):
        evaluate_chunk(spec, index)
        done += (spec.chunk_range(index)[1] - spec.chunk_range(index)[0]) * spec.items_per_config
        if time.perf_counter() - t > 5:
            break
    chunk_rate = done / (time.perf_counter() - t)
    from chipviz.chip.analytic import _analyze

    points = 2000
    cfgs = [ChipConfig(rows=int(configs.rows[i]), cols=int(configs.cols[i]),
                       dataflow=DATAFLOWS[int(configs.dataflow[i])], dram_bytes_per_cycle=float(1 + i))
            for i in range(points)]  # distinct configurations: analyze()'s memo never hits
    _analyze.cache_clear()
    t = time.perf_counter()
    for i, config in enumerate(cfgs):
        analyze(*map(int, shapes[i]), config)
    analyze_rate = points / (time.perf_counter() - t)
    return {"vectorised_evals_per_s": pairs / best, "sweep_chunk_evals_per_s": chunk_rate,
            "analyze_calls_per_s": analyze_rate, "speedup": pairs / best / analyze_rate}


def dask_scaling(configs: int) -> dict:
    from chipviz.sweep.run import connect, run_sweep

    spec = sweep_spec(configs)
    out = {"results": spec.points, "evaluations": spec.evaluations, "chunks": spec.chunks}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        run_sweep(spec, os.path.join(tmp, "local.parquet"), executor="local", progress=False)
        out["one_core_no_dask_s"] = time.perf_counter() - t
        for workers in (1, 2):
            started = time.perf_counter()
            client, cluster = connect(workers=workers)
            up = time.perf_counter() - started
            try:
                client.run(lambda: __import__("chipviz.sweep.run"))  # workers import the model before timing
                t = time.perf_counter()
                run_sweep(spec, os.path.join(tmp, f"dask{workers}.parquet"), client=client, progress=False,
                          restart=True)
                out[f"dask_{workers}_workers_s"] = time.perf_counter() - t
                out[f"dask_{workers}_workers_with_startup_s"] = time.perf_counter() - t + up
            finally:
                client.close()
                cluster.close()
    out["speedup_2_vs_1"] = out["dask_1_workers_s"] / out["dask_2_workers_s"]
    return out


def peak_memory(configs: int) -> dict:
    """Max RSS of a one-core sweep in a fresh process, for `configs` and ten times as many."""
    out = {}
    for size in (configs, 10 * configs):
        with tempfile.TemporaryDirectory() as tmp:
            here = os.path.dirname(os.path.abspath(__file__))
            code = ("import sys, time, resource; sys.path.insert(0, %r); from bench_sweep import sweep_spec; "
                    "from chipviz.sweep.run import run_sweep; s = sweep_spec(%d); t = time.perf_counter(); "
                    "run_sweep(s, %r, executor='local', progress=False); "
                    "print(s.points, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
                    ) % (here, size, os.path.join(tmp, "r.parquet"))
            result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            points, seconds, rss = result.stdout.split()
            size_mb = os.path.getsize(os.path.join(tmp, "r.parquet")) / 2**20
            out[f"{int(points):,} results"] = {"max_rss_mib": round(int(rss) / 1024, 1),
                                               "seconds": round(float(seconds), 2),
                                               "parquet_mib": round(size_mb, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    pairs = 200_000 if args.quick else 1_000_000
    configs = 150_000 if args.quick else 1_200_000
    results = {"one_core": one_core(pairs)}
    print(json.dumps(results, indent=1), flush=True)
    results["dask"] = dask_scaling(configs)
    print(json.dumps(results["dask"], indent=1), flush=True)
    results["memory"] = peak_memory(configs // 10 if args.quick else configs // 4)
    print(json.dumps(results["memory"], indent=1), flush=True)


if __name__ == "__main__":
    main()
