"""`chipviz gemm`: the report, the JSON, the engines' agreement, traces, topology files, and errors."""
import csv
import dataclasses
import io
import json
import pathlib
import subprocess
import sys

import pytest

from chipviz import cli
from chipviz.chip import ChipConfig, analyze
from chipviz.chip.trace import bytes_per_cycle
from chipviz.chip.trace import Trace
from chipviz.chip.topology import read_topology

SHAPE = ["--m", "32", "--k", "64", "--n", "10"]


def run(capsys, *argv):
    code = cli.main(["gemm", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    assert err == ""
    assert out.count("\n") == 1  # exactly one JSON object on one line
    return json.loads(out)


def expected(stats):
    """analyze()'s dict as it must come out of JSON (non-finite floats as null)."""
    return json.loads(json.dumps(cli._finite(stats.to_dict()), allow_nan=False))


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_json_has_every_stat_and_equals_analyze(capsys, dataflow, precision):
    record = run_json(capsys, *SHAPE, "--array", "8x4", "--dataflow", dataflow, "--precision", precision,
                      "--dram-bytes-per-cycle", "16", "--ifmap-sram-kib", "2")
    want = expected(analyze(32, 64, 10, ChipConfig(rows=8, cols=4, dataflow=dataflow, precision=precision,
                                                   dram_bytes_per_cycle=16.0, ifmap_sram_kib=2.0)))
    for key in ("cycles", "scalesim_cycles", "folds", "macs", "utilization", "mapping_efficiency", "sram_reads",
                "sram_writes", "dram_reads", "dram_writes", "stall_cycles", "energy_pj", "seconds"):
        assert key in record
    assert {"mac", "register", "sram", "dram", "total"} <= set(record["energy_pj"])
    assert {k: record[k] for k in want} == want
    assert record["engine"] == "analytic" and record["check"] is None and record["trace"] is None
    assert record["config"]["rows"] == 8 and record["config"]["cols"] == 4
    assert record["mapping"].startswith(f"{dataflow}: ")


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_cycle_and_analytic_engines_agree_through_the_cli(capsys, dataflow, precision):
    common = [*SHAPE, "--array", "6x5", "--dataflow", dataflow, "--precision", precision]
    analytic = run_json(capsys, *common, "--engine", "analytic")
    cycle = run_json(capsys, *common, "--engine", "cycle", "--seed", "3")
    assert cycle["engine"] == "cycle"
    check = cycle.pop("check")
    del analytic["engine"], cycle["engine"], analytic["check"]
    assert analytic == cycle
    assert check["ok"] and check["seed"] == 3
    if precision == "int8":
        assert check["max_abs_error"] == 0
    else:
        assert check["max_abs_error"] <= check["max_bound"]


def test_human_report_names_the_figures(capsys):
    code, out, err = run(capsys, *SHAPE, "--array", "8x8", "--dataflow", "ws", "--engine", "cycle")
    assert code == 0 and err == ""
    stats = analyze(32, 64, 10, ChipConfig(rows=8, cols=8, dataflow="ws"))
    for text in ("ws: Sr=64 on 8 rows", f"{stats.cycles:,} = {stats.folds:,} folds", f"SCALE-Sim reports "
                 f"{stats.scalesim_cycles:,}", "utilisation", "mapping efficiency", "SRAM", "DRAM", "stall",
                 "energy", "µJ", "nJ", "arithmetic intensity", "attainable", "achieved", "at 700 MHz",
                 "C matches numpy, max abs error"):
        assert text in out, text


def test_engine_defaults_to_analytic(capsys):
    assert run_json(capsys, *SHAPE)["engine"] == "analytic"


def test_json_has_no_nan_or_inf(capsys, monkeypatch):
    def no_dram(m, k, n, config):
        return dataclasses.replace(analyze(m, k, n, config), arithmetic_intensity=float("inf"),
                                   scalesim_utilization=float("nan"))

    monkeypatch.setattr(cli, "analyze", no_dram)
    code, out, err = run(capsys, *SHAPE, "--json")
    assert code == 0, err
    assert "Infinity" not in out and "NaN" not in out
    record = json.loads(out)
    assert record["arithmetic_intensity"] is None and record["scalesim_utilization"] is None


def test_trace_writes_a_loadable_whole_run(capsys, tmp_path):
    path = tmp_path / "run.npz"
    record = run_json(capsys, *SHAPE, "--dataflow", "os", "--trace", str(path))
    assert record["engine"] == "cycle"  # --trace picks the cycle engine
    trace = Trace.load(path)
    assert trace.start == 0 and trace.n_cycles == record["cycles"]
    assert trace.dataflow == "os"
    # the memory the run's trace took (the file holds the same values, without the rows' spare slots)
    rows, cols = record["config"]["rows"], record["config"]["cols"]
    bytes_ = record["cycles"] * bytes_per_cycle(rows, cols, "os")
    assert record["trace"] == {"path": str(path), "start": 0, "cycles": record["cycles"], "bytes": bytes_}


def test_trace_window_and_npz_suffix(capsys, tmp_path):
    code, out, err = run(capsys, *SHAPE, "--trace", str(tmp_path / "part"), "--trace-window", "10:25")
    assert code == 0, err
    trace = Trace.load(tmp_path / "part.npz")
    assert (trace.start, trace.n_cycles) == (10, 15)
    assert "saved to" in out and "part.npz" in out


def run_error(capsys, argv):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("chipviz: error: ")
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("argv, fragment", [
    (["--array", "0x4"], "array rows must be from 1 to 256, got 0"),
    (["--array", "foo"], "array must look like ROWSxCOLS, e.g. 8x8, got 'foo'"),
    (["--array", "4x300"], "array cols must be from 1 to 256"),
    (["--m", "-1"], "--m: GEMM dimension M must be a whole number >= 1, got -1"),
    (["--k", "0"], "--k: GEMM dimension K"),
    (["--n", "2.5"], "--n: must be a whole number, got '2.5'"),
    (["--dataflow", "xs"], "invalid choice: 'xs' (choose from 'ws', 'os', 'is')"),
    (["--precision", "fp16"], "choose from 'fp32', 'int8'"),
    (["--engine", "rtl"], "choose from 'analytic', 'cycle'"),
    (["--clock-mhz", "0"], "--clock-mhz: must be a number from 1 to 10,000 MHz, got 0.0"),
    (["--dram-bytes-per-cycle", "inf"], "--dram-bytes-per-cycle: must be a number"),
    (["--ofmap-sram-kib", "lots"], "--ofmap-sram-kib: must be a number, got 'lots'"),
    (["--seed", "-1"], "--seed: must be a whole number >= 0"),
    (["--trace", "t.npz", "--engine", "analytic"], "--trace needs the cycle engine"),
    (["--trace-window", "0:5"], "--trace-window needs --trace"),
    (["--trace", "t.npz", "--trace-window", "9:3"], "0 <= START < STOP"),
    (["--trace", "t.npz", "--trace-window", "1:2:3"], "expected START:STOP"),
    (["--trace", "t.npz", "--trace-window", "99999:"], "past the end of the run"),
    (["--trace", "/no/such/dir/t.npz"], "directory '/no/such/dir' does not exist"),
    (["--output", "r.csv"], "--output writes the per-layer report of --topology"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_arguments_give_one_line_and_exit_2(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    shape = [] if argv[0] in {"--m", "--k", "--n"} else list(SHAPE)
    base = {"--m": "4", "--k": "4", "--n": "4"}
    if argv[0] in base:
        shape = [x for name, value in base.items() if name != argv[0] for x in (name, value)]
    err = run_error(capsys, ["gemm", *shape, *argv])
    assert fragment in err, err
    assert not list(tmp_path.iterdir())  # nothing written on a refused run


def test_missing_shape_and_no_command(capsys):
    assert "missing --n" in run_error(capsys, ["gemm", "--m", "4", "--k", "4"])
    assert "required: COMMAND" in run_error(capsys, [])
    assert "invalid choice: 'frob'" in run_error(capsys, ["frob"])


def test_trace_over_budget_suggests_a_window(capsys, tmp_path):
    err = run_error(capsys, ["gemm", "--m", "4000", "--k", "4000", "--n", "4000", "--array", "64x64",
                             "--trace", str(tmp_path / "t.npz")])
    assert "256 MiB budget" in err and "--trace-window START:STOP" in err


def test_too_many_folds_is_refused(capsys):
    err = run_error(capsys, ["gemm", "--m", "40000000", "--k", "4000", "--n", "4000", "--array", "1x1"])
    assert "folds" in err and "larger --array" in err


def test_missing_and_malformed_topology_files(capsys, tmp_path):
    missing = tmp_path / "nope.csv"
    err = run_error(capsys, ["gemm", "--topology", str(missing)])
    assert str(missing) in err and "No such file" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("Layer, M, N, K,\nfc1, 32, 10, 64,\nfc2, 32, x, 64,\n")
    err = run_error(capsys, ["gemm", "--topology", str(bad)])
    assert f"{bad}:3: N must be a whole number" in err
    err = run_error(capsys, ["gemm", "--topology", str(bad), "--m", "3"])
    assert "--m cannot be combined with --topology" in err


def test_help_exits_0(capsys):
    assert cli.main(["gemm", "--help"]) == 0
    assert "--trace-window" in capsys.readouterr().out


GEMM_CSV = "Layer name, M, N, K,\nfc1, 32, 10, 64,\nfc2, 32, 4, 10,\n"


def read_report(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_topology_report_per_layer_and_total(capsys, tmp_path):
    path = tmp_path / "net.csv"
    path.write_text(GEMM_CSV)
    code, out, err = run(capsys, "--topology", str(path), "--array", "8x8", "--dataflow", "os")
    assert code == 0 and err == ""
    rows = read_report(out)
    assert [r["layer"] for r in rows] == ["fc1", "fc2", "total"]
    config = ChipConfig(rows=8, cols=8, dataflow="os")
    layers = [analyze(32, 64, 10, config), analyze(32, 10, 4, config)]
    for row, stats in zip(rows, layers):
        assert (int(row["m"]), int(row["k"]), int(row["n"])) == (stats.m, stats.k, stats.n)
        for key in ("folds", "cycles", "scalesim_cycles", "stall_cycles", "macs", "sram_reads", "sram_writes",
                    "dram_reads", "dram_writes"):
            assert int(row[key]) == getattr(stats, key), key
        assert float(row["utilization"]) == pytest.approx(stats.utilization)
        assert float(row["energy_total_pj"]) == pytest.approx(stats.energy_pj["total"])
    total = rows[-1]
    assert total["m"] == ""
    assert int(total["cycles"]) == sum(s.cycles for s in layers)
    assert int(total["macs"]) == sum(s.macs for s in layers)
    assert float(total["utilization"]) == pytest.approx(sum(s.macs for s in layers)
                                                        / (sum(s.cycles for s in layers) * 64))


def test_topology_output_file_conv_form_and_cycle_engine(capsys, tmp_path):
    path = tmp_path / "conv.csv"
    path.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                    "Strides,\nc1, 7, 9, 3, 2, 4, 5, 2,\n")
    report = tmp_path / "report.csv"
    code, out, err = run(capsys, "--topology", str(path), "--output", str(report), "--engine", "cycle")
    assert code == 0 and err == ""
    assert "report.csv" in out
    rows = read_report(report.read_text())
    assert (rows[0]["m"], rows[0]["k"], rows[0]["n"]) == ("15", "24", "5")  # SCALE-Sim 3.0.0: OW = 5
    assert int(rows[0]["cycles"]) == analyze(15, 24, 5, ChipConfig()).cycles
    assert float(rows[0]["max_abs_error"]) < 1e-4


def test_topology_json(capsys, tmp_path):
    path = tmp_path / "net.csv"
    path.write_text(GEMM_CSV)
    record = run_json(capsys, "--topology", str(path))
    assert [layer["layer"] for layer in record["layers"]] == ["fc1", "fc2"]
    assert record["layers"][0]["cycles"] == analyze(32, 64, 10, ChipConfig()).cycles
    assert record["total"]["macs"] == 32 * 64 * 10 + 32 * 10 * 4


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "chipviz", "gemm", *SHAPE, "--array", "8x8", "--dataflow", "is",
                             "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    record = json.loads(result.stdout)
    want = expected(analyze(32, 64, 10, ChipConfig(rows=8, cols=8, dataflow="is")))
    assert {k: record[k] for k in want} == want


SAMPLE_TOPOLOGY = pathlib.Path(__file__).resolve().parent.parent / "assets" / "topologies" / "alexnet.csv"
# AlexNet's layers as GEMMs (M, K, N), from the paper's shapes (assets/PROVENANCE.md)
ALEXNET = {"Conv1": (3025, 363, 96), "Conv2": (729, 2400, 256), "Conv3": (169, 2304, 384),
           "Conv4": (169, 3456, 384), "Conv5": (169, 3456, 256), "FC6": (1, 9216, 4096), "FC7": (1, 4096, 4096),
           "FC8": (1, 4096, 1000)}


def test_the_shipped_sample_topology_runs_as_the_readme_shows(capsys, tmp_path, monkeypatch):
    """README: `chipviz gemm --topology assets/topologies/alexnet.csv --output report.csv`, from a fresh clone."""
    monkeypatch.chdir(SAMPLE_TOPOLOGY.parent.parent.parent)
    report = tmp_path / "report.csv"
    code, out, err = run(capsys, "--topology", "assets/topologies/alexnet.csv", "--output", str(report))
    assert code == 0 and err == ""
    assert "wrote the report of 8 layers" in out
    rows = read_report(report.read_text())
    assert [r["layer"] for r in rows] == [*ALEXNET, "total"]
    config = ChipConfig()
    layouts = {layer.name: layer.a_layout for layer in read_topology(SAMPLE_TOPOLOGY)}
    for row in rows[:-1]:
        m, k, n = ALEXNET[row["layer"]]
        assert (int(row["m"]), int(row["k"]), int(row["n"])) == (m, k, n)
        # conv rows read each ifmap pixel from DRAM once (the unrolling is on chip)
        stats = analyze(m, k, n, config, layouts[row["layer"]])
        assert (int(row["cycles"]), int(row["dram_reads"])) == (stats.cycles, stats.dram_reads)
    assert int(rows[-1]["macs"]) == sum(m * k * n for m, k, n in ALEXNET.values()) == 1_135_256_096


@pytest.mark.parametrize("argv,message", [
    (["--m", "٣٢", "--k", "4", "--n", "4"], "argument --m: must be a whole number, got '٣٢'"),
    (["--m", "３２", "--k", "4", "--n", "4"], "argument --m: must be a whole number, got '３２'"),
    (["--m", "1_000", "--k", "4", "--n", "4"], "argument --m: must be a whole number, got '1_000'"),
    (["--m", "9" * 5000, "--k", "4", "--n", "4"], "argument --m: must be a whole number of at most 4,300 digits"),
    ([*SHAPE, "--clock-mhz", "1e999"], "argument --clock-mhz: must be a finite number, got '1e999'"),
    ([*SHAPE, "--clock-mhz", "-inf"], "write --clock-mhz=VALUE"),
    ([*SHAPE, "--trace", ""], "argument --trace: expected a file name, got ''"),
    ([*SHAPE, "--trace", "t.npz", "--trace-window", "٣:٥"], "argument --trace-window: expected START:STOP"),
    (["--topology", str(SAMPLE_TOPOLOGY), "--output", "/dev/full"],
     "argument --output: cannot write '/dev/full': No space left on device"),
])
def test_hostile_values_get_one_line_in_the_users_terms(capsys, argv, message):
    if "/dev/full" in argv and not pathlib.Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err and "Errno" not in err
    assert message in err
