"""The `chipviz` command line.

    chipviz gemm --m 32 --k 64 --n 10 --array 8x8 --dataflow ws [--engine cycle] [--json] ...
    chipviz gemm --topology layers.csv [--output report.csv]
    chipviz train --dataset digits --layers 64,32,10 --optimizer adam --lr 0.01 --epochs 10 ...
    chipviz animate --m 4 --k 4 --n 4 --array 4x4 --dataflow ws [--cycles START:STOP] [--fps N] --out gemm.gif
    chipviz animate --m 4 --k 4 --n 4 --array 4x4 --dataflow ws [--cycle C] --out frame.png|frame.svg
    chipviz serve [--port 5006] [--address A] [--allow-websocket-origin HOST[:PORT]] [--num-procs N]

Layout, so that more subcommands slot in beside `gemm`: each subcommand is a pair of
functions, `_add_<name>(subparsers)` declaring its options and `_run_<name>(args) -> int`
doing the work, listed in SUBCOMMANDS. Options describing the chip are shared through
`_add_chip_options` / `_chip_config`. Every user mistake (a bad argument, a missing or
malformed file) leaves by one path: `UsageError`, ValueError or OSError reach `main`,
which prints exactly one line `chipviz: error: ...` on stderr and returns 2, never a
traceback. Argparse's own usage errors are routed the same way (see `_Parser.error`).

To add a subcommand (e.g. `train`): write `_add_train(subparsers)`, which calls
`subparsers.add_parser("train", ...)`, declares its options (`_add_chip_options(p)` for the
chip) and ends with `p.set_defaults(run=_run_train)`; write `_run_train(args) -> int`,
raising UsageError (or letting ValueError/OSError through) for bad input; append
`_add_train` to SUBCOMMANDS.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import gc
import importlib.util
import ipaddress
import json
import math
import os
import re
import sys

import numpy as np

from . import animation_limits
from .chip import DATAFLOWS, ENGINES, PRECISIONS, ChipConfig, GemmStats, Mapping, TraceTooLarge, analyze, gemm
from .chip import parse_array
from .chip import engine_bytes, estimate_seconds
from .chip.analytic import COUNT_LIMIT, counter_bound
from .chip import trace as tr
from .chip.dataflow_table import DATAFLOW_TABLE
from .chip.topology import CONVENTION, read_topology

PROG = "chipviz"
EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# The analytic model keeps a row of counters per fold: past this many folds its memory and
# time grow large (about 1 s per million folds), so the CLI asks for a bigger array instead.
MAX_FOLDS = 5_000_000

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ChipConfig)}
# ChipConfig field -> the option that sets it, so its error messages name the option.
_CHIP_OPTIONS = {
    "precision": "--precision",
    "dataflow": "--dataflow",
    "clock_mhz": "--clock-mhz",
    "ifmap_sram_kib": "--ifmap-sram-kib",
    "filter_sram_kib": "--filter-sram-kib",
    "ofmap_sram_kib": "--ofmap-sram-kib",
    "dram_bytes_per_cycle": "--dram-bytes-per-cycle",
}

_CHIP_HELP = {
    "clock_mhz": "clock frequency in MHz",
    "ifmap_sram_kib": "SRAM buffer for A (ifmap) in KiB",
    "filter_sram_kib": "SRAM buffer for B (filter) in KiB",
    "ofmap_sram_kib": "SRAM buffer for C (ofmap) in KiB",
    "dram_bytes_per_cycle": "DRAM bandwidth in bytes per clock cycle",
}


class UsageError(Exception):
    """A bad argument or input: reported as one `chipviz: error:` line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors become UsageError (one line), not usage + exit."""

    def error(self, message):
        if message.endswith("expected one argument"):  # e.g. `--clock-mhz -5`: argparse takes -5 for an option
            option = message.split()[1].rstrip(":")
            message += f" (for a value starting with '-', write {option}=VALUE)"
        raise UsageError(f"{message} (see '{self.prog} --help')")


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 check failed, 2 usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.run(args)
    except SystemExit as exc:  # --help / --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:
        return _Progress.interrupted()
    except (UsageError, ValueError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(_os_message(exc))
    except MemoryError:
        return _fail("not enough memory for this run: use smaller GEMM dimensions or a larger array")
    finally:
        if _Progress.active is not None:  # a run that stopped on an error: clear its bar
            _Progress.active.close()


def _fail(message: str) -> int:
    """The shared error path: one line on stderr, exit status 2."""
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_USAGE


def _os_message(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"cannot open {exc.filename!r}: {exc.strerror}"
    return exc.strerror or str(exc)  # the system's words, without Python's "[Errno 28]"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="ChipViz: a teaching simulator of a systolic-array AI chip.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


# --------------------------------------------------------------------------- shared options


# What a number on the command line may look like: ASCII digits (int() and float() would also take other
# scripts' digits, full-width digits and underscores, which then print back as something the user did not type).
_WHOLE = re.compile(r"\s*[+-]?[0-9]+\s*")
_REAL = re.compile(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*|\s*[+-]?(nan|inf|infinity)\s*",
                   re.IGNORECASE)


def _integer(text: str) -> int:
    if not _WHOLE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"must be a whole number, got {_shown(repr(text))}")
    try:
        return int(text)
    except ValueError:  # past Python's 4,300 digits
        raise argparse.ArgumentTypeError(f"must be a whole number of at most 4,300 digits, got "
                                         f"{_shown(repr(text))}") from None


def _number(text: str) -> float:
    if not _REAL.fullmatch(text):
        raise argparse.ArgumentTypeError(f"must be a number, got {_shown(repr(text))}")
    value = float(text)
    if math.isinf(value) and "inf" not in text.lower():  # 1e999: too large for a float, not "inf" as typed
        raise argparse.ArgumentTypeError(f"must be a finite number, got {_shown(repr(text))}")
    return value


def _array(text: str) -> tuple[int, int]:
    try:
        return parse_array(text)
    except ValueError as exc:
        message = str(exc)
        if not message.startswith("array"):  # e.g. int() on a digit-like '²' that isdigit() let through
            message = f"array must look like ROWSxCOLS, e.g. 8x8, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def _add_chip_options(parser: argparse.ArgumentParser) -> None:
    """The options that describe a chip (ChipConfig), for any subcommand that runs one."""
    chip = parser.add_argument_group("chip")
    # every chip option defaults to None so that `train --load` can tell which were given
    chip.add_argument("--array", type=_array, default=None, metavar="ROWSxCOLS",
                      help=f"PE array size, each side 1..256 (default {_DEFAULTS['rows']}x{_DEFAULTS['cols']})")
    chip.add_argument("--dataflow", choices=DATAFLOWS, default=None,
                      help="; ".join(f"{k}: {f.name} ({f.stationary} stays in the PEs)"
                                     for k, f in DATAFLOW_TABLE.items()) + f" (default {_DEFAULTS['dataflow']})")
    chip.add_argument("--precision", choices=PRECISIONS, default=None,
                      help="number format: fp32, or int8 operands with int32 accumulators "
                           f"(default {_DEFAULTS['precision']})")
    for field, option in _CHIP_OPTIONS.items():
        if field in ("precision", "dataflow"):
            continue
        chip.add_argument(option, type=_number, default=None, metavar="X",
                          help=f"{_CHIP_HELP[field]} (default {_DEFAULTS[field]:g})")


def _as_typed(message: str, options: dict[str, str]) -> str:
    """A library's "<field> must be …" message, naming the option as the user typed it instead."""
    for field, option in options.items():
        if message.startswith(field + " "):
            return f"argument {option}:{message[len(field):]}"
    return message


def _chip_config(args: argparse.Namespace) -> ChipConfig:
    """A validated ChipConfig from the chip options; its ValueError names the option."""
    rows, cols = args.array or (_DEFAULTS["rows"], _DEFAULTS["cols"])
    given = {f: getattr(args, f) for f in _CHIP_OPTIONS if getattr(args, f, None) is not None}
    try:
        return ChipConfig(rows=rows, cols=cols, **given)
    except ValueError as exc:
        raise UsageError(_as_typed(str(exc), _CHIP_OPTIONS)) from None


# --------------------------------------------------------------------------- gemm


