"""The one table of settings: defaults, bounds and URL keys stated once, and everything built from it."""
import param
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chipviz import settings
from chipviz.chip import ChipConfig
from chipviz.i18n import Message
from chipviz.session import TrainingSession
from chipviz.settings import BY_KEY, DEFAULTS, KEYS, SETTINGS, InvalidValue, convert, parse_query, to_query


def test_every_setting_has_one_key_one_name_and_a_valid_default():
    names = [s.name for s in SETTINGS]
    keys = [s.key for s in SETTINGS + settings.VIEW_SETTINGS] + list(settings.LESSON_KEYS)
    assert len(set(names)) == len(names) and len(set(keys)) == len(keys)
    for s in SETTINGS + settings.VIEW_SETTINGS:
        assert convert(s, settings.format_value(s.default)) == s.default, s.name
        if s.kind in ("int", "float"):
            assert s.low <= s.default <= s.high, s.name


def test_the_session_is_built_from_the_table():
    for s in SETTINGS:
        p = TrainingSession.param[s.name]
        assert p.default == s.default, s.name
        if s.kind == "choice":
            assert list(p.objects) == list(s.choices), s.name
        elif s.kind in ("int", "float"):
            assert p.bounds == (s.low, s.high), s.name


def test_defaults_build_the_default_chip_and_run():
    chip = settings.chip_config(DEFAULTS)
    assert chip == ChipConfig(rows=8, cols=8, dataflow="ws", precision="fp32", clock_mhz=700.0,
                              ifmap_sram_kib=256.0, filter_sram_kib=256.0, ofmap_sram_kib=256.0,
                              dram_bytes_per_cycle=32.0)
    run = settings.train_settings(DEFAULTS)
    assert run.hidden == (32,) and run.dataset == "digits" and run.lr == 0.01
    assert not hasattr(run, "precision"), "the chip owns the precision"
    assert settings.chip_config({**DEFAULTS, "precision": "int8"}).precision == "int8"


@pytest.mark.parametrize("key, raw, reason", [
    ("rows", "0", "reason.whole"), ("rows", "abc", "reason.whole"), ("rows", "9" * 5000, "reason.whole"),
    ("lr", "nan", "reason.number"), ("lr", "1e308", "reason.number"), ("lr", "1" * 10_000, "reason.number"),
    ("dataset", "<script>", "reason.one_of"), ("batch", "2.5", "reason.whole"), ("cols", "", "reason.whole"),
    ("lang", "fr", "reason.one_of"), ("fps", "0", "reason.whole")])
def test_bad_values_are_refused_with_a_reason_as_data(key, raw, reason):
    with pytest.raises(InvalidValue) as info:
        convert(key, raw)
    assert isinstance(info.value.reason, Message) and info.value.reason.key == reason
    assert str(info.value) == str(info.value.reason)


def test_a_link_is_split_into_settings_view_lesson_and_notices():
    link = parse_query({"dataset": "spiral", "hidden": "2", "w1": "16", "act": "tanh", "rows": "-4", "op": "3",
                        "lang": "zh", "lesson": "3", "step": "2", "hide": "lr", "hidden_layers": "2"})
    assert link.settings == {"dataset": "spiral", "hidden_layers": 2, "width1": 16, "activation": "tanh"}
    assert link.view == {"op": 3, "lang": "zh"}
    assert link.lesson == {"lesson": "3", "step": "2", "hide": "lr"}
    assert [n.key for n in link.notices] == ["url.bad_value", "url.unknown_key"]
    assert "hidden_layers" in str(link.notices[1])


def test_the_query_holds_only_known_keys_and_round_trips():
    values = {**DEFAULTS, "dataset": "moons", "lr": 0.003, "rows": 5, "dataflow": "is"}
    query = to_query(values, {"op": 2, "fps": 30, "lang": "zh", "bogus": 1}, {"lesson": 3, "step": 1, "x": 2})
    assert set(query) <= set(settings.KNOWN_KEYS) and "bogus" not in query and "x" not in query
    link = parse_query(query)
    assert not link.notices
    assert link.settings == values and link.view == {"op": 2, "fps": 30, "lang": "zh"}


@given(st.sampled_from([s for s in SETTINGS if s.kind in ("int", "float")]), st.floats(allow_nan=False))
def test_any_number_in_bounds_round_trips_through_a_link(setting, x):
    low, high = setting.low, setting.high
    value = min(max(x, low), high)
    value = int(value) if setting.kind == "int" else value
    back = convert(setting, settings.format_value(value))
    assert back == pytest.approx(value, rel=1e-5)


def test_apply_changes_many_settings_as_one_rebuild():
    s = TrainingSession()
    builds = []
    s.param.watch(lambda e: builds.append(e.new), "network")
    assert s.apply({"dataset": "spiral", "hidden_layers": 2, "width1": 16, "width2": 16, "activation": "tanh"},
                   announce=False)
    assert len(builds) == 1 and s.snapshot.layer_sizes == (2, 16, 16, 2) and s.notice is None
    assert not s.apply({"dataset": "spiral"}), "no change, no rebuild"
    s.apply({"width1": 8})
    assert s.notice == Message("dash.reset_notice", names=[Message("param.width1")])
    assert KEYS["w1"] == "width1" and BY_KEY["w1"].rebuilds and not BY_KEY["lr"].rebuilds
    s.close()


def test_no_panel_in_the_headless_state():
    import subprocess
    import sys

    code = ("import sys, chipviz.settings, chipviz.session, chipviz.lessons, chipviz.i18n, chipviz.weight_map, "
            "chipviz.trace_payload, chipviz.server_load; "
            "bad = [m for m in ('panel', 'bokeh') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    assert isinstance(TrainingSession.param["rows"], param.Integer)


def test_any_link_however_long_or_wide_gives_notices_not_errors():
    link = parse_query({"lr": "1" * 10_000, "rows": "9" * 5_000, **{f"k{i}": "1" for i in range(5_000)}})
    assert link.settings == {} and [n.key for n in link.notices] == ["url.bad_value", "url.bad_value",
                                                                      "url.unknown_keys"]
    assert "5,000 unknown settings" in str(link.notices[-1]) and len(str(link.notices[0])) < 200
