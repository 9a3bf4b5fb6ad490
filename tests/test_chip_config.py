"""Validation at the chip's edge (ChipConfig, EnergyTable, parse_array, gemm operands), and
determinism of both engines."""
from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest

from chipviz.chip import ChipConfig, EnergyTable, analyze, gemm, parse_array


def message(exc_info) -> str:
    return str(exc_info.value)


# --- ChipConfig -----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["rows", "cols"])
@pytest.mark.parametrize("value", [0, 257, -1, 2.5, True, False, "8", None, 8.0])
def test_array_side_invalid(field, value):
    with pytest.raises(ValueError) as info:
        ChipConfig(**{field: value})
    msg = message(info)
    assert field in msg
    assert "1" in msg and "256" in msg  # the allowed range
    assert repr(value) in msg  # the value given


@pytest.mark.parametrize("field", ["rows", "cols"])
def test_array_side_valid_edges(field):
    assert getattr(ChipConfig(**{field: 1}), field) == 1
    assert getattr(ChipConfig(**{field: 256}), field) == 256
    assert getattr(ChipConfig(**{field: np.int64(4)}), field) == 4


@pytest.mark.parametrize("value", ["xs", "WS", "", None, 1])
def test_dataflow_invalid(value):
    with pytest.raises(ValueError) as info:
        ChipConfig(dataflow=value)
    msg = message(info)
    assert "dataflow" in msg and repr(value) in msg
    assert all(name in msg for name in ("ws", "os", "is"))


@pytest.mark.parametrize("value", ["fp16", "int4", "FP32", None])
def test_precision_invalid(value):
    with pytest.raises(ValueError) as info:
        ChipConfig(precision=value)
    msg = message(info)
    assert "precision" in msg and repr(value) in msg
    assert "fp32" in msg and "int8" in msg


NUMERIC_FIELDS = {  # field: (low, high) as the message should state them
    "clock_mhz": ("1", "10000"),
    "ifmap_sram_kib": ("1", None),
    "filter_sram_kib": ("1", None),
    "ofmap_sram_kib": ("1", None),
    "dram_bytes_per_cycle": ("0.01", None),
}


@pytest.mark.parametrize("field", list(NUMERIC_FIELDS))
@pytest.mark.parametrize("value", [-1.0, 0, 0.0, math.nan, math.inf, -math.inf, np.nan, True, "700", None])
def test_numeric_fields_invalid(field, value):
    with pytest.raises(ValueError) as info:
        ChipConfig(**{field: value})
    msg = message(info)
    assert field in msg
    assert repr(value) in msg
    low, high = NUMERIC_FIELDS[field]
    plain = msg.replace(",", "").replace("_", "")  # 10,000 or 10000
    assert f"from {low} to" in plain
    if high:
        assert f"to {high}" in plain


@pytest.mark.parametrize("field", list(NUMERIC_FIELDS))
def test_numeric_fields_too_large(field):
    with pytest.raises(ValueError, match=field):
        ChipConfig(**{field: 1e12})


def test_numeric_fields_valid():
    cfg = ChipConfig(clock_mhz=1, ifmap_sram_kib=1, filter_sram_kib=np.float32(2.0), ofmap_sram_kib=1_048_576,
                     dram_bytes_per_cycle=0.01)
    assert cfg.clock_mhz == 1 and cfg.dram_bytes_per_cycle == 0.01
    assert ChipConfig(clock_mhz=10_000).clock_mhz == 10_000


def test_with_revalidates():
    cfg = ChipConfig()
    assert cfg.with_(rows=4).rows == 4
    with pytest.raises(ValueError, match="rows"):
        cfg.with_(rows=0)
    with pytest.raises(ValueError, match="dram_bytes_per_cycle"):
        cfg.with_(dram_bytes_per_cycle=-2.0)


def test_energy_must_be_energy_table():
    with pytest.raises(ValueError, match="energy"):
        ChipConfig(energy={"mac_fp32_pj": 1.0})


@pytest.mark.parametrize("name", [f.name for f in fields(EnergyTable)])
@pytest.mark.parametrize("value", [-1.0, -1e-9, math.nan, math.inf, "1", None])
def test_energy_table_invalid(name, value):
    with pytest.raises(ValueError) as info:
        EnergyTable(**{name: value})
    msg = message(info)
    assert name in msg and ">= 0" in msg and repr(value) in msg


def test_energy_table_zero_allowed_and_used():
    zero = EnergyTable(**{f.name: 0.0 for f in fields(EnergyTable)})
    s = analyze(4, 4, 4, ChipConfig(4, 4, energy=zero))
    assert s.energy_pj["total"] == 0.0


# --- parse_array ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [("8x8", (8, 8)), ("4x16", (4, 16)), ("1X256", (1, 256)),
                                            (" 2 x 3 ", (2, 3)), ("32×32", (32, 32))])
def test_parse_array_valid(text, expected):
    assert parse_array(text) == expected