def _add_gemm(subparsers) -> None:
    p = subparsers.add_parser(
        "gemm", help="run one GEMM C = A·B on the chip, or every layer of a SCALE-Sim topology CSV",
        description="Run one GEMM C = A·B (A: M×K, B: K×N) on the chip and report its cycles, traffic, "
                    "energy and roofline; or, with --topology, every layer of a SCALE-Sim topology file.")
    shape = p.add_argument_group("workload (either --m/--k/--n or --topology)")
    shape.add_argument("--m", type=_integer, metavar="M", help="rows of A and C (e.g. the batch)")
    shape.add_argument("--k", type=_integer, metavar="K", help="columns of A, rows of B (the reduction)")
    shape.add_argument("--n", type=_integer, metavar="N", help="columns of B and C (e.g. output features)")
    shape.add_argument("--topology", metavar="CSV", help="SCALE-Sim topology file (GEMM or convolution form)")
    shape.add_argument("--output", metavar="CSV", help="with --topology: write the per-layer report here "
                                                       "(default: print it)")
    _add_chip_options(p)
    run = p.add_argument_group("run")
    run.add_argument("--engine", choices=ENGINES, default=None,
                     help="analytic: closed forms, no data; cycle: move every value register by register "
                          "and check C against numpy (default: analytic, or cycle with --trace)")
    run.add_argument("--seed", type=_integer, default=0, help="seed of the random A and B of the cycle engine "
                                                              "(default 0)")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    run.add_argument("--trace", metavar="FILE.npz", help="record what every PE does, cycle by cycle, into this "
                                                         "file (needs the cycle engine)")
    run.add_argument("--trace-window", metavar="START:STOP",
                     help="record only cycles START..STOP-1 (default: the whole run, if it fits the "
                          f"{tr.DEFAULT_BUDGET_BYTES // 2**20} MiB trace budget)")
    _add_long_run_options(run, "cycle-accurate run")
    p.set_defaults(run=_run_gemm)


def _run_gemm(args: argparse.Namespace) -> int:
    config = _chip_config(args)
    dims = {"--m": args.m, "--k": args.k, "--n": args.n}
    if args.seed < 0:
        raise UsageError(f"argument --seed: must be a whole number >= 0, got {args.seed}")
    if args.trace_window is not None and args.trace is None:
        raise UsageError("--trace-window needs --trace FILE.npz")
    if args.trace is not None and args.engine == "analytic":
        raise UsageError("--trace needs the cycle engine: drop --engine analytic or use --engine cycle")
    engine = args.engine or ("cycle" if args.trace is not None else "analytic")
    if args.topology is not None:
        given = [name for name, value in dims.items() if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} cannot be combined with --topology (the file gives each layer's "
                             f"shape)")
        if args.trace is not None:
            raise UsageError("--trace records one GEMM: it cannot be combined with --topology")
        return _run_topology(args, config, engine)
    if args.output is not None:
        raise UsageError("--output writes the per-layer report of --topology; for one GEMM use --json")
    missing = [name for name, value in dims.items() if value is None]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}: give the GEMM shape with --m M --k K --n N, "
                         f"or a SCALE-Sim file with --topology CSV")
    mapping = _mapping(args.m, args.k, args.n, config)
    window = None
    if args.trace is not None:
        _check_writable(args.trace, "--trace")
        window = _trace_window(args.trace_window, analyze(args.m, args.k, args.n, config).cycles, config)
    check, trace_info = None, None
    if engine == "analytic":
        stats = analyze(args.m, args.k, args.n, config)
    else:
        traced = 0 if window is None else window[1] - window[0]
        seconds, need, work = _gemm_cost(args.m, args.k, args.n, config, traced)
        what = f"this cycle-accurate run (M={args.m} K={args.k} N={args.n} on a {config.rows}x{config.cols} array)"
        show = _guard_long_run(args, seconds, need, work, what, _ANALYTIC_INSTEAD)
        progress = _Progress(mapping.folds, "fold", show)
        stats, check, trace = _run_cycle(args.m, args.k, args.n, config, args.seed, window, progress)
        progress.close()
        if trace is not None:
            path = _npz_path(args.trace)
            try:
                trace.save(path)
            except OSError as exc:
                raise UsageError(f"argument --trace: cannot write {path!r}: {exc.strerror or exc}") from None
            trace_info = {"path": path, "start": trace.start, "cycles": trace.n_cycles, "bytes": trace.nbytes}
    if args.json:
        record = stats.to_dict()
        record.update(mapping=mapping.describe(), config=_config_dict(config), check=check, trace=trace_info)
        print(_to_json(record))
    else:
        print(_gemm_report(stats, mapping, config, check, trace_info))
    return _check_status(check)


_DIM_OPTIONS = ("--m", "--k", "--n")


def _mapping(m: int, k: int, n: int, config: ChipConfig, names: tuple[str, str, str] = _DIM_OPTIONS) -> Mapping:
    """The GEMM's fold plan, or UsageError naming the option (`names`: the options, or M, K, N for a file's
    layer): a dimension below 1, more folds than MAX_FOLDS, or counters past the exact range (COUNT_LIMIT)."""
    try:
        mapping = Mapping.of(m, k, n, config)
    except ValueError as exc:  # "GEMM dimension M must be ...": name the option too
        message = str(exc)
        for name, option in zip("MKN", names):
            if message.startswith(f"GEMM dimension {name} ") and option.startswith("--"):
                message = f"argument {option}: {message}"
        raise UsageError(message) from None
    too_many_folds = mapping.folds > MAX_FOLDS
    if too_many_folds or counter_bound(mapping, config) > COUNT_LIMIT:
        dims = (m, k, n)
        index = max(range(3), key=lambda i: dims[i])
        largest = _largest_dimension(index, dims, config)
        others = " ".join(f"{names[i]} {dims[i]}" for i in range(3) if i != index)
        option = names[index]
        limit = (f"with {others} on this {config.rows}x{config.cols} {config.dataflow} chip, {option} can be at most "
                 f"{largest:,}" if largest >= 1 else "make the other dimensions smaller")
        if too_many_folds:
            raise UsageError(f"this GEMM needs {mapping.folds:,} folds on a {config.rows}x{config.cols} array, over "
                             f"the CLI's limit of {MAX_FOLDS:,}: use a larger --array or smaller dimensions ({limit})")
        what = f"argument {option}: {_shown(dims[index])}" if option.startswith("--") else \
            f"{option} = {_shown(dims[index])}"
        raise UsageError(f"{what} is too large: this GEMM's counters could pass 2^53 = {COUNT_LIMIT:,}, the largest "
                         f"count ChipViz keeps exact; {limit}")
    return mapping


def _largest_dimension(index: int, dims: tuple[int, int, int], config: ChipConfig) -> int:
    """The largest value of GEMM dimension `index` (0: M, 1: K, 2: N) that the CLI accepts with the other two
    as given: within MAX_FOLDS and COUNT_LIMIT (both grow with every dimension); 0 if none."""
    def fits(value: int) -> bool:
        shape = list(dims)
        shape[index] = value
        mapping = Mapping.of(*shape, config)
        return mapping.folds <= MAX_FOLDS and counter_bound(mapping, config) <= COUNT_LIMIT

    low, high = 0, COUNT_LIMIT  # fits(low) (or low == 0); a dimension past COUNT_LIMIT never fits: MACs >= it
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _shown(value) -> str:
    """A number as the user gave it, shortened when it runs to more digits than a line holds."""
    text = str(value)
    return text if len(text) <= 40 else f"{text[:12]}…{text[-6:]} ({len(text):,} digits)"


def _run_cycle(m, k, n, config, seed, window, progress: _Progress | None = None, a_layout=None):
    """Random operands from `seed`, the cycle-accurate run, and C checked against numpy; `progress`
    (shown or not) follows the folds; `a_layout`: A is a convolution's unrolled input (DRAM reads each
    pixel once)."""
    rng = np.random.default_rng(seed)
    if config.precision == "int8":
        a = rng.integers(-128, 128, size=(m, k), dtype=np.int8)
        b = rng.integers(-128, 128, size=(k, n), dtype=np.int8)
    else:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
    try:
        result = gemm(a, b, config, engine="cycle", trace_window=window,
                      on_folds=progress.folds if progress is not None and progress.shown else None, a_layout=a_layout)
    except TraceTooLarge as exc:
        raise UsageError(f"{exc}; choose it with --trace-window START:STOP") from None
    check = _check_c(a, b, result.c, config)
    check["seed"] = seed
    return result.stats, check, result.trace


