"""Counters that cannot overflow (issue #16): every GEMM ChipViz accepts reports exact,
non-negative, mutually consistent counters; one whose counters could pass the exact range is
refused with a line naming the limit, in the chip's API and on the command line.

Sizes here reach far past int64 (10^30) while keeping the fold count small, so that the
analytic model stays fast: the streamed dimension is the one that grows.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chipviz import cli
from chipviz.chip import ChipConfig, Mapping, analyze, simulate

LIMIT = 2**53  # the largest count ChipViz keeps exact (int64 counters, float64 figures)
LIMIT_TEXT = "2^53"

huge = st.one_of(st.integers(1, 64), st.integers(1, 10**6), st.integers(1, 10**30),
                 st.integers(0, 100).map(lambda e: 10**e), st.integers(40, 100).map(lambda e: 2**e - 1))
bandwidths = st.sampled_from([0.01, 0.5, 1.0, 32.0, 1e5, 1_000_000.0])


@st.composite
def chips(draw):
    return ChipConfig(rows=draw(st.sampled_from([1, 2, 3, 8, 16, 256])),
                      cols=draw(st.sampled_from([1, 2, 5, 8, 16, 256])),
                      dataflow=draw(st.sampled_from(["ws", "os", "is"])),
                      precision=draw(st.sampled_from(["fp32", "int8"])),
                      ifmap_sram_kib=draw(st.sampled_from([1.0, 512.0, 1_048_576.0])),
                      ofmap_sram_kib=draw(st.sampled_from([1.0, 256.0, 1_048_576.0])),
                      dram_bytes_per_cycle=draw(bandwidths))


def reads_by_closed_form(m: int, k: int, n: int, config: ChipConfig) -> tuple[int, int]:
    """SRAM reads of A (ifmap) and B (filter), stated independently of the engines, in Python ints:
    an operand that streams is read once per fold of the other array side; a stationary one once."""
    r, c = config.rows, config.cols
    if config.dataflow == "os":  # A's rows enter on the left for every column fold, B's columns for every row fold
        return m * k * -(-n // c), k * n * -(-m // r)
    if config.dataflow == "ws":  # A streams for every column fold (N on the columns); B stays
        return m * k * -(-n // c), k * n
    return m * k, k * n * -(-m // c)  # is: A stays; B streams for every column fold (M on the columns)


def assert_consistent(s, m: int, k: int, n: int, config: ChipConfig) -> None:
    assert s.macs == m * k * n
    for name, value in s.counters.items():
        assert value >= 0, (name, value)
    assert s.compute_cycles == s.folds * s.cycles_per_fold
    assert s.cycles == s.compute_cycles + s.stall_cycles
    assert s.scalesim_cycles == s.cycles - 1
    assert s.macs <= s.compute_cycles * config.pes
    assert 0 < s.utilization <= 1 and s.scalesim_utilization > 0  # SCALE-Sim's (cycles - 1) may give > 1
    assert 0 < s.mapping_efficiency <= 1
    assert (s.sram_reads_ifmap, s.sram_reads_filter) == reads_by_closed_form(m, k, n, config)
    assert s.sram_reads == s.sram_reads_ifmap + s.sram_reads_filter
    assert 0 <= s.dram_reads <= s.sram_reads + s.sram_writes
    assert s.dram_bytes >= s.dram_reads  # at least a byte per element
    energy = dict(s.energy_pj)
    assert all(math.isfinite(v) and v >= 0 for v in energy.values())
    assert energy["total"] == pytest.approx(sum(v for key, v in energy.items() if key != "total"))
    assert energy["mac"] == pytest.approx(s.macs * config.energy.mac_pj(config.precision))
    assert s.seconds == pytest.approx(s.cycles / (config.clock_mhz * 1e6))
    assert s.arithmetic_intensity >= 0 and s.achieved_macs_per_cycle <= config.pes


@settings(max_examples=300, deadline=None)
@given(m=huge, k=huge, n=huge, config=chips())
def test_every_accepted_gemm_has_exact_consistent_counters(m, k, n, config):
    """Accepted: exact and consistent, even where int64 would wrap. Refused: a ValueError naming the limit."""
    assume(Mapping.of(m, k, n, config).folds <= 2_000)  # the analytic model keeps a row per fold
    try:
        s = analyze(m, k, n, config)
    except ValueError as exc:
        assert LIMIT_TEXT in str(exc) and f"{LIMIT:,}" in str(exc)
        # nothing small is refused (hops: a value crosses the whole array, up to rows + cols hops a MAC)
        assert m * k * n * (config.rows + config.cols) > 2**44 or config.dram_bytes_per_cycle < 1
        return
    assert_consistent(s, m, k, n, config)


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_int64_wrap_from_the_issue_is_refused_or_exact(dataflow):
    """The issue's GEMM: 10^18×4 by 4×4 on 4×4 printed -2,446,744,073,709,551,616 MACs; 10^26 crashed."""
    config = ChipConfig(rows=4, cols=4, dataflow=dataflow)
    for m in (10**18, 99999999999999999999999999):
        with pytest.raises(ValueError, match=re.escape(LIMIT_TEXT)):
            analyze(m, 4, 4, config)