@pytest.mark.parametrize("text", ["8", "axb", "8x", "x8", "8x8x8", "-1x4", "2.5x2", "", "8 8", "8*8"])
def test_parse_array_bad_format(text):
    with pytest.raises(ValueError) as info:
        parse_array(text)
    msg = message(info)
    assert "ROWSxCOLS" in msg and repr(text) in msg


@pytest.mark.parametrize("text, field, value", [("0x4", "rows", 0), ("300x2", "rows", 300), ("4x0", "cols", 0),
                                                ("2x257", "cols", 257)])
def test_parse_array_out_of_range(text, field, value):
    with pytest.raises(ValueError) as info:
        parse_array(text)
    msg = message(info)
    assert field in msg and "1 to 256" in msg and str(value) in msg


# --- gemm operands and engine ---------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["analytic", "cycle"])
def test_gemm_bad_shapes(engine):
    cfg = ChipConfig(2, 2)
    with pytest.raises(ValueError, match="inner dimensions differ"):
        gemm(np.ones((2, 3)), np.ones((2, 2)), cfg, engine=engine)
    for a, b in [(np.ones(3), np.ones((3, 2))), (np.ones((2, 3)), np.ones(3)), (np.ones((1, 2, 3)), np.ones((3, 2))),
                 (np.float32(1.0), np.ones((1, 1)))]:
        with pytest.raises(ValueError, match="2-D"):
            gemm(a, b, cfg, engine=engine)
    with pytest.raises(ValueError, match=">= 1"):
        gemm(np.ones((0, 3)), np.ones((3, 2)), cfg, engine=engine)
    with pytest.raises(ValueError, match=">= 1"):
        gemm(np.ones((2, 0)), np.ones((0, 2)), cfg, engine=engine)