def _check_c(a: np.ndarray, b: np.ndarray, c: np.ndarray, config: ChipConfig) -> dict:
    """Compare the chip's C with numpy's product in float64 / int64.

    int8 must match exactly. fp32 must be within the worst-case rounding of a K-term float32
    dot product in any summation order, γ_K·(|A|·|B|) with γ_K = K·u / (1 - K·u), u = 2⁻²⁴.
    """
    if config.precision == "int8":
        # exact; the chip's int32 accumulators wrap modulo 2³² (only past K = 131,072), and so does this. A float64
        # product is exact here (|sum| <= K·2^14 < 2^53) and runs on BLAS, far faster than an int64 matmul.
        exact = a.astype(np.float64) @ b.astype(np.float64)
        expected = exact.astype(np.int64).astype(np.int32).astype(np.int64)
        error = np.abs(c.astype(np.int64) - expected)
        bound = np.zeros_like(error)
    else:
        expected = a.astype(np.float64) @ b.astype(np.float64)
        error = np.abs(c.astype(np.float64) - expected)
        ku = a.shape[1] * 2.0**-24
        gamma = ku / (1 - ku) if ku < 1 else math.inf
        bound = gamma * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))
    ok = bool(np.all(error <= bound))
    return {"max_abs_error": float(error.max()), "max_bound": float(bound.max()), "ok": ok}


def _check_status(check: dict | None) -> int:
    if check is None or check["ok"]:
        return EXIT_OK
    print(f"{PROG}: error: the chip's C differs from numpy's by up to {check['max_abs_error']:.3g}, beyond the "
          f"rounding bound: a simulator bug, please report it", file=sys.stderr)
    return EXIT_CHECK_FAILED


def _trace_window(text: str | None, total: int, config: ChipConfig, option: str = "--trace-window") -> tuple[int, int]:
    """START:STOP (either side may be left out) within a run of `total` cycles, and within the budget;
    errors name `option`, the option that gave the window."""
    per_cycle = tr.bytes_per_cycle(config.rows, config.cols, config.dataflow)
    most = tr.DEFAULT_BUDGET_BYTES // per_cycle
    if text is None:
        start, stop = 0, total
        if total * per_cycle > tr.DEFAULT_BUDGET_BYTES:
            raise UsageError(
                f"a trace of the whole run ({total:,} cycles on a {config.rows}x{config.cols} array) needs "
                f"{total * per_cycle / 2**20:,.0f} MiB, over the {tr.DEFAULT_BUDGET_BYTES // 2**20} MiB budget: "
                f"record part of it with {option} START:STOP (at most {most:,} cycles)")
        return start, stop
    form = (f"argument {option}: expected START:STOP with 0 <= START < STOP, "
            f"cycles of this run being 0..{total - 1}")
    parts = text.split(":")
    if len(parts) != 2:
        raise UsageError(f"{form}, got {text!r}")
    if not all(_WHOLE.fullmatch(part) or not part.strip() for part in parts):
        raise UsageError(f"{form}, got {text!r}")
    start = int(parts[0]) if parts[0].strip() else 0
    stop = int(parts[1]) if parts[1].strip() else total
    if start >= total:
        raise UsageError(f"{form}: START {start} is past the end of the run")
    if not 0 <= start < stop:
        raise UsageError(f"{form}, got {text!r}")
    stop = min(stop, total)
    if (stop - start) * per_cycle > tr.DEFAULT_BUDGET_BYTES:
        raise UsageError(f"argument {option}: {stop - start:,} cycles on a {config.rows}x{config.cols} array "
                         f"need {(stop - start) * per_cycle / 2**20:,.0f} MiB, over the "
                         f"{tr.DEFAULT_BUDGET_BYTES // 2**20} MiB budget: record at most {most:,} cycles")
    return start, stop


def _npz_path(path: str) -> str:
    """numpy adds .npz to a name without it; say so by using the name it will really write."""
    return path if path.endswith(".npz") else path + ".npz"


def _check_writable(path: str, option: str) -> None:
    """Refuse an output path that cannot be written (empty, a directory, in a missing or unwritable
    directory) before a long run, not after it."""
    if not path.strip():
        raise UsageError(f"argument {option}: expected a file name, got {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"argument {option}: directory {os.path.dirname(path) or '.'!r} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"argument {option}: {path!r} is a directory, expected a file name")
    import tempfile

    try:  # a real try (permissions, read-only or virtual file systems): os.access does not see them all
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"argument {option}: cannot write in {os.path.dirname(path) or '.'!r}: "
                         f"{exc.strerror or exc}") from None


# --------------------------------------------------------------------------- long runs

# A cycle-accurate run (gemm --engine cycle, train --engine cycle) estimated to take longer than this is refused
# unless --max-seconds S allows it or --yes; one needing more memory than the machine has available is refused.
DEFAULT_MAX_SECONDS = 60.0
PROGRESS_SECONDS = 2.0  # runs estimated to take longer show a progress bar on stderr
# numpy's float64 matmul (the check of C) on this project's 2-core machine: 2000³ in 1.8 s, 4.4e9 MACs/s; halved
# so that estimates err long.
CHECK_MACS_PER_SECOND = 2e9
_ANALYTIC_INSTEAD = "or use --engine analytic, which reports the same counters at once, without data"


def _add_long_run_options(group, what: str) -> None:
    group.add_argument("--max-seconds", type=_number, default=None, metavar="S",
                       help=f"refuse a {what} estimated to take longer than S seconds (default "
                            f"{DEFAULT_MAX_SECONDS:g}); it shows a progress bar and Ctrl-C stops it")
    group.add_argument("--yes", action="store_true", help=f"start a {what} however long it is estimated to take "
                                                          f"(memory is still checked)")


def _gemm_cost(m: int, k: int, n: int, config: ChipConfig, traced_cycles: int = 0) -> tuple[float, int, str]:
    """(seconds, bytes, the work in words) of `gemm --engine cycle` for this GEMM: the engine's time from its
    measured speed (chipviz.chip.estimate_seconds) plus numpy's check of C; memory for the random operands, the
    engine's copies and C, the check's float64 products and the trace."""
    mapping = Mapping.of(m, k, n, config)
    int8 = config.precision == "int8"
    seconds = estimate_seconds(mapping, config, traced_cycles) + m * k * n * (1 if int8 else 2) / CHECK_MACS_PER_SECOND
    need = ((1 if int8 else 4) * (m * k + k * n) + engine_bytes(m, k, n, config) + 12 * (m * k + k * n)
            + 48 * m * n + traced_cycles * tr.bytes_per_cycle(config.rows, config.cols, config.dataflow))
    cycles = mapping.folds * mapping.cycles_per_fold
    return seconds, need, f"{cycles:,} cycles × {config.pes:,} PEs = {cycles * config.pes:.3g} PE-cycles"


def _guard_long_run(args: argparse.Namespace, seconds: float, need: int, work: str, what: str,
                    instead: str) -> bool:
    """Refuse, before it starts, a run needing more memory than is available or (unless --yes) longer than
    --max-seconds; return whether it is long enough to show progress."""
    limit = args.max_seconds
    if limit is not None and not (math.isfinite(limit) and limit > 0):
        raise UsageError(f"argument --max-seconds: must be a number of seconds > 0, got {limit:g}")
    available = _memory_available()
    if need is not None and available is not None and need > available:
        raise UsageError(f"{what} needs about {_bytes(need)} of memory, more than the {_bytes(available)} available "
                         f"on this machine (MemAvailable in /proc/meminfo): make it smaller, {instead}")
    limit = math.inf if args.yes else (DEFAULT_MAX_SECONDS if limit is None else limit)
    if seconds > limit:
        given = "" if args.max_seconds is not None else " (the default)"
        raise UsageError(f"{what} would take about {_duration(seconds)} ({work}), over --max-seconds {limit:g}"
                         f"{given}: to run it anyway pass --max-seconds {math.ceil(seconds * 2)} or --yes "
                         f"(Ctrl-C stops it), {instead}")
    return seconds >= PROGRESS_SECONDS


