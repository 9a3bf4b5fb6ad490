"""`chipviz sweep`: a design-space sweep from a TOML file or from ranges on the command line.

    chipviz sweep spec.toml --out results.parquet [--csv [FILE]] [--pareto [--json]]
    chipviz sweep --array 8x8,16x16,32x32 --dataflow ws,os,is --dram-bytes-per-cycle 4:64:x2 \\
                  --layers 64,32,10 --out results.parquet
    chipviz sweep spec.toml --out results.parquet --scheduler tcp://host:8786

Kept light to import (the parser is built on every `chipviz` call): numpy-free at module level;
the sweep machinery, Dask and pyarrow load only when a sweep runs. Errors raise ValueError /
OSError with one line (chipviz.cli prints it and exits 2); Ctrl-C leaves the finished chunks,
and the same command resumes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

RANGE_OPTIONS = {  # ChipConfig field -> option
    "rows": "--rows", "cols": "--cols", "dataflow": "--dataflow", "precision": "--precision",
    "clock_mhz": "--clock-mhz", "ifmap_sram_kib": "--ifmap-sram-kib", "filter_sram_kib": "--filter-sram-kib",
    "ofmap_sram_kib": "--ofmap-sram-kib", "dram_bytes_per_cycle": "--dram-bytes-per-cycle",
}
EXIT_INTERRUPTED = 130


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sweep", help="sweep chip designs over workloads (design-space exploration), on one core or Dask",
        description="Evaluate every combination of chip settings on some workloads with the analytic model and "
                    "write one row per (configuration, workload) to Parquet. Settings come from a TOML sweep "
                    "file (see assets/sweeps/example.toml) and/or the range options below, which override the "
                    "file's. A range is a list (8,16,32), MIN:MAX:STEP (4:64:4) or MIN:MAX:xFACTOR (4:64:x2). "
                    "An interrupted sweep resumes when run again with the same settings.")
    p.add_argument("spec", nargs="?", metavar="SPEC.toml", help="the sweep file")
    p.add_argument("--out", required=True, metavar="FILE.parquet", help="where the results go (Parquet)")
    p.add_argument("--csv", nargs="?", const="", metavar="FILE.csv",
                   help="also write the results as CSV (default name: the Parquet file's, ending .csv)")
    ranges = p.add_argument_group("chip ranges (override the sweep file's [chip] fields)")
    ranges.add_argument("--array", metavar="RxC,...", help="array sizes, e.g. 8x8,16x16,32x32")
    for field, option in RANGE_OPTIONS.items():
        ranges.add_argument(option, dest=f"range_{field}", metavar="RANGE", help=f"values of {field}")
    work = p.add_argument_group("workloads (instead of the sweep file's)")
    work.add_argument("--layers", metavar="W,W,...", help="one training step of this network, as chipviz train "
                      "--layers (e.g. 64,32,10 or conv3x3x8,pool2,10)")
    work.add_argument("--dataset", help="the network's dataset (default digits)")
    work.add_argument("--batch-size", metavar="N", help="the network's batch (default 32)")
    work.add_argument("--topology", metavar="FILE.csv", help="a SCALE-Sim topology file")
    work.add_argument("--gemm", metavar="MxKxN,...", help="GEMMs, e.g. 256x784x64,32x64x10")
    running = p.add_argument_group("running")
    running.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing Dask scheduler (default: a "
                     "LocalCluster started for the run)")
    running.add_argument("--workers", metavar="N", default="2", help="LocalCluster worker processes (default 2)")
    running.add_argument("--threads", action="store_true", help="LocalCluster workers as threads, not processes")
    running.add_argument("--no-dask", action="store_true", help="run on one core in this process")
    running.add_argument("--chunk", metavar="N", help="configurations per task (default: about 200,000 evaluations)")
    running.add_argument("--restart", action="store_true", help="discard the parts of an interrupted sweep")
    running.add_argument("--quiet", action="store_true", help="no progress bar")
    out = p.add_argument_group("Pareto front")
    out.add_argument("--pareto", action="store_true", help="print the Pareto-optimal designs (energy against "
                     "cycles; energy against PE count) of each workload")
    out.add_argument("--json", action="store_true", help="print the summary (and the fronts) as JSON")
    p.set_defaults(run=_run)
    return p


def _whole(option: str, text: str, low: int, high: int) -> int:
    text = str(text).strip()
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise ValueError(f"argument {option}: must be a whole number from {low} to {high}, got {text!r}")
    return int(text)


def parse_range(option: str, text: str, numeric: bool = True) -> list | dict:
    """"8,16,32" -> [8, 16, 32]; "4:64:4" -> {min, max, step}; "4:64:x2" -> {min, max, factor}."""
    text = text.strip()
    if not numeric:
        return [t.strip() for t in text.split(",") if t.strip()]
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"argument {option}: a range is MIN:MAX:STEP or MIN:MAX:xFACTOR, got {text!r}")
        low, high = _number(option, parts[0]), _number(option, parts[1])
        last = parts[2].strip().lower()
        if last.startswith("x"):
            return {"min": low, "max": high, "factor": _number(option, last[1:])}
        return {"min": low, "max": high, "step": _number(option, last)}
    return [_number(option, t) for t in text.split(",")]


def _number(option: str, text: str):
    t = text.strip()
    try:
        value = int(t) if t.lstrip("+-").isdigit() and t.isascii() else float(t)
    except ValueError:
        raise ValueError(f"argument {option}: {text!r} is not a number") from None
    if isinstance(value, float) and not value == value or value in (float("inf"), float("-inf")):
        raise ValueError(f"argument {option}: {text!r} is not a finite number")
    return value


def build_spec(args):
    from . import workload as wl
    from .spec import SpecError, make_axes, make_spec, read_spec

    base = read_spec(args.spec) if args.spec else None
    chip: dict = {}
    given = {}
    if args.array is not None:
        given["array"] = parse_range("--array", args.array, numeric=False)
    for field, option in RANGE_OPTIONS.items():
        value = getattr(args, f"range_{field}")
        if value is not None:
            given[field] = parse_range(option, value, numeric=field not in ("dataflow", "precision"))
    option_of = {"array": "--array", **RANGE_OPTIONS}

    def where(key):
        return f"argument {option_of.get(key, '--' + str(key).replace('_', '-'))}"

    if "array" in given and ("rows" in given or "cols" in given):
        raise SpecError("give either --array or --rows and --cols, not both")
    if base is not None:  # the file's axes, with the options' replacing them
        axes = dict(base.axes)
        fresh = make_axes(given, where) if given else {}
        for axis in given:  # --rows or --cols alone pairs with the default of the other
            axis = "array" if axis in ("rows", "cols") else axis
            axes[axis] = fresh[axis]
        base.axes = axes
    else:
        chip = given
    workloads = []
    if args.layers is not None:
        settings = {}
        if args.dataset is not None:
            settings["dataset"] = args.dataset
        if args.batch_size is not None:
            settings["batch_size"] = _whole("--batch-size", args.batch_size, 1, 65536)
        try:
            workloads.append(wl.training_step_of(f"train {args.layers}", args.layers, **settings))
        except ValueError as exc:
            raise ValueError(f"argument --layers: {exc}") from None
    elif args.dataset is not None or args.batch_size is not None:
        raise ValueError("--dataset and --batch-size describe the network of --layers; add --layers")
    if args.topology is not None:
        try:
            workloads.append(wl.topology(os.path.basename(args.topology), args.topology))
        except OSError as exc:
            raise ValueError(f"argument --topology: cannot open {args.topology!r}: {exc.strerror or exc}") from None
    if args.gemm is not None:
        try:
            workloads.append(wl.gemm_list("gemms", [g.strip() for g in args.gemm.split(",")]))
        except ValueError as exc:
            raise ValueError(f"argument --gemm: {exc}") from None
    chunk = _whole("--chunk", args.chunk, 1, 10**9) if args.chunk is not None else None
    if base is not None:
        if workloads:
            base.workloads = workloads
        if chunk:
            base.chunk = chunk
        return base
    if not workloads:
        raise ValueError("nothing to sweep: give a sweep file (SPEC.toml) or a workload (--layers, --topology or "
                         "--gemm) with ranges")
    return make_spec(chip, workloads, chunk=chunk, where=where)


def run(args) -> int:
    """Run the sweep `args` (from add_parser's options) describe; the exit status."""
    return _run(args)


def _run(args) -> int:
    from .pareto import pareto_file, report
    from .run import run_sweep

    spec = build_spec(args)
    workers = _whole("--workers", args.workers, 1, 256)
    if args.no_dask and (args.scheduler or args.threads):
        raise ValueError("--no-dask runs in this process: drop --scheduler / --threads")
    csv = None
    if args.csv is not None:
        csv = args.csv or os.path.splitext(args.out)[0] + ".csv"
    if not args.quiet:
        print(f"chipviz sweep: {spec.describe()}, {spec.chunks:,} chunks of {spec.chunk_size:,} configurations",
              file=sys.stderr)
    try:
        outcome = run_sweep(spec, args.out, csv=csv, executor="local" if args.no_dask else "dask",
                            scheduler=args.scheduler, workers=workers, threads=args.threads,
                            restart=args.restart, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"chipviz sweep: interrupted; the finished chunks are kept in {args.out}.parts — run the same "
              f"command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    summary = {"out": outcome.out, "csv": outcome.csv, "configurations": spec.size,
               "workloads": [w.describe() for w in spec.workloads], "results": outcome.points,
               "evaluations": outcome.evaluations, "chunks": outcome.chunks, "resumed_chunks": outcome.skipped,
               "seconds": round(outcome.seconds, 3)}
    fronts = pareto_file(outcome.out) if args.pareto else None
    if args.json:
        print(json.dumps({**summary, **({"pareto": fronts} if fronts is not None else {})}, ensure_ascii=False))
        return 0
    resumed = f", {outcome.skipped} of {outcome.chunks} chunks resumed" if outcome.skipped else ""
    print(f"{outcome.points:,} results ({outcome.evaluations:,} evaluations) in {outcome.seconds:.2f} s{resumed} "
          f"-> {outcome.out}" + (f" and {outcome.csv}" if outcome.csv else ""))
    if fronts is not None:
        print(report(fronts), end="")
    return 0
