"""Design-space sweeps (chipviz/sweep): the vectorised model equals analyze() at every point, a
workload's totals equal a plain loop over analyze(), sweep files fail with file:line messages,
a sweep resumes after an interruption with the same Parquet, and a LocalCluster sweep equals
the one-core sweep."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chipviz.chip import ChipConfig, CountTooLarge, analyze
from chipviz.chip.config import DATAFLOWS, PRECISIONS
from chipviz.sweep import model
from chipviz.sweep import workload as wl
from chipviz.sweep.pareto import front, pareto_file
from chipviz.sweep.spec import SpecError, parse_spec, read_spec
from chipviz.sweep.vectorized import FLOAT_FIELDS, INT_FIELDS, Configs, evaluate, stats_dict

pq = pytest.importorskip("pyarrow.parquet")

configs_st = st.builds(
    ChipConfig,
    rows=st.integers(1, 40) | st.sampled_from([1, 2, 128, 256]),
    cols=st.integers(1, 40) | st.sampled_from([1, 3, 128, 256]),
    dataflow=st.sampled_from(DATAFLOWS),
    precision=st.sampled_from(PRECISIONS),
    clock_mhz=st.sampled_from([1.0, 333.3, 700.0, 9999.5]),
    ifmap_sram_kib=st.sampled_from([1.0, 1.5, 16.0, 512.0]),
    filter_sram_kib=st.sampled_from([1.0, 2.25, 64.0, 512.0]),
    ofmap_sram_kib=st.sampled_from([1.0, 3.0, 256.0]),
    dram_bytes_per_cycle=st.sampled_from([0.01, 0.3, 1.0, 7.0, 32.0, 1e6]) | st.floats(0.01, 1000.0),
)
dims_st = st.integers(1, 600) | st.sampled_from([1, 2, 255, 256, 257, 4096])


def _same(name, got, want):
    if isinstance(want, float) and math.isinf(want):
        return got == want
    return got == want  # exact: the same integer sums and the same float64 operations


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(configs_st, dims_st, dims_st, dims_st), min_size=1, max_size=12))
def test_every_vectorised_point_equals_analyze(points):
    configs = Configs.of([p[0] for p in points])
    m, k, n = (np.array([p[i] for p in points]) for i in (1, 2, 3))
    out = evaluate(configs, m, k, n)
    for i, (config, mm, kk, nn) in enumerate(points):
        want = stats_dict(analyze(mm, kk, nn, config))
        assert out["countable"][i]
        for name in (*INT_FIELDS, *FLOAT_FIELDS):
            assert _same(name, out[name][i].item(), want[name]), (name, config, (mm, kk, nn))


def test_precision_override_and_blocks_equal_analyze():
    rng = np.random.default_rng(0)
    size = 40_000  # more than one block of pairs
    configs = [ChipConfig(rows=int(r), cols=int(c), dataflow=DATAFLOWS[int(d)], dram_bytes_per_cycle=float(b))
               for r, c, d, b in zip(rng.integers(1, 64, 200), rng.integers(1, 64, 200), rng.integers(0, 3, 200),
                                     rng.choice([0.5, 4.0, 32.0], 200))]
    pick = rng.integers(0, 200, size)
    cfg = Configs.of(configs).take(pick)
    m, k, n = (rng.integers(1, 500, size) for _ in range(3))
    precision = rng.integers(0, 2, size)
    out = evaluate(cfg, m, k, n, precision)
    for i in rng.integers(0, size, 300):
        want = stats_dict(analyze(int(m[i]), int(k[i]), int(n[i]),
                                  configs[pick[i]].with_(precision=PRECISIONS[precision[i]])))
        for name in (*INT_FIELDS, *FLOAT_FIELDS):
            assert out[name][i].item() == want[name], name


def test_too_large_gemm_is_flagged_as_analyze_refuses_it():
    config = ChipConfig(rows=1, cols=1, dram_bytes_per_cycle=0.01)
    with pytest.raises(CountTooLarge):
        analyze(2**20, 2**20, 2**20, config)
    out = evaluate(Configs.of([config, ChipConfig()]), [2**20, 8], [2**20, 8], [2**20, 8])
    assert out["countable"].tolist() == [False, True]


# ------------------------------------------------------------------------------------ workloads


def _check_totals(configs: list[ChipConfig], workload: wl.Workload):
    out = model.evaluate_workload(Configs.of(configs), workload)
    for i, config in enumerate(configs):
        want = model.reference(config, workload)
        for name, value in want.items():
            assert out[name][i].item() == value, (name, config)


def test_training_step_totals_equal_a_loop_over_analyze():
    step = wl.training_step_of("mlp", "64,32,10")
    assert [g.phase for g in step.gemms] == ["forward", "forward", "backward_weights", "backward_data",
                                            "backward_weights"]
    assert [g.precision for g in step.gemms] == ["chip", "chip", "fp32", "fp32", "fp32"]
    assert step.vectors[-1].phase == "update"
    configs = [ChipConfig(rows=r, cols=c, dataflow=d, precision=p, dram_bytes_per_cycle=b, ofmap_sram_kib=1.0)
               for r, c in ((4, 4), (8, 32)) for d in DATAFLOWS for p in PRECISIONS for b in (0.5, 32.0)]
    _check_totals(configs, step)


def test_training_step_is_what_the_trainer_runs():
    from chipviz.nn.trainer import Trainer, TrainSettings

    chip = ChipConfig(rows=4, cols=8, precision="int8", dataflow="os", dram_bytes_per_cycle=2.0)
    trainer = Trainer(TrainSettings(hidden=(16,)), chip)
    report = trainer.step()
    step = wl.training_step_of("mlp", "64,16,10")
    totals = model.reference(chip, step)
    assert totals["cycles"] == report.cycles
    assert totals["macs"] == int(report.costs[:, 1].sum())
    assert totals["energy_total_pj"] == pytest.approx(report.energy_pj, rel=1e-12)


def test_cnn_step_and_topology_use_analyze_with_the_im2col_layout(tmp_path):
    cnn = wl.training_step_of("cnn", "conv3x3x4,pool2,10", batch_size=4)
    assert any(g.a_layout is not None for g in cnn.gemms)
    configs = [ChipConfig(rows=8, cols=8, dataflow=d, precision="int8", ifmap_sram_kib=1.0, dram_bytes_per_cycle=2.0)
               for d in DATAFLOWS]
    _check_totals(configs, cnn)
    csv = tmp_path / "net.csv"
    csv.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                   "Strides,\nConv1, 12, 12, 3, 3, 2, 8, 1,\nConv2, 10, 10, 3, 3, 8, 4, 2,\n")
    topo = wl.topology("small", csv)
    assert all(g.a_layout is not None for g in topo.gemms)
    _check_totals(configs + [ChipConfig(rows=3, cols=5, dataflow="ws")], topo)


def test_gemm_list_forms_and_errors():
    w = wl.gemm_list("g", [[2, 3, 4], "5x6x7"])
    assert [(g.m, g.k, g.n) for g in w.gemms] == [(2, 3, 4), (5, 6, 7)]
    with pytest.raises(ValueError, match="GEMM 2"):
        wl.gemm_list("g", [[2, 3, 4], [1, 0, 1]])


# ------------------------------------------------------------------------------------ sweep files

SPEC = """\
[chip]
array = ["4x4", "8x8"]
dataflow = ["ws", "os", "is"]
precision = ["fp32", "int8"]
dram_bytes_per_cycle = { min = 1, max = 16, factor = 4 }
ofmap_sram_kib = [1, 256]