def _memory_available() -> int | None:
    """Bytes the kernel can give a new allocation without swapping (MemAvailable), or None where not known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _bytes(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.3g} {unit}"
    return f"{n} bytes"


def _duration(seconds: float) -> str:
    if seconds >= 86400 * 365:
        return f"{seconds / (86400 * 365):,.3g} years"
    for unit, scale in (("days", 86400), ("hours", 3600), ("min", 60)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.2g} s"


class _Progress:
    """A progress bar on stderr (tqdm) over a run's folds or steps, shown only when `shown`; it also counts
    what was done, for the one line that Ctrl-C prints."""

    active: "_Progress | None" = None  # the one being shown, for main's Ctrl-C line

    def __init__(self, total: int, unit: str, shown: bool):
        self.total, self.unit, self.shown, self.done, self.offset = total, unit, shown, 0, 0
        self.bar = None
        if shown:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit, file=sys.stderr, leave=False, mininterval=0.5, smoothing=0.1)
            _Progress.active = self

    def folds(self, done: int, total: int) -> None:
        """on_folds of one GEMM (chipviz.chip.gemm), whose folds come after those of earlier GEMMs."""
        self.advance(self.offset + done)
        if done >= total:
            self.offset += total

    def advance(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if _Progress.active is self:
            _Progress.active = None

    @staticmethod
    def interrupted() -> int:
        """Ctrl-C's one line (main's): how far a run with a progress bar had got, and that nothing was written."""
        run = _Progress.active
        if run is None:
            print(f"{PROG}: interrupted", file=sys.stderr)
        else:
            run.close()
            print(f"{PROG}: interrupted after {run.done:,} of {run.total:,} {run.unit}s; nothing was written",
                  file=sys.stderr)
        return EXIT_INTERRUPTED


# --------------------------------------------------------------------------- topology


_LAYER_COLUMNS = ("folds", "cycles_per_fold", "compute_cycles", "stall_cycles", "cycles", "scalesim_cycles", "macs",
                  "utilization", "mapping_efficiency", "sram_reads_ifmap", "sram_reads_filter", "sram_reads",
                  "sram_writes", "dram_reads", "dram_writes", "dram_bytes")
_SUMMED = ("folds", "compute_cycles", "stall_cycles", "cycles", "scalesim_cycles", "macs", "sram_reads_ifmap",
           "sram_reads_filter", "sram_reads", "sram_writes", "dram_reads", "dram_writes", "dram_bytes", "seconds")


def _run_topology(args: argparse.Namespace, config: ChipConfig, engine: str) -> int:
    layers = read_topology(args.topology)
    if args.output is not None:
        _check_writable(args.output, "--output")
    progress = _topology_guard(args, layers, config, engine)
    rows, records, status = [], [], EXIT_OK
    for layer in layers:
        try:
            _mapping(layer.m, layer.k, layer.n, config, names=("M", "K", "N"))
        except (UsageError, ValueError) as exc:
            raise UsageError(f"{args.topology}:{layer.line}: layer {layer.name!r}: {exc}") from None
        check = None
        if engine == "analytic":
            stats = analyze(layer.m, layer.k, layer.n, config, layer.a_layout)
        else:
            stats, check, _ = _run_cycle(layer.m, layer.k, layer.n, config, args.seed, None, progress, layer.a_layout)
            status = max(status, _check_status(check))
        row = {"layer": layer.name, "m": layer.m, "k": layer.k, "n": layer.n}
        if layer.conv is not None:  # a convolution row: its output size and the convention that gave it
            row.update(ofmap_h=layer.conv.out_h, ofmap_w=layer.conv.out_w, output_size=CONVENTION)
        row.update(_flat(stats))
        if check is not None:
            row["max_abs_error"] = check["max_abs_error"]
        rows.append(row)
        conv = None if layer.conv is None else {"ofmap_h": layer.conv.out_h, "ofmap_w": layer.conv.out_w,
                                                "output_size": CONVENTION, "sparsity": layer.sparsity}
        records.append({"layer": layer.name, "line": layer.line, **stats.to_dict(), "check": check, "conv": conv})
    progress.close()
    total = _total_row(rows, config)
    if args.json:
        text = _to_json({"topology": args.topology, "engine": engine, "config": _config_dict(config),
                         "output_size": CONVENTION if any(r["conv"] for r in records) else None,
                         "layers": records, "total": total})
        _emit(text + "\n", args.output)
    else:
        conv_columns = ["ofmap_h", "ofmap_w", "output_size"] if any("ofmap_h" in r for r in rows) else []
        columns = ["layer", "m", "k", "n", *conv_columns, *_LAYER_COLUMNS, "seconds", *_energy_columns(rows)]
        if engine == "cycle":
            columns.append("max_abs_error")
        _emit(_csv_text(columns, rows + [total]), args.output)
    if args.output is not None:
        print(f"wrote the report of {len(rows)} layer{'s' * (len(rows) != 1)} and their total to {args.output}")
    return status


def _topology_guard(args: argparse.Namespace, layers, config: ChipConfig, engine: str) -> _Progress:
    """Every layer's shape checked before any runs (an error names the file and line); with the cycle engine,
    the whole file's time and memory estimated and guarded (_guard_long_run); the progress over all folds."""
    folds = 0
    for layer in layers:
        try:
            folds += _mapping(layer.m, layer.k, layer.n, config, names=("M", "K", "N")).folds
        except (UsageError, ValueError) as exc:
            raise UsageError(f"{args.topology}:{layer.line}: layer {layer.name!r}: {exc}") from None
    if engine != "cycle":
        return _Progress(folds, "fold", False)
    costs = [_gemm_cost(layer.m, layer.k, layer.n, config) for layer in layers]
    what = f"this cycle-accurate run of the {len(layers)} layers of {args.topology}"
    work = f"{folds:,} folds on a {config.rows}x{config.cols} array"
    shown = _guard_long_run(args, sum(c[0] for c in costs), max(c[1] for c in costs), work, what, _ANALYTIC_INSTEAD)
    return _Progress(folds, "fold", shown)


def _flat(stats: GemmStats) -> dict:
    d = stats.to_dict()
    row = {name: d[name] for name in _LAYER_COLUMNS}
    row["seconds"] = d["seconds"]
    row.update({f"energy_{part}_pj": value for part, value in d["energy_pj"].items()})
    return row


def _energy_columns(rows: list[dict]) -> list[str]:
    """energy_<part>_pj for every part any layer reports (mac, register, sram, dram, ...), total last."""
    names = dict.fromkeys(name for row in rows for name in row if name.startswith("energy_"))
    names.pop("energy_total_pj", None)
    return [*names, "energy_total_pj"]


def _total_row(rows: list[dict], config: ChipConfig) -> dict:
    """Sums of the counters; utilisation and mapping efficiency re-derived from the sums."""
    total = {"layer": "total"}
    for name in (*_SUMMED, *_energy_columns(rows)):
        total[name] = sum(row.get(name, 0.0) for row in rows)
    total["utilization"] = total["macs"] / (total["cycles"] * config.pes)
    total["mapping_efficiency"] = sum(r["mapping_efficiency"] * r["folds"] for r in rows) / total["folds"]
    if rows and "max_abs_error" in rows[0]:
        total["max_abs_error"] = max(r["max_abs_error"] for r in rows)
    return total


def _csv_text(columns: list[str], rows: list[dict]) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: format(v, ".12g") if isinstance(v, float) else v for k, v in row.items()})
    return buffer.getvalue()


def _emit(text: str, path: str | None) -> None:
    if path is None:
        sys.stdout.write(text)
        return
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    except OSError as exc:
        raise UsageError(f"argument --output: cannot write {path!r}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- output


def _config_dict(config: ChipConfig) -> dict:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "energy"} | {
        "energy": dataclasses.asdict(config.energy)}