@pytest.mark.parametrize("engine", ["analytic", "cycle"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_gemm_fp32_rejects_nan_and_inf(engine, bad):
    cfg = ChipConfig(2, 2)
    a = np.ones((2, 2))
    a[1, 0] = bad
    with pytest.raises(ValueError, match="A contains NaN or infinity"):
        gemm(a, np.ones((2, 2)), cfg, engine=engine)
    with pytest.raises(ValueError, match="B contains NaN or infinity"):
        gemm(np.ones((2, 2)), a, cfg, engine=engine)


@pytest.mark.parametrize("engine", ["analytic", "cycle"])
def test_gemm_int8_rejects_floats_and_out_of_range(engine):
    cfg = ChipConfig(2, 2, precision="int8")
    for a in [np.ones((2, 2)), np.ones((2, 2), np.float32), [[0.5, 1], [1, 1]], np.ones((2, 2), bool)]:
        with pytest.raises(ValueError, match=r"int8.*-128\.\.127") as info:
            gemm(a, np.ones((2, 2), np.int64), cfg, engine=engine)
        assert "A" in message(info)
    for bad in (128, -129, 255, 10**6):
        b = np.zeros((2, 2), np.int64)
        b[0, 1] = bad
        with pytest.raises(ValueError, match=r"integer B in -128\.\.127"):
            gemm(np.zeros((2, 2), np.int64), b, cfg, engine=engine)
    ok = gemm(np.full((2, 2), -128), np.full((2, 2), 127, np.int16), cfg, engine=engine)
    np.testing.assert_array_equal(ok.c, np.full((2, 2), -128 * 127 * 2))
    assert ok.c.dtype == np.int32


@pytest.mark.parametrize("engine", ["fast", "", None, "Cycle"])
def test_gemm_unknown_engine(engine):
    with pytest.raises(ValueError) as info:
        gemm(np.ones((2, 2)), np.ones((2, 2)), ChipConfig(2, 2), engine=engine)
    msg = message(info)
    assert "engine" in msg and "analytic" in msg and "cycle" in msg and repr(engine) in msg


@pytest.mark.parametrize("dims", [(0, 1, 1), (1, 0, 1), (1, 1, -2), (1.5, 1, 1), (True, 1, 1)])
def test_analyze_bad_dimensions(dims):
    with pytest.raises(ValueError, match="GEMM dimension"):
        analyze(*dims, ChipConfig())


@pytest.mark.parametrize("engine", ["analytic", "cycle"])
def test_gemm_fp32_rejects_values_that_overflow_float32(engine):
    """Values finite in float64 but beyond float32's range (~3.4e38) would become infinity on
    the chip: they must be refused like infinity itself."""
    with pytest.raises(ValueError, match="A contains NaN or infinity"):
        gemm(np.array([[1e39]]), np.array([[1.0]]), ChipConfig(1, 1), engine=engine)
    with pytest.raises(ValueError, match="B contains NaN or infinity"):
        gemm(np.array([[1.0]]), np.array([[-1e39]]), ChipConfig(1, 1), engine=engine)


def test_sram_range_message_states_the_exact_bound():
    """The SRAM fields' message states the real upper bound, 1048576 KiB (it once printed it
    with :g as '1.04858e+06', i.e. 1048580)."""
    with pytest.raises(ValueError) as info:
        ChipConfig(ifmap_sram_kib=0)
    msg = message(info)
    assert any(s in msg for s in ("1048576", "1,048,576", "1_048_576")), msg
    ChipConfig(ifmap_sram_kib=1_048_576)
    with pytest.raises(ValueError, match="ifmap_sram_kib"):
        ChipConfig(ifmap_sram_kib=1_048_577)


def test_results_do_not_share_mutable_state():
    """analyze() is memoised and hands callers the same GemmStats: its energy_pj must not be a
    shared mutable dict (changing one result's energies would change every later result)."""
    cfg = ChipConfig(2, 2, "ws", clock_mhz=321.0)
    first = analyze(3, 3, 3, cfg)
    try:
        first.energy_pj["mac"] = -1.0
    except TypeError:
        pass  # read-only mapping
    later = gemm(np.ones((3, 3)), np.ones((3, 3)), cfg).stats
    assert later.energy_pj["mac"] == pytest.approx(27 * 4.6)
    assert analyze(3, 3, 3, cfg).energy_pj["mac"] == pytest.approx(27 * 4.6)
    assert later.to_dict()["energy_pj"]["mac"] == pytest.approx(27 * 4.6)
    assert later.counters["macs"] == 27


# --- determinism --------------------------------------------------------------------------------


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_repeated_runs_are_bit_identical(dataflow, precision):
    rng = np.random.default_rng(7)
    if precision == "int8":
        a, b = rng.integers(-128, 128, (13, 17)), rng.integers(-128, 128, (17, 11))
    else:
        a, b = rng.standard_normal((13, 17)).astype(np.float32), rng.standard_normal((17, 11)).astype(np.float32)
    cfg = ChipConfig(4, 4, dataflow, precision, dram_bytes_per_cycle=3.5, ifmap_sram_kib=1.0)
    runs = [gemm(a.copy(), b.copy(), cfg, engine="cycle", trace_window=(0, 10**6)) for _ in range(3)]
    first = runs[0]
    for other in runs[1:]:
        assert other.c.dtype == first.c.dtype and other.c.tobytes() == first.c.tobytes()
        assert other.stats.counters == first.stats.counters
        assert other.stats.to_dict() == first.stats.to_dict()
        for name in ("state", "stationary", "from_left", "from_top", "psum", "fold", "left_in", "top_in",
                     "bottom_out"):
            assert getattr(other.trace, name).tobytes() == getattr(first.trace, name).tobytes()
    analytic = [gemm(a, b, cfg, engine="analytic") for _ in range(2)]
    assert analytic[0].c.tobytes() == analytic[1].c.tobytes()
    assert analytic[0].stats == analytic[1].stats
    # inputs are not modified
    assert gemm(a, b, cfg, engine="cycle").c.tobytes() == first.c.tobytes()


def test_gemm_does_not_modify_its_inputs():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    b = np.arange(6, dtype=np.float64).reshape(3, 2)
    a0, b0 = a.copy(), b.copy()
    for engine in ("analytic", "cycle"):
        gemm(a, b, ChipConfig(2, 2, "is"), engine=engine)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


# --- regressions: bugs found earlier, each pinned by the test that first showed it ----------------


def test_energy_table_rejects_bool():
    """EnergyTable refuses True/False as an energy (bool is an int), as ChipConfig refuses
    booleans for every numeric field (it once accepted them: a MAC then cost 1 pJ).

    Input: EnergyTable(mac_fp32_pj=True). Expected: ValueError naming energy.mac_fp32_pj.
    """
    with pytest.raises(ValueError, match="mac_fp32_pj"):
        EnergyTable(mac_fp32_pj=True)


@pytest.mark.parametrize("value", [np.float32(0.3), np.float64(0.3), np.int64(1)], ids=repr)
def test_energy_table_accepts_numpy_scalars(value):
    """EnergyTable accepts numpy scalars, as ChipConfig does for its numeric fields (it once
    refused those that are not Python float/int subclasses).

    Input: EnergyTable(mac_int8_pj=np.float32(0.3)) (also np.int64(1)). Expected: accepted.
    """
    assert EnergyTable(mac_int8_pj=value).mac_int8_pj == value


@pytest.mark.parametrize("bad", [True, 2.0], ids=repr)
def test_analyze_validation_does_not_depend_on_the_cache(bad):
    """analyze() validates its dimensions before its memo (functools.lru_cache) sees them: True
    == 1 and 2.0 == 2 hash alike, so a bad dimension was once accepted whenever the equal int had
    been analysed before.

    Input: analyze(1, 1, 1, cfg) then analyze(True, 1, 1, cfg) (likewise 2 then 2.0). Expected:
    ValueError "GEMM dimension M must be a whole number >= 1, got True", as on a cold cache.
    """
    cfg = ChipConfig(3, 5, "os", clock_mhz=123.0)
    with pytest.raises(ValueError, match="GEMM dimension M"):  # cold cache: refused
        analyze(bad, 1, 1, cfg.with_(clock_mhz=124.0))
    analyze(int(bad), 1, 1, cfg)
    with pytest.raises(ValueError, match="GEMM dimension M"):
        analyze(bad, 1, 1, cfg)
