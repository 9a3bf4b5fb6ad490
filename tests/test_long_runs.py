"""Runs that know their size (issue #16): a cycle-accurate run is estimated before it starts
(time from the engine's measured speed, memory against MemAvailable), refused above the limit
with the estimate and how to go on, shows progress when long, and stops cleanly on Ctrl-C."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from chipviz import cli
from chipviz.chip import ChipConfig, Mapping, estimate_seconds, simulate


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_gemm_refuses_a_long_cycle_run_up_front(capsys):
    began = time.perf_counter()
    code, out, err = run(capsys, "gemm", "--m", "4096", "--k", "4096", "--n", "4096", "--array", "256x256",
                         "--engine", "cycle")
    assert time.perf_counter() - began < 10  # refused before any simulation
    assert code == 2 and out == ""
    line = one_line(err)
    for text in ("would take about", "min", "PE-cycles", "--max-seconds 60 (the default)", "--yes",
                 "--engine analytic"):
        assert text in line, text
    mapping = Mapping.of(4096, 4096, 4096, ChipConfig(rows=256, cols=256))
    assert f"{mapping.folds * mapping.cycles_per_fold:,} cycles" in line


def test_a_higher_max_seconds_lets_the_estimate_through(capsys, monkeypatch):
    """--max-seconds above the estimate (or --yes) passes the guard: stopped here at the memory check instead."""
    monkeypatch.setattr(cli, "_memory_available", lambda: 2**20)
    for extra in (["--max-seconds", "100000"], ["--yes"]):
        code, _, err = run(capsys, "gemm", "--m", "4096", "--k", "4096", "--n", "4096", "--array", "256x256",
                           "--engine", "cycle", *extra)
        assert code == 2 and "MemAvailable" in one_line(err)


def test_memory_beyond_what_is_available_is_refused_even_with_yes(capsys, monkeypatch):
    monkeypatch.setattr(cli, "_memory_available", lambda: 2**30)
    code, out, err = run(capsys, "gemm", "--m", "8192", "--k", "4096", "--n", "4096", "--array", "256x256",
                         "--engine", "cycle", "--yes")
    assert code == 2 and out == ""
    line = one_line(err)
    assert "GiB of memory, more than the 1 GiB available" in line and "--engine analytic" in line


def test_memory_available_is_read_from_proc_meminfo():
    if not os.path.exists("/proc/meminfo"):
        pytest.skip("no /proc/meminfo here")
    with open("/proc/meminfo") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
    assert abs(cli._memory_available() - kib * 1024) < 2**30  # it moves a little between the two reads


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_max_seconds_must_be_a_positive_number(capsys, value):
    code, _, err = run(capsys, "gemm", "--m", "8", "--k", "8", "--n", "8", "--engine", "cycle", "--max-seconds", value)
    assert code == 2 and one_line(err).startswith("chipviz: error: argument --max-seconds: must be a number of "
                                                  "seconds > 0, got")


def test_a_long_run_shows_progress_and_reports_the_same(capsys, monkeypatch):
    shape = ["gemm", "--m", "40", "--k", "30", "--n", "20", "--array", "4x4", "--engine", "cycle", "--json"]
    code, quiet, err = run(capsys, *shape)
    assert code == 0 and err == ""
    monkeypatch.setattr(cli, "PROGRESS_SECONDS", 0.0)
    code, shown, err = run(capsys, *shape)
    assert code == 0 and "fold" in err and "%" in err  # tqdm's bar on stderr
    assert json.loads(shown) == json.loads(quiet)


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_chunked_run_equals_one_kernel_call(dataflow):
    """simulate(on_folds=...) runs the folds in chunks: same C, counters and trace (fold numbers too)."""
    config = ChipConfig(rows=3, cols=4, dataflow=dataflow, ifmap_sram_kib=1.0, dram_bytes_per_cycle=2.0)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((23, 17)).astype(np.float32)
    b = rng.standard_normal((17, 11)).astype(np.float32)
    whole_c, whole, whole_trace = simulate(a, b, config, trace_window=(5, 400))
    seen = []
    c, stats, trace = simulate(a, b, config, trace_window=(5, 400), on_folds=lambda d, t: seen.append((d, t)),
                               chunk_seconds=0.0)  # one fold per chunk
    assert np.array_equal(c, whole_c) and stats == whole
    for name in ("state", "stationary", "from_left", "from_top", "psum", "fold", "left_in", "top_in", "bottom_out"):
        assert np.array_equal(getattr(trace, name), getattr(whole_trace, name)), name
    assert seen == [(d, stats.folds) for d in range(1, stats.folds + 1)]


def test_estimate_grows_with_the_work():
    small, big = ChipConfig(rows=1, cols=1), ChipConfig(rows=256, cols=256)
    assert estimate_seconds(Mapping.of(256, 256, 256, small), small) < 3  # measured 0.3-0.8 s
    assert estimate_seconds(Mapping.of(4096, 4096, 4096, big), big) > 60  # the "minutes"


def test_ctrl_c_stops_a_long_run_with_one_line(tmp_path):
    command = [sys.executable, "-m", "chipviz", "gemm", "--m", "4096", "--k", "2048", "--n", "2048", "--array",
               "256x256", "--engine", "cycle", "--yes", "--trace", "never.npz",
               "--trace-window", "0:50"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), cwd=tmp_path)
    try:
        time.sleep(6)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert out == "" and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("chipviz: interrupted") and "nothing was written" in last
    assert not (tmp_path / "never.npz").exists()


def test_train_refuses_a_long_cycle_run_up_front(capsys):
    code, out, err = run(capsys, "train", "--engine", "cycle", "--array", "1x1", "--layers", "64,512,512,10",
                         "--epochs", "3")
    assert code == 2 and out == ""
    line = one_line(err)
    for text in ("cycle-accurate training run (3 epochs of", "would take about", "chip cycles", "--max-seconds",
                 "--yes", "--engine analytic"):
        assert text in line, text


def test_train_shows_progress_over_its_steps(capsys, monkeypatch):
    monkeypatch.setattr(cli, "PROGRESS_SECONDS", 0.0)
    code, out, err = run(capsys, "train", "--engine", "cycle", "--array", "4x4", "--epochs", "1", "--quiet")
    assert code == 0 and "step" in err and "%" in err
    assert "test accuracy" in out