def _finite(value):
    """JSON-safe: NaN and ±inf become null (e.g. arithmetic intensity with no DRAM traffic)."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _to_json(record: dict) -> str:
    return json.dumps(_finite(record), allow_nan=False)


_ENERGY_NAMES = {"mac": "MACs", "register": "registers", "sram": "SRAM", "dram": "DRAM", "vector": "vector unit"}


def _si(value: float, unit: str) -> str:
    """1234.5 pJ -> '1.23 nJ'; 0.000012 s -> '12.0 µs'."""
    if unit == "pJ":
        scales = ((1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ"), (1.0, "pJ"))
    else:
        scales = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))
    for scale, name in scales:
        if abs(value) >= scale:
            return f"{value / scale:.3g} {name}"
    return f"{value / scales[-1][0]:.3g} {scales[-1][1]}"


def _gemm_report(s: GemmStats, mapping: Mapping, config: ChipConfig, check: dict | None, trace: dict | None) -> str:
    pes = config.pes
    e = s.energy_pj
    flow = config.flow
    lines = [
        f"GEMM C = A·B with A {s.m}×{s.k}, B {s.k}×{s.n}, C {s.m}×{s.n}: {s.macs:,} MACs",
        f"chip        {config.rows}×{config.cols} PEs, {flow.name} ({config.dataflow}), "
        f"{config.precision}, {config.clock_mhz:g} MHz",
        f"dataflow    {flow.rows} on the rows, {flow.cols} on the columns, {flow.streamed} streamed in time; "
        f"{flow.stationary} stays in the PEs; {flow.cycles_per_fold_formula} cycles per fold",
        f"memory      SRAM ifmap {config.ifmap_sram_kib:g} KiB, filter {config.filter_sram_kib:g} KiB, "
        f"ofmap {config.ofmap_sram_kib:g} KiB; DRAM {config.dram_bytes_per_cycle:g} bytes/cycle",
    ]
    if check is None:
        lines.append("engine      analytic (closed forms; no data)")
    else:
        verdict = "matches" if check["ok"] else "DIFFERS FROM"
        bound = "exact" if config.precision == "int8" else f"float32 rounding bound {check['max_bound']:.3g}"
        lines.append(f"engine      cycle-accurate, random A and B (seed {check['seed']}): C {verdict} numpy, "
                     f"max abs error {check['max_abs_error']:.3g} ({bound})")
    lines += [
        f"mapping     {mapping.describe()}",
        f"            mapping efficiency {s.mapping_efficiency:.1%} (share of PEs a fold maps work to, on average)",
        f"cycles      {s.cycles:,} = {s.folds:,} folds × {s.cycles_per_fold:,} + {s.stall_cycles:,} stall cycles; "
        f"SCALE-Sim reports {s.scalesim_cycles:,} (it counts from 0)",
        f"time        {_si(s.seconds, 's')} at {config.clock_mhz:g} MHz",
        f"utilisation {s.utilization:.1%} of PE-cycles do a MAC (SCALE-Sim's overall utilisation "
        f"{s.scalesim_utilization:.1%})",
        f"SRAM        reads {s.sram_reads:,} (ifmap {s.sram_reads_ifmap:,}, filter {s.sram_reads_filter:,}), "
        f"writes {s.sram_writes:,}" + (f" (SCALE-Sim counts {s.scalesim_sram_writes:,})"
                                       if s.scalesim_sram_writes != s.sram_writes else ""),
        f"DRAM        reads {s.dram_reads:,}, writes {s.dram_writes:,} elements = {s.dram_bytes:,} bytes",
        f"stalls      {s.stall_cycles:,} cycles waiting for DRAM",
        f"energy      {_si(e['total'], 'pJ')}: " + ", ".join(
            f"{_ENERGY_NAMES.get(key, key)} {_si(e[key], 'pJ')}"
            + (f" ({e[key] / e['total']:.0%})" if e["total"] else "")
            for key in e if key != "total"),
    ]
    intensity = s.arithmetic_intensity
    ai = f"{intensity:.3g} MACs per DRAM byte" if math.isfinite(intensity) else "unbounded (no DRAM traffic)"
    bound = "memory-bound" if s.attainable_macs_per_cycle < pes else "compute-bound"
    share = s.achieved_macs_per_cycle / s.attainable_macs_per_cycle if s.attainable_macs_per_cycle else 0.0
    lines += [
        f"roofline    arithmetic intensity {ai}",
        f"            attainable min({pes} PEs, intensity × {config.dram_bytes_per_cycle:g} B/cycle) = "
        f"{s.attainable_macs_per_cycle:.3g} MACs/cycle ({bound}); achieved {s.achieved_macs_per_cycle:.3g} "
        f"MACs/cycle ({share:.0%} of attainable)",
    ]
    if trace is not None:
        lines.append(f"trace       cycles {trace['start']:,}..{trace['start'] + trace['cycles'] - 1:,} "
                     f"({trace['bytes'] / 2**20:.1f} MiB in memory) saved to {trace['path']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- train

_TRAIN_DEFAULTS = {"dataset": "digits", "activation": "relu", "optimizer": "adam", "lr": 0.01, "batch_size": 32,
                   "seed": 0, "noise": 0.0, "samples": 400, "loss": "cross_entropy", "engine": "analytic"}
# TrainSettings field -> the option that sets it, so its error messages name the option.
_TRAIN_OPTIONS = {
    "dataset": "--dataset", "hidden": "--layers", "activation": "--activation", "loss": "--loss",
    "optimizer": "--optimizer", "lr": "--lr", "batch_size": "--batch-size", "seed": "--seed", "engine": "--engine",
    "noise": "--noise", "n_samples": "--samples", "mnist_dir": "--mnist-dir",
}


def _add_train(subparsers) -> None:
    from .data import DATASETS
    from .nn.activations import ACTIVATIONS
    from .nn.losses import LOSSES
    from .nn.optimizers import OPTIMIZERS

    p = subparsers.add_parser(
        "train", help="train an MLP whose every matrix multiply runs on the chip",
        description="Train an MLP on the simulated chip and report accuracy, cycles, utilisation and energy. "
                    "With --load, the saved run continues with its own settings.")
    net = p.add_argument_group("network and training")
    net.add_argument("--dataset", choices=DATASETS, help="default digits (8×8 handwritten digits, shipped)")
    net.add_argument("--layers", metavar="W,W,...", help="an MLP: widths from input to output, e.g. 64,32,10 "
                     "(0 to 4 hidden layers of 1..512); or a CNN on the square image inputs: layers after the "
                     "input, ending with the output width, e.g. conv3x3x8,pool2,10. Layers: conv<h>x<w>x<filters> "
                     "(3x3 kernel, stride 1, padding same), with s<stride> and same|valid after it "
                     "(conv5x5x16s2valid) and optionally the input channels (conv3x3x1x8); pool<p> or maxpool<p>, "
                     "avgpool<p> (p x p windows, stride p); flatten (added before the first dense width if left "
                     "out); a number: a dense layer. A leading HxWxC (8x8x1) states the input shape. At most 8 "
                     "layers between input and output. Default: the dataset's inputs, 32, its classes")
    net.add_argument("--activation", choices=ACTIVATIONS, help="hidden-layer activation (default relu)")
    net.add_argument("--loss", choices=LOSSES, help="default cross_entropy")
    net.add_argument("--optimizer", choices=OPTIMIZERS, help="default adam")
    net.add_argument("--lr", type=_number, help="learning rate (default 0.01)")
    net.add_argument("--batch-size", type=_integer, help="default 32")
    net.add_argument("--epochs", type=_integer, default=10, help="epochs to train (default 10)")
    net.add_argument("--seed", type=_integer, help="default 0")
    net.add_argument("--noise", type=_number, help="noise of the 2-D toy sets (default 0)")
    net.add_argument("--samples", type=_integer, help="points in a 2-D toy set (default 400)")
    net.add_argument("--mnist-dir", help="folder with MNIST's four IDX files (for --dataset mnist)")
    net.add_argument("--engine", choices=ENGINES,
                     help="analytic (fast, default) or cycle (every value moved register by register)")
    _add_chip_options(p)
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    out.add_argument("--save", metavar="FILE.npz", help="save the run (settings, weights, optimizer, metrics)")
    out.add_argument("--load", metavar="FILE.npz", help="continue a saved run")
    out.add_argument("--quiet", action="store_true", help="no progress lines")
    _add_long_run_options(out, "cycle-accurate training run")
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from .nn.runfile import CustomDataNeeded, load_run, save_run
    from .nn.trainer import Diverged

    if args.save:
        _check_writable(args.save, "--save")
    epochs = args.epochs
    if not 1 <= epochs <= 100_000:
        raise UsageError(f"argument --epochs: must be a whole number from 1 to 100000, got {epochs}")
    given = {k: getattr(args, k) for k in (*_TRAIN_DEFAULTS, "layers") if getattr(args, k) is not None}
    if args.load:
        chip_given = [o for o, f in (("--array", "array"), *((o, f) for f, o in _CHIP_OPTIONS.items()))
                      if getattr(args, f) is not None]
        if given or chip_given:
            option = f"--{next(iter(given)).replace('_', '-')}" if given else chip_given[0]
            raise UsageError(f"--load continues a saved run with its own settings and chip; drop {option}")
        try:
            trainer = load_run(args.load, mnist_dir=args.mnist_dir)
        except CustomDataNeeded as exc:
            raise UsageError(f"{exc.path}: this run was trained on custom data ({exc.trained_on}), which the "
                             f"command line cannot supply; continue it in Python with "
                             f"chipviz.nn.runfile.load_run(path, data=...)") from None
    else:
        values = {**_TRAIN_DEFAULTS, **given}
        chip = _chip_config(args)  # its precision (--precision) is the run's number format
        settings = _train_settings(values, args)
        trainer = _trainer(settings, chip)
        _check_layers(values.get("layers"), trainer)
    if trainer.diverged:
        raise UsageError(f"the saved run had diverged ({trainer.diverged}); start a new one")
    steps = _train_guard(args, trainer, epochs)

    def progress(epoch, loss, acc):
        if not args.quiet:
            print(f"epoch {epoch:>4}  step {trainer.step_count:>6}  train loss {trainer.last.loss:.4f}  "
                  f"test loss {loss:.4f}  test accuracy {acc:.1%}", file=sys.stderr, flush=True)

    status = EXIT_OK
    try:
        trainer.fit(epochs, on_epoch=progress)
    except Diverged as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        status = EXIT_CHECK_FAILED
    test_loss, test_acc = trainer.evaluate("test")
    steps.close()
    if args.save:
        save_run(trainer, args.save)
    summary = _train_summary(trainer, test_loss, test_acc)
    print(_to_json(summary) if args.json else _train_report(summary))
    return status


def _train_guard(args: argparse.Namespace, trainer, epochs: int) -> _Progress:
    """Before a cycle-accurate training run: its time estimated from the network's GEMMs on this chip and
    guarded like a GEMM's (_guard_long_run); the progress over its steps, shown for a long run."""
    steps = epochs * trainer.steps_per_epoch
    if trainer.settings.engine != "cycle":
        return _Progress(steps, "step", False)
    seconds, cycles = _train_cost(trainer, epochs)
    chip = trainer.chip
    what = (f"this cycle-accurate training run ({epochs:,} epochs of {trainer.steps_per_epoch:,} steps, batch "
            f"{trainer.settings.batch_size}, on a {chip.rows}x{chip.cols} array)")
    work = f"{cycles:.3g} chip cycles × {chip.pes:,} PEs, from the analytic model"
    shown = _guard_long_run(args, seconds, None, work, what, "or use --engine analytic, which counts the same chip "
                                                              "cycles at once")
    progress = _Progress(steps, "step", shown)
    if shown:
        step = trainer.step

        def counted_step():  # fit() calls self.step(): counted here, the trainer unchanged
            report = step()
            progress.advance(progress.done + 1)
            return report

        trainer.step = counted_step
    return progress