[[workload]]
name = "mlp"
layers = "64,16,10"

[[workload]]
name = "gemms"
gemms = [[64, 32, 16], "300x20x7"]

[sweep]
chunk = 7
"""


def test_spec_enumerates_every_combination():
    spec = parse_spec(SPEC)
    assert spec.axes["dram_bytes_per_cycle"] == [1.0, 4.0, 16.0]
    assert spec.size == 2 * 3 * 2 * 3 * 2
    configs = spec.configs(0, spec.size)
    seen = {configs.key(i) for i in range(spec.size)}
    assert len(seen) == spec.size
    assert configs.config(spec.size - 1) == ChipConfig(rows=8, cols=8, dataflow="is", precision="int8",
                                                       dram_bytes_per_cycle=16.0, ofmap_sram_kib=256.0)


@pytest.mark.parametrize("text, line, words", [
    ("[chip]\nrows = [8]\nrowz = [4]\n[[workload]]\ngemms = [[1,2,3]]\n", 3,
     ["unknown field 'rowz'", "allowed: array, rows, cols"]),
    ("[chip]\n\ndataflow = ['ws', 'xs']\n[[workload]]\ngemms = [[1,2,3]]\n", 3, ["'xs'", "allowed: ws, os, is"]),
    ("[chip]\nrows = { min = 8, max = 4, step = 1 }\n[[workload]]\ngemms = [[1,2,3]]\n", 2, ["max 4 is below min 8"]),
    ("[chip]\nrows = [8, 300]\n[[workload]]\ngemms = [[1,2,3]]\n", 2, ["rows must be a whole number from 1 to 256"]),
    ("[chip]\ndram_bytes_per_cycle = { min = 1, max = 4, times = 2 }\n[[workload]]\ngemms = [[1,2,3]]\n", 2,
     ["unknown range key 'times'"]),
    ("[chip]\nrows = 8\n[[workload]]\ngemms = [[1,2,3]]\n[[workload]]\nname = 'x'\nlayerz = '64,10'\n", 7,
     ["unknown field 'layerz'", "allowed: name, gemms, topology, layers"]),
    ("[chip]\nrows = 8\n[[workload]]\nlayers = '64,32,11'\n", 4, ["needs 64 inputs and 10 outputs"]),
    ("[chip]\nrows = [8\n", 2, ["not valid TOML"]),
    ("[chips]\nrows = 8\n", 1, ["unknown table or field 'chips'", "allowed: [chip], [[workload]]"]),
])
def test_spec_errors_name_file_line_and_allowed_values(tmp_path, text, line, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        read_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    for word in words:
        assert word in message


def _cli(args, capsys):
    from chipviz.cli import main

    status = main(["sweep", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text("[chip]\nprecision = ['fp16']\n[[workload]]\ngemms = [[1,2,3]]\n")
    for args in ([str(spec), "--out", str(tmp_path / "r.parquet")],
                 ["--array", "8y8", "--gemm", "2x2x2", "--out", str(tmp_path / "r.parquet")],
                 ["--gemm", "2x2", "--out", str(tmp_path / "r.parquet")],
                 ["--gemm", "2x2x2", "--dram-bytes-per-cycle", "4:1:2", "--out", str(tmp_path / "r.parquet")],
                 [str(tmp_path / "missing.toml"), "--out", str(tmp_path / "r.parquet")]):
        status, out, err = _cli(args, capsys)
        assert status == 2, err
        assert err.count("\n") == 1 and err.startswith("chipviz: error: ") and "Traceback" not in err, err
    assert "fp16" in _cli([str(spec), "--out", str(tmp_path / "r.parquet")], capsys)[2]


def test_unreachable_scheduler_fails_fast(tmp_path, capsys):
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    status, out, err = _cli(["--gemm", "2x2x2", "--out", str(tmp_path / "r.parquet"), "--quiet",
                             "--scheduler", f"tcp://127.0.0.1:{port}"], capsys)
    assert status == 2 and "cannot reach the Dask scheduler" in err and err.count("\n") == 1
    assert time.perf_counter() - started < 10
    assert not (tmp_path / "r.parquet.parts").exists()


# ------------------------------------------------------------------------------------ running


def test_resume_after_interruption_gives_the_same_parquet(tmp_path):
    from chipviz.sweep.run import SweepError, run_sweep

    spec = parse_spec(SPEC)
    assert spec.chunks > 4
    whole = run_sweep(spec, tmp_path / "whole.parquet", executor="local", progress=False)
    assert whole.complete
    part = run_sweep(spec, tmp_path / "resumed.parquet", executor="local", progress=False, stop_after=3)
    assert not part.complete and not (tmp_path / "resumed.parquet").exists()
    rest = run_sweep(spec, tmp_path / "resumed.parquet", executor="local", progress=False, csv=str(tmp_path / "r.csv"))
    assert rest.complete and rest.skipped == 3
    a, b = pq.read_table(tmp_path / "whole.parquet"), pq.read_table(tmp_path / "resumed.parquet")
    assert a.equals(b) and a.num_rows == spec.points
    assert not (tmp_path / "resumed.parquet.parts").exists()
    assert (tmp_path / "r.csv").read_text().count("\n") == spec.points + 1
    # the rows are the model's: spot-check against the plain loop
    rows = a.to_pylist()
    for row in rows[::37]:
        config = ChipConfig(**{f: row[f] for f in ("rows", "cols", "dataflow", "precision", "clock_mhz",
                                                   "ifmap_sram_kib", "filter_sram_kib", "ofmap_sram_kib",
                                                   "dram_bytes_per_cycle")})
        want = model.reference(config, spec.workloads[[w.name for w in spec.workloads].index(row["workload"])])
        for name in ("cycles", "stall_cycles", "energy_total_pj", "utilization", "dram_bytes"):
            assert row[name] == want[name]
    # another sweep must not mix its results with these parts
    run_sweep(spec, tmp_path / "third.parquet", executor="local", progress=False, stop_after=1)
    other = parse_spec(SPEC.replace('"4x4", ', ""))
    with pytest.raises(SweepError, match="different"):
        run_sweep(other, tmp_path / "third.parquet", executor="local", progress=False)
    assert run_sweep(other, tmp_path / "third.parquet", executor="local", progress=False, restart=True).complete


@pytest.mark.skipif(sys.platform == "win32", reason="LocalCluster processes")
def test_local_cluster_sweep_equals_one_core_sweep(tmp_path):
    from chipviz.sweep.run import run_sweep

    spec = parse_spec(SPEC)
    run_sweep(spec, tmp_path / "one.parquet", executor="local", progress=False)
    out = run_sweep(spec, tmp_path / "dask.parquet", executor="dask", workers=2, progress=False, stop_after=2)
    assert not out.complete  # interrupted on the cluster, resumed there
    run_sweep(spec, tmp_path / "dask.parquet", executor="dask", workers=2, progress=False)
    assert pq.read_table(tmp_path / "one.parquet").equals(pq.read_table(tmp_path / "dask.parquet"))


# ------------------------------------------------------------------------------------ Pareto


@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=40))
def test_front_is_the_undominated_points(points):
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    got = front(x, y)
    for i in range(len(points)):
        dominated = any(x[j] <= x[i] and y[j] <= y[i] and (x[j] < x[i] or y[j] < y[i]) for j in range(len(points)))
        assert got[i] == (not dominated)


def test_pareto_file_and_cli_json(tmp_path, capsys):
    import json

    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    status, out, err = _cli([str(spec), "--out", str(tmp_path / "r.parquet"), "--no-dask", "--quiet", "--pareto",
                             "--json"], capsys)
    assert status == 0, err
    result = json.loads(out)
    fronts = result["pareto"]
    assert set(fronts) == {"mlp", "gemms"}
    table = pq.read_table(tmp_path / "r.parquet").to_pylist()
    for workload, by in fronts.items():
        rows = [r for r in table if r["workload"] == workload]
        best = min(r["energy_total_pj"] for r in rows)
        assert by["energy_vs_cycles"][0]["energy_total_pj"] == best
        assert sum(d["ties"] for d in by["energy_vs_pes"]) >= len(by["energy_vs_pes"])
        fastest = min(r["cycles"] for r in rows)
        assert by["energy_vs_cycles"][-1]["cycles"] == fastest
    assert pareto_file(tmp_path / "r.parquet", batch_rows=5) == fronts  # batch by batch, the same fronts
    status, out, err = _cli([str(spec), "--out", str(tmp_path / "r.parquet"), "--no-dask", "--quiet", "--pareto"],
                            capsys)
    assert status == 0 and "Pareto-optimal designs, energy against cycles" in out