def test_the_cycle_engine_refuses_before_allocating():
    """simulate() checks the counters' range first: a (zero-stride) 2^50×1 operand is never copied."""
    a = np.broadcast_to(np.zeros((1, 1), np.float32), (2**50, 1))
    b = np.ones((1, 1), np.float32)
    with pytest.raises(ValueError, match=re.escape(LIMIT_TEXT)):
        simulate(a, b, ChipConfig(rows=1, cols=1, dram_bytes_per_cycle=0.01))


# ----------------------------------------------------------------------------- the command line


def run(capsys, *argv):
    code = cli.main(["gemm", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def macs_line(out: str) -> int:
    match = re.search(r": ([-0-9,]+) MACs", out)
    return int(match.group(1).replace(",", ""))


@pytest.mark.parametrize("m", ["1000000000000000000", "99999999999999999999999999", "9" * 400])
def test_cli_refuses_what_it_cannot_count(capsys, m):
    code, out, err = run(capsys, "--m", m, "--k", "4", "--n", "4", "--array", "4x4")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("chipviz: error: argument --m: ") and LIMIT_TEXT in err and "at most" in err


@pytest.mark.parametrize("array,dataflow,bandwidth", [("4x4", "ws", "32"), ("1x1", "os", "0.01"),
                                                      ("256x256", "is", "1000000"), ("8x8", "ws", "0.5")])
def test_cli_at_its_largest_accepted_m(capsys, array, dataflow, bandwidth):
    """The largest --m the CLI accepts prints exact counters; one more is refused, naming that largest value."""
    common = ["--k", "4", "--n", "4", "--array", array, "--dataflow", dataflow, "--dram-bytes-per-cycle", bandwidth]
    config = cli._chip_config(cli.build_parser().parse_args(["gemm", *common]))
    largest = cli._largest_dimension(0, (1, 4, 4), config)
    assert largest > 10**5
    code, out, err = run(capsys, "--m", str(largest), *common)
    assert code == 0 and err == ""
    assert macs_line(out) == largest * 16
    assert re.search(r"\nutilisation (\d+\.\d)% of PE-cycles", out)  # not negative
    assert_consistent(analyze(largest, 4, 4, config), largest, 4, 4, config)
    code, out, err = run(capsys, "--m", str(largest + 1), *common)
    assert code == 2 and f"at most {largest:,}" in err


def test_cli_json_at_the_limit_is_exact(capsys):
    code, out, err = run(capsys, "--m", "10000000000000", "--k", "4", "--n", "4", "--array", "4x4", "--json")
    assert code == 0
    import json
    record = json.loads(out)
    assert record["macs"] == 16 * 10**13 and 0 < record["utilization"] <= 1
    assert record["energy_pj"]["total"] > 0


def test_topology_layer_too_large_names_file_line_and_limit(capsys, tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("Layer name, M, N, K,\nok,4,4,4,\nhuge,1000000000000000000000,4,4,\n")
    code = cli.main(["gemm", "--topology", str(path), "--array", "4x4"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"{path}:3: layer 'huge'" in err and LIMIT_TEXT in err