def _train_cost(trainer, epochs: int) -> tuple[float, int]:
    """(seconds, chip compute cycles) of `epochs` cycle-accurate epochs and the final evaluation: the GEMM shapes
    of one step, taken from a step of a throwaway copy on the analytic engine; each epoch's evaluation runs the
    forward GEMMs on the whole test split (M scales with the batch)."""
    from .nn.phases import FORWARD
    from .nn.trainer import Diverged, Trainer

    probe = Trainer(dataclasses.replace(trainer.settings, engine="analytic"), trainer.chip, data=trainer.raw_data)
    try:
        probe.step()
    except Diverged:
        pass  # the GEMMs it ran are logged all the same
    chip, batch, tests = trainer.chip, trainer.settings.batch_size, len(trainer.data.x_test)
    gemms = [op.stats for op in probe.runner.ops if op.is_gemm]
    evaluation = [(-(-s.m * tests // batch), s.k, s.n) for op, s in
                  ((op, op.stats) for op in probe.runner.ops if op.is_gemm) if op.phase == FORWARD.id]
    shapes = [(s.m, s.k, s.n, epochs * trainer.steps_per_epoch) for s in gemms]
    shapes += [(m, k, n, epochs + 1) for m, k, n in evaluation]
    seconds, cycles = 0.0, 0
    for m, k, n, times in shapes:
        mapping = Mapping.of(m, k, n, chip)
        seconds += times * estimate_seconds(mapping, chip)
        cycles += times * mapping.folds * mapping.cycles_per_fold
    return seconds, cycles


def _train_settings(values: dict, args: argparse.Namespace):
    """Validated TrainSettings from the options; its ValueError names the option, as typed."""
    from .nn.trainer import TrainSettings

    if values["dataset"] == "mnist" and args.mnist_dir is None:
        raise UsageError("--dataset mnist needs --mnist-dir DIR, the folder holding MNIST's four IDX files "
                         "(ChipViz never downloads them)")
    if args.mnist_dir is not None and not os.path.isdir(args.mnist_dir):
        raise UsageError(f"argument --mnist-dir: {args.mnist_dir!r} is not a folder")
    hidden = _hidden_from_layers(values.get("layers"))
    try:
        return TrainSettings(
            dataset=values["dataset"], activation=values["activation"], loss=values["loss"],
            optimizer=values["optimizer"], lr=values["lr"], batch_size=values["batch_size"], seed=values["seed"],
            engine=values["engine"], noise=values["noise"], n_samples=values["samples"], mnist_dir=args.mnist_dir,
            hidden=hidden)
    except ValueError as exc:
        raise UsageError(_as_typed(str(exc), _TRAIN_OPTIONS)) from None


_INPUT_SHAPE = re.compile(r"\s*\d+x\d+x\d+\s*", re.IGNORECASE)


_CNN_TOKEN = re.compile(r"\s*(conv|pool|maxpool|avgpool|flatten|\d+x\d+x\d+)", re.IGNORECASE)


def _is_cnn_description(text: str) -> bool:
    """Does --layers describe a CNN (a conv, pool or flatten layer, or an input shape HxWxC)?"""
    return any(_CNN_TOKEN.match(t) for t in text.split(","))


def _cnn_layers(text: str) -> tuple:
    """The hidden layers of a CNN description (the leading input shape, if any, and the output width dropped)."""
    from .nn.conv import MAX_LAYERS, LayerError, parse_layer

    tokens = [t.strip() for t in text.split(",")]
    if _INPUT_SHAPE.fullmatch(tokens[0]):
        if any(int(v) == 0 for v in tokens[0].lower().split("x")):
            raise UsageError(f"argument --layers: input shape {tokens[0]} has a zero side")
        tokens = tokens[1:]
    if not tokens or not tokens[-1].isdigit():
        raise UsageError(f"argument --layers: a CNN ends with the output width (the number of classes), e.g. "
                         f"conv3x3x8,pool2,10; got {text!r}")
    hidden = tokens[:-1]
    if len(hidden) > MAX_LAYERS:
        raise UsageError(f"argument --layers: at most {MAX_LAYERS} layers between the input and the output, got "
                         f"{len(hidden)} in {text!r}")
    for number, token in enumerate(tokens, 1):
        try:
            parse_layer(token)
        except LayerError as exc:
            raise UsageError(f"argument --layers: layer {number} ({token}): {exc}") from None
    return tuple(int(t) if t.isdigit() else t for t in hidden)


def _hidden_from_layers(text: str | None) -> tuple:
    """The hidden widths of --layers (the input and output widths are checked against the data later), or
    a CNN's hidden layer tokens."""
    from .nn.network import MAX_HIDDEN_LAYERS, MAX_WIDTH

    if text is None:
        return (32,)
    if _is_cnn_description(text):
        return _cnn_layers(text)
    try:
        if not all(_WHOLE.fullmatch(w) for w in text.split(",")):  # ASCII digits only, as every number option
            raise ValueError(text)
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise UsageError(f"argument --layers: must be whole numbers separated by commas, e.g. 64,32,10 (or a CNN's "
                         f"layers, e.g. conv3x3x8,pool2,10), got {text!r}")
    if len(widths) < 2:
        raise UsageError(f"argument --layers: give at least the input and output widths, got {text!r}")
    hidden = widths[1:-1]
    if len(hidden) > MAX_HIDDEN_LAYERS:
        raise UsageError(f"argument --layers: at most {MAX_HIDDEN_LAYERS} hidden layers between the input and the "
                         f"output, got {len(hidden)} in {text!r}")
    for width in hidden:
        if not 1 <= width <= MAX_WIDTH:
            raise UsageError(f"argument --layers: each hidden width must be a whole number from 1 to {MAX_WIDTH}, "
                             f"got {width} in {text!r}")
    return hidden


def _trainer(settings, chip):
    """The Trainer; a layer that cannot be built on the data is a usage error naming it."""
    from .nn.conv import LayerError
    from .nn.trainer import Trainer

    try:
        return Trainer(settings, chip)
    except LayerError as exc:
        raise UsageError(f"argument --layers: {exc}") from None


def _check_layers(text: str | None, trainer) -> None:
    if text is None:
        return
    if _is_cnn_description(text):
        tokens = [t.strip().lower() for t in text.split(",")]
        shape = "x".join(map(str, trainer.net.input_shape))
        if _INPUT_SHAPE.fullmatch(tokens[0]) and tokens[0] != shape:
            raise UsageError(f"argument --layers: input shape {tokens[0]} does not match {trainer.data.name}'s "
                             f"{shape} images")
        outputs = trainer.net.layers[-1].out_shape[0]
        if int(tokens[-1]) != outputs:
            raise UsageError(f"argument --layers: {trainer.data.name} needs {outputs} outputs, the last width; "
                             f"got {tokens[-1]} in {text}")
        return
    widths = tuple(int(w) for w in text.split(","))
    actual = trainer.net.sizes
    if (widths[0], widths[-1]) != (actual[0], actual[-1]):
        raise UsageError(f"argument --layers: {trainer.data.name} needs {actual[0]} inputs and {actual[-1]} "
                         f"outputs, e.g. {actual[0]},32,{actual[-1]}; got {text}")


def _train_summary(trainer, test_loss: float, test_acc: float) -> dict:
    totals = trainer.totals
    cycles = sum(p["cycles"] for p in totals.values())
    macs = sum(p["macs"] for p in totals.values())
    parts = ("mac", "register", "sram", "dram", "vector")
    energy = {phase: {part: t[part] for part in parts} | {"total": sum(t[part] for part in parts)}
              for phase, t in totals.items()}
    return {
        "test_accuracy": test_acc, "test_loss": test_loss,
        "train_loss": trainer.last.loss if trainer.last else None,
        "steps": trainer.step_count, "epochs": trainer.epoch + (trainer.position >= len(trainer.order)),
        "cycles": cycles, "macs": macs, "utilization": macs / (cycles * trainer.chip.pes) if cycles else 0.0,
        "seconds": sum(p["seconds"] for p in totals.values()),
        "energy_pj": {"total": sum(e["total"] for e in energy.values()), "by_phase": energy},
        "phases": {phase: {"cycles": t["cycles"], "macs": t["macs"],
                           "utilization": t["macs"] / (t["cycles"] * trainer.chip.pes) if t["cycles"] else 0.0}
                   for phase, t in totals.items()},
        "layers": list(trainer.net.sizes), "settings": trainer.settings.to_dict(),
        "chip": _config_dict(trainer.chip), "diverged": str(trainer.diverged) if trainer.diverged else None,
    }


def _train_report(s: dict) -> str:
    chip = s["chip"]
    lines = [
        f"{s['settings']['dataset']}: {'MLP' if all(str(w).isdigit() for w in s['layers']) else 'CNN'} "
        f"{'-'.join(map(str, s['layers']))}, {s['settings']['optimizer']} "
        f"lr {s['settings']['lr']:g}, batch {s['settings']['batch_size']}, {chip['precision']}, "
        f"on a {chip['rows']}×{chip['cols']} {chip['dataflow']} array at {chip['clock_mhz']:g} MHz",
        f"test accuracy {s['test_accuracy']:.1%}   test loss {s['test_loss']:.4f}   "
        f"train loss {s['train_loss']:.4f}   steps {s['steps']:,}",
        f"chip: {s['cycles']:,} cycles ({_si(s['seconds'], 's')} at the clock), {s['macs']:,} MACs, "
        f"utilisation {s['utilization']:.1%}, energy {_si(s['energy_pj']['total'], 'pJ')}",
        "",
        f"{'phase':<18} {'cycles':>14} {'utilisation':>12} {'energy':>12}",
    ]
    for phase, p in s["phases"].items():
        lines.append(f"{phase:<18} {p['cycles']:>14,} {p['utilization']:>12.1%} "
                     f"{_si(s['energy_pj']['by_phase'][phase]['total'], 'pJ'):>12}")
    if s["diverged"]:
        lines += ["", s["diverged"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------- animate

# `animate` draws one GEMM's trace headless (chipviz.animation, Pillow): cycles START..STOP-1 as a looping GIF, or
# one cycle as a PNG or SVG picture, for slides. It runs the cycle engine as `gemm --trace` does (_run_cycle),
# recording only the cycles drawn, after checking the window against the GIF's bounds and the trace budget.
_ANIMATION_FORMATS = (".gif", ".png", ".svg")


def _add_animate(subparsers) -> None:
    p = subparsers.add_parser(
        "animate", help="draw a GEMM's cycles as an animated GIF, or one cycle as a PNG or SVG (for slides)",
        description="Run one GEMM C = A·B (random A and B) on the cycle-accurate engine and draw what every PE does, "
                    "headless: cycles START..STOP-1 as a looping animated GIF, one frame a cycle, or one cycle as a "
                    "PNG or SVG picture. Cycles are numbered from 0 here, as in --trace-window; the pictures "
                    "number them from 1, as the dashboard does.")
    shape = p.add_argument_group("workload")
    shape.add_argument("--m", type=_integer, required=True, metavar="M", help="rows of A and C (e.g. the batch)")
    shape.add_argument("--k", type=_integer, required=True, metavar="K",
                       help="columns of A, rows of B (the reduction)")
    shape.add_argument("--n", type=_integer, required=True, metavar="N",
                       help="columns of B and C (e.g. output features)")
    _add_chip_options(p)
    out = p.add_argument_group("output")
    out.add_argument("--out", required=True, metavar="FILE",
                     help="FILE.gif: an animated GIF of --cycles; FILE.png or FILE.svg: the picture of --cycle")
    out.add_argument("--cycles", metavar="START:STOP",
                     help=f"the GIF's cycles START..STOP-1 (default: the whole GEMM, if a GIF holds it: at most "
                          f"{animation_limits.MAX_GIF_FRAMES} frames, fewer for large arrays)")
    out.add_argument("--cycle", type=_integer, metavar="C", help="the cycle a PNG or SVG shows (default: the middle "
                                                                 "one)")
    out.add_argument("--fps", type=_integer, metavar="N",
                     help=f"the GIF's frames (cycles) per second, 1..{animation_limits.MAX_FPS} "
                          f"(default {animation_limits.DEFAULT_FPS})")
    out.add_argument("--title", help="the picture's first line (default: the GEMM's shape and the chip)")
    p.set_defaults(run=_run_animate)


def _run_animate(args: argparse.Namespace) -> int:
    from . import animation  # Pillow and the drawing code load only when something is drawn

    config = _chip_config(args)
    path = args.out
    kind = os.path.splitext(path)[1].lower()
    if kind not in _ANIMATION_FORMATS:
        raise UsageError(f"argument --out: must end in .gif (animated), .png or .svg (one cycle), got {path!r}")
    if kind == ".gif" and args.cycle is not None:
        raise UsageError("argument --cycle: chooses the cycle of a PNG or SVG; a GIF's cycles are --cycles START:STOP")
    for option, value in (("--cycles", args.cycles), ("--fps", args.fps)):
        if kind != ".gif" and value is not None:
            raise UsageError(f"argument {option}: only for a GIF; a {kind[1:].upper()} shows one cycle, chosen with "
                             f"--cycle C")
    fps = animation.DEFAULT_FPS if args.fps is None else args.fps
    if not 1 <= fps <= animation.MAX_FPS:
        raise UsageError(f"argument --fps: must be a whole number from 1 to {animation.MAX_FPS}, got {fps}")
    if args.title is not None and "\n" in args.title:
        raise UsageError(f"argument --title: must be one line, got {args.title!r}")
    _check_writable(path, "--out")
    mapping = _mapping(args.m, args.k, args.n, config)
    total = analyze(args.m, args.k, args.n, config).cycles
    title = args.title if args.title is not None else (
        f"GEMM M={args.m} K={args.k} N={args.n} on a {config.rows}×{config.cols} {config.dataflow} array "
        f"({config.flow.name}), {config.precision}")
    drawing = {"total_cycles": total, "n_folds": mapping.folds, "title": title}
    try:
        width, height = animation.frame_size(config.rows, config.cols, config.dataflow, **drawing)
    except animation.AnimationTooLarge as exc:
        raise UsageError(f"argument --array: {exc}") from None
    if kind == ".gif":
        # the trace of the window must fit its budget too: a GIF's limit takes the lower of the two
        most = tr.DEFAULT_BUDGET_BYTES // tr.bytes_per_cycle(config.rows, config.cols, config.dataflow)
        bounds = {"rows": config.rows, "cols": config.cols, "dataflow": config.dataflow, "option": "--cycles",
                  "max_frames": most, **drawing}
        try:
            if args.cycles is None:
                animation.check_gif_window(0, total, **bounds)
            start, stop = _trace_window(args.cycles, total, config, option="--cycles")
            animation.check_gif_window(start, stop, **bounds)
        except animation.AnimationTooLarge as exc:
            raise UsageError(f"argument --cycles: {exc}" if args.cycles is not None else str(exc)) from None
    else:
        start = total // 2 if args.cycle is None else args.cycle
        if not 0 <= start < total:
            raise UsageError(f"argument --cycle: must be a cycle of this run, 0 to {total - 1}, got {start}")
        stop = start + 1
    _, check, trace = _run_cycle(args.m, args.k, args.n, config, 0, (start, stop))
    drawing = {"total_cycles": total, "title": title}
    what = f"cycle {start} of this run's 0..{total - 1:,}"
    if kind == ".gif":
        data = animation.gif(trace, start, stop, fps=fps, **drawing)
        what = f"{stop - start:,} frames, cycles {start}:{stop} of this run's {total:,}, at {fps} fps"
    elif kind == ".png":
        data = animation.frame_png(trace, start, **drawing)
    else:
        data = animation.frame_svg(trace, start, **drawing).encode()
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise UsageError(f"argument --out: cannot write {path!r}: {exc.strerror or exc}") from None
    size = f"{len(data) / 2**20:.1f} MiB" if len(data) >= 2**20 else f"{len(data) / 1024:.1f} KiB"
    print(f"wrote {path}: {what}, {width}×{height} px, {size}")
    return _check_status(check)


# --------------------------------------------------------------------------- serve

# `serve` runs `python -m panel serve` on the folder of chipviz.app, a Bokeh directory app whose script is
# chipviz/app/main.py: Panel names the route after the folder, so the page is at /app, as with `panel serve
# app.py` in a checkout. This module never imports panel, bokeh or chipviz.app (pyproject.toml's import
# contract): it finds the folder with importlib and hands the command to Panel's own entry point (run_server).
APP_PACKAGE = "chipviz.app"
APP_ROUTE = "/app"
DEFAULT_PORT = 5006  # panel serve's
_HOST_NAME = re.compile(r"[A-Za-z0-9_*](?:[A-Za-z0-9_.*-]*[A-Za-z0-9_*])?")  # a host name, or a pattern with *


def _add_serve(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help=f"serve the dashboard in the browser (panel serve), at http://localhost:{DEFAULT_PORT}/app",
        description="Serve the ChipViz dashboard from the installed package with Panel, at "
                    f"http://ADDRESS:PORT{APP_ROUTE}; every browser tab gets its own training session. "
                    "Ctrl-C stops the server.")
    p.add_argument("--port", type=_integer, default=None,
                   help=f"port to listen on, 1..65535 (default {DEFAULT_PORT})")
    p.add_argument("--address", default=None,
                   help="address to listen on, an IP address or a host name, e.g. 127.0.0.1 "
                        "(default: every interface)")
    p.add_argument("--allow-websocket-origin", action="append", default=None, metavar="HOST[:PORT]",
                   help="a host the page may be opened from, as the browser's address bar names it, "
                        "e.g. chipviz.example.org:443 (a HOST alone means port 80, * matches anything); "
                        "repeat for several (default: localhost:PORT)")
    p.add_argument("--num-procs", type=_integer, default=None, metavar="N",
                   help="server processes sharing the port, each with its own tabs (default 1)")
    p.add_argument("--mnist-dir", default=None, metavar="DIR",
                   help="folder with MNIST's four IDX files: the dashboard then offers MNIST and the seed article's "
                        "784-64-64-10 network (sets CHIPVIZ_MNIST_DIR for the server)")
    p.set_defaults(run=_run_serve)


def serve_command(args: argparse.Namespace) -> list[str]:
    """The validated command `chipviz serve` runs: `python -m panel serve <chipviz/app> [options]`.

    Raises UsageError, naming the option, for a bad value; starts nothing.
    """
    command = [sys.executable, "-m", "panel", "serve", str(app_folder())]
    if args.port is not None:
        if not 1 <= args.port <= 65535:
            raise UsageError(f"argument --port: must be a whole number from 1 to 65535, got {args.port}")
        command += ["--port", str(args.port)]
    if args.address is not None:
        command += ["--address", _address(args.address)]
    for origin in args.allow_websocket_origin or ():
        command += ["--allow-websocket-origin", _origin(origin)]
    if args.num_procs is not None:
        if args.num_procs < 1:
            raise UsageError(f"argument --num-procs: must be a whole number >= 1, got {args.num_procs}")
        command += ["--num-procs", str(args.num_procs)]
    return command


def app_folder() -> str:
    """The installed chipviz/app folder (holding main.py), found without importing chipviz.app."""
    spec = importlib.util.find_spec(APP_PACKAGE)
    folders = list(spec.submodule_search_locations or ()) if spec is not None else []
    for folder in folders:
        if os.path.isfile(os.path.join(folder, "main.py")):
            return os.path.abspath(folder)
    raise UsageError(f"cannot find the dashboard ({APP_PACKAGE.replace('.', '/')}/main.py) in the installed "
                     f"package; reinstall chipviz")


def _address(text: str) -> str:
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if not (_HOST_NAME.fullmatch(text) and "*" not in text):
        raise UsageError(f"argument --address: must be an IP address or a host name, e.g. 127.0.0.1 or "
                         f"localhost, got {text!r}")
    return text


def _origin(text: str) -> str:
    """HOST[:PORT] as Bokeh's allowlist reads it (one colon at most: no URL, no bare IPv6 address)."""
    host, colon, port = text.partition(":")
    if "://" in text or "/" in text:
        problem = "give the host without http:// or a path"
    elif not _HOST_NAME.fullmatch(host):
        problem = "the host must be a host name or IP address"
    elif colon and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        problem = "the port must be a whole number from 1 to 65535"
    else:
        return text
    raise UsageError(f"argument --allow-websocket-origin: must look like HOST[:PORT], e.g. localhost:5006 "
                     f"({problem}), got {text!r}")


def _run_serve(args: argparse.Namespace) -> int:
    command = serve_command(args)
    if getattr(args, "mnist_dir", None) is not None:
        if not os.path.isdir(args.mnist_dir):
            raise UsageError(f"argument --mnist-dir: {args.mnist_dir!r} is not a folder")
        from .data.mnist import load_mnist

        try:  # read it once now, so a wrong folder is reported here and not in every tab
            load_mnist(args.mnist_dir)
        except (OSError, ValueError) as exc:
            raise UsageError(f"argument --mnist-dir: {exc}") from None
        os.environ["CHIPVIZ_MNIST_DIR"] = os.path.abspath(args.mnist_dir)
    return run_server(command)


def run_server(command: list[str]) -> int:
    """Become the server: run `python -m panel serve …` (the command from serve_command) in this process.
    Ctrl-C (SIGINT) and SIGTERM reach Panel itself, which shuts down cleanly, and its exit status is this
    command's; nothing sits in between to forward signals or to orphan a child. (Starting it in a second
    interpreter, or exec'ing one, would start Python and import numpy and the chip's modules twice: 0.2 s.)"""
    import runpy

    # Start-up makes about 150,000 objects the collector tracks, which live as long as the server, and each of
    # its full passes would walk them all (30-100 ms each, measured during start-up and the first pages):
    # the app's start-up hook moves them out of its way and turns it back on (chipviz/app/server_lifecycle.py).
    gc.disable()
    sys.argv = command[2:]  # as `python -m panel` sees them: ["panel", "serve", …]
    try:
        runpy.run_module(command[2], run_name="__main__", alter_sys=True)
    except SystemExit as exc:  # Panel's own exit, with its status (or a message: then status 1, as Python does)
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or EXIT_OK
        print(exc.code, file=sys.stderr)
        return 1
    finally:
        gc.enable()
    return EXIT_OK


def _add_sweep(subparsers) -> None:
    from .sweep.cli import add_parser  # light: numpy, Dask and pyarrow load only when a sweep runs

    add_parser(subparsers)


SUBCOMMANDS = [_add_gemm, _add_train, _add_animate, _add_serve, _add_sweep]

if __name__ == "__main__":
    sys.exit(main())
