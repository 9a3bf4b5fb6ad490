"""The dashboard without a browser: building it, every control, training, animation, URL state."""
import math
import time

import numpy as np
import param
import pytest

from chipviz.app.dashboard import Dashboard
from chipviz.session import TrainingSession
from chipviz.settings import KEYS, parse_query, to_query


@pytest.fixture
def dash():
    d = Dashboard()
    yield d
    d.session.close()


def test_builds_with_a_gemm_ready_to_animate(dash):
    assert dash.session.snapshot.step == 1
    assert dash.op_select.options, "the first step's GEMMs are offered"
    assert dash.pe_array.trace is not None and dash.pe_array.n_cycles > 0
    assert dash.template() is not None


def test_each_control_reaches_the_session(dash):
    w = dash.controls.widgets
    changes = {"dataset": "xor", "hidden": 2, "w1": 12, "w2": 7, "act": "tanh", "opt": "sgd", "batch": 16,
               "seed": 3, "precision": "int8", "noise": 0.2, "rows": 4, "cols": 6, "dataflow": "os",
               "clock": 500.0, "sram": 64.0, "bw": 8.0, "speed": 50}
    for key, value in changes.items():
        w[key].value = value
        assert getattr(dash.session, KEYS[key]) == value, key
    w["lr"].value = -1.0  # log10
    assert dash.session.lr == pytest.approx(0.1)
    dash.session.step()
    snap = dash.session.snapshot
    assert snap.weights[0].shape == (2, 12) and snap.weights[1].shape == (12, 7)
    op = snap.report.ops[0]
    assert (op.stats.rows, op.stats.cols, op.stats.dataflow, op.stats.precision) == (4, 6, "os", "int8")


def test_shape_change_resets_with_a_notice(dash):
    dash.session.step(3)
    dash.controls.widgets["w1"].value = 20
    assert dash.session.snapshot.step == 0
    assert any("reset" in str(n) for n in dash.notices)
    assert dash.alert.visible


def test_learning_rate_change_keeps_training(dash):
    dash.session.step(2)
    dash.controls.widgets["lr"].value = -3.0
    dash.session.step()
    assert dash.session.snapshot.step == 4  # 1 at start, then 2 + 1, without a reset
    assert dash.session.trainer.optimizer.lr == pytest.approx(1e-3)


def test_one_step_button_and_train_toggle(dash):
    dash.controls.step_button.clicks += 1
    assert dash.session.snapshot.step == 2
    dash.controls.train_button.value = True
    time.sleep(1.0)
    dash.controls.train_button.value = False
    time.sleep(0.2)
    assert dash.session.snapshot.step > 2
    assert not dash.session.running


def test_animation_navigation(dash):
    gemms = list(dash.op_select.options.values())
    assert dash.op == gemms[0]
    dash.next_button.clicks += 1
    assert dash.op == gemms[1]
    dash.prev_button.clicks += 1
    assert dash.op == gemms[0]
    dash.phase_button.clicks += 1
    assert dash.session.operations()[dash.op].phase != "forward"
    pe = dash.pe_array
    before = pe.cycle
    pe.step(5)
    assert pe.cycle == before + 5
    pe.next_fold()
    assert pe.fold_of() == 1
    assert dash.network.fold == 1


def test_animated_trace_is_the_chip_gemm(dash):
    op = dash.session.operations()[dash.op]
    trace = dash.pe_array.trace
    assert trace.n_cycles == op.stats.cycles
    assert int((trace.state == 1).sum()) == op.stats.macs


def test_large_array_shows_numbers_not_animation(dash):
    dash.session.param.update(rows=128, cols=128)
    dash.session.step()
    dash._load_op(0)
    assert "too large to animate" in dash.pe_array.caption
    assert "cycles" in dash.op_info.object


def test_diverged_training_shows_message_and_reset(dash):
    dash.session.param.update(optimizer="sgd", lr=10.0)
    dash.session.width1 = 64  # rebuild with the new settings
    for _ in range(200):
        dash.session.step()
        if dash.session.diverged:
            break
    assert dash.session.diverged and "diverged" in str(dash.session.diverged)
    assert dash.diverged_alert.visible and dash.diverged_reset.visible
    assert "Traceback" not in dash.diverged_alert.object
    dash.diverged_reset.clicks += 1
    assert not dash.session.diverged and not dash.diverged_alert.visible


def test_url_round_trip():
    a = TrainingSession(dataset="spiral", hidden_layers=2, width2=9, lr=0.003, rows=5, dataflow="is")
    query = to_query(a.values())
    link = parse_query(query)
    assert not link.notices
    b = TrainingSession(**link.settings)
    for name in KEYS.values():
        assert getattr(b, name) == pytest.approx(getattr(a, name)) if isinstance(getattr(a, name), float) \
            else getattr(b, name) == getattr(a, name)
    a.close()
    b.close()


@pytest.mark.parametrize("key, raw", [("rows", "-4"), ("rows", "abc"), ("lr", "nan"), ("lr", "1e308"),
                                      ("hidden", "99999999999999999999"), ("dataset", "<script>"),
                                      ("batch", "2.5"), ("lr", "inf"), ("cols", "")])
def test_bad_url_values_fall_back_with_a_notice(key, raw):
    d = Dashboard(query={key: raw, "seed": "7"})
    try:
        default = TrainingSession.param[KEYS[key]].default
        assert getattr(d.session, KEYS[key]) == default
        assert d.session.seed == 7, "good values still apply"
        assert any(key in str(n) for n in d.notices) and d.alert.visible
    finally:
        d.session.close()


def test_query_with_list_values_and_unknown_keys():
    link = parse_query({"rows": ["3", "4"], "bogus": "1"})
    assert link.settings == {"rows": 4}
    assert any("bogus" in str(n) for n in link.notices)


def test_sessions_are_isolated():
    a, b = Dashboard(), Dashboard()
    try:
        a.controls.widgets["rows"].value = 3
        a.session.step(4)
        assert b.session.rows == 8 and b.session.snapshot.step == 1
        assert not np.array_equal(a.session.snapshot.weights[0], b.session.snapshot.weights[0]) or \
            a.session.snapshot.step != b.session.snapshot.step
    finally:
        a.session.close()
        b.session.close()


def test_session_close_stops_the_worker():
    s = TrainingSession()
    s.start()
    time.sleep(0.3)
    s.close()
    assert not s._worker.is_alive()
    assert not math.isnan(s.snapshot.test_loss)


def test_displays_in_a_notebook():
    """The same app object renders as a notebook output (Panel's mime bundle)."""
    import panel as pn

    pn.extension()
    d = Dashboard()
    try:
        data, _metadata = d._repr_mimebundle_()
        assert "application/vnd.holoviews_exec.v0+json" in data and "text/html" in data
    finally:
        d.session.close()


def test_cycle_slider_scrubs_the_animation(dash):
    pe = dash.pe_array
    assert dash.scrub.end == pe.total_cycles - 1
    target = pe.total_cycles - 10  # beyond the first window sent to the browser
    with param.edit_constant(dash.scrub):  # as the browser sets it when the drag ends
        dash.scrub.value_throttled = target
    assert pe.cycle == target
    assert pe.start_cycle <= target < pe.start_cycle + pe.n_cycles
    pe.step(3)
    assert dash.scrub.value == target + 3


def test_a_closed_tabs_dashboard_and_session_are_freed():
    """What a closed tab leaves behind is collected: nothing (Panel's link registries included) keeps it."""
    import gc
    import weakref

    d = Dashboard()
    d.session.start()
    time.sleep(0.3)
    session, dashboard = weakref.ref(d.session), weakref.ref(d)
    d._on_destroyed(None)  # what Panel calls when the tab's session ends
    del d
    deadline = time.monotonic() + 5  # the stopped worker may hold its session a moment longer
    while (session() is not None or dashboard() is not None) and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert session() is None and dashboard() is None


# ----- one state: every view derives from the session's settings -----

SPIRAL = {"dataset": "spiral", "hidden": "2", "w1": "16", "w2": "16", "act": "tanh", "rows": "4", "cols": "6",
          "dataflow": "os", "hidden_layers": "2"}


def test_a_link_sets_every_widget_the_network_and_the_chip_before_the_first_render():
    d = Dashboard(query=SPIRAL)
    try:
        w = d.controls.widgets
        assert (w["dataset"].value, w["hidden"].value, w["w1"].value, w["w2"].value, w["act"].value) == \
            ("spiral", 2, 16, 16, "tanh")
        assert (w["rows"].value, w["cols"].value, w["dataflow"].value) == (4, 6, "os")
        assert d.session.snapshot.layer_sizes == (2, 16, 16, 2) and "2 → 16 → 16 → 2" in d.network_shape.object
        op = d.session.operations()[d.op]
        assert (op.stats.m, op.stats.k, op.stats.n) == (32, 2, 16) and op.stats.dataflow == "os"
        assert (d.pe_array.rows, d.pe_array.cols) == (4, 6) and d.pe_array.trace.n_cycles == op.stats.cycles
        assert "32×2 · 2×16" in next(iter(d.op_select.options))
        assert any("hidden_layers" in str(n) for n in d.notices), "the unknown key is reported"
        query = d.query()
        assert "hidden_layers" not in query and query["dataset"] == "spiral" and query["w1"] == "16"
    finally:
        d.session.close()


def test_a_new_network_never_shows_the_old_networks_trace(dash):
    old = dash.pe_array.trace
    dash.controls.widgets["w1"].value = 20  # rebuilds: step 0, no GEMM run yet
    assert dash.session.snapshot.step == 0 and dash.session.operations() == []
    assert dash.pe_array.trace is None and dash.pe_array.frames is None
    assert "One step" in dash.pe_array.caption and "One step" in dash.op_info.object
    dash.controls.step_button.clicks += 1
    op = dash.session.operations()[dash.op]
    assert dash.pe_array.trace is not None and dash.pe_array.trace is not old
    assert (op.stats.k, op.stats.n) == (64, 20)
    dash.controls.reset_button.clicks += 1
    assert dash.pe_array.trace is None and dash.session.snapshot.step == 0


def test_a_chip_change_shows_a_press_step_state_then_the_new_chip(dash):
    dash.controls.widgets["rows"].value = 4
    assert dash.pe_array.trace is None and dash.session.operations() == []
    assert "4×8 ws" in dash.pe_array.caption and (dash.pe_array.rows, dash.pe_array.cols) == (4, 8)
    dash.lang = "zh"
    assert "芯片已改为 4×8" in dash.pe_array.caption
    dash.lang = "en"
    dash.session.step()
    assert dash.pe_array.trace is not None and dash.pe_array.rows == 4
    assert dash.session.operations()[dash.op].stats.rows == 4


def test_the_caption_follows_the_language(dash):
    assert dash.pe_array.caption.startswith("layer 1 · forward · Y = X·W")
    dash.lang = "zh"
    assert dash.pe_array.caption.startswith("第 1 层 · 前向传播") and "第 1 步" in dash.op_info.object
    assert dash.pe_array.labels["M"] == "批次"
    dash.lang = "en"
    assert dash.pe_array.labels["M"] == "batch"


def test_apply_query_later_goes_the_same_way_as_opening_the_link(dash):
    dash.apply_query(SPIRAL)
    assert dash.controls.widgets["dataset"].value == "spiral" and dash.session.snapshot.layer_sizes == (2, 16, 16, 2)
    assert dash.session.operations()[dash.op].stats.dataflow == "os" and dash.pe_array.trace is not None
    assert dash.session.notice is None, "a link sets up the network on purpose: no reset notice"


# ----- train = watch: while training, the PE array plays each new step's GEMMs in order -----

def _finish_batch(pe):
    pe.cycle = pe.batch_stop - 1  # as the browser reports reaching the batch's last cycle


def test_training_plays_the_steps_gemms_in_order_then_the_update(dash):
    snap = dash.session.snapshot
    gemms = snap.gemm_indices()
    phases = [snap.report.ops[i].phase for i in gemms]
    assert phases[0] == "forward" and "backward_weights" in phases
    dash.session.running = True  # (the worker is not started: the test plays the browser's part)
    pe = dash.pe_array
    seen = []
    for i in gemms:
        assert dash.op == i and pe.playing and dash.network.current_op == i
        op = snap.report.ops[i]
        seen.append(op.phase)
        if op.stats.folds > 1:  # the tour: the first fold cycle by cycle, the rest skipped, and the caption says so
            assert pe.n_cycles == op.stats.cycles_per_fold and pe.total_cycles == op.stats.cycles
            assert not pe.auto_advance and "skipped" in pe.caption
        _finish_batch(pe)
    assert seen == phases
    # after the last GEMM the update has shown and the newest step starts again from its first GEMM
    assert dash.op == dash.session.snapshot.gemm_indices()[0]
    dash.session.running = False
    assert pe.auto_advance, "paused: the animation stays and can play on through its GEMM"


def test_every_cycle_pace_plays_whole_gemms(dash):
    dash.pace = "every"
    dash.session.running = True
    pe = dash.pe_array
    op = dash.session.snapshot.report.ops[dash.op]
    assert pe.auto_advance and pe.total_cycles == op.stats.cycles and "skipped" not in pe.caption
    dash.session.running = False


def test_update_is_shown_between_steps():
    d = Dashboard()
    try:
        snap = d.session.snapshot
        d._show_update(snap)
        assert d.pe_array.caption.startswith("update · adam update on the vector unit")
        update = next(i for i, op in enumerate(snap.report.ops) if op.phase == "update")
        assert d.network.current_op == update and "vector unit" in d.op_info.object
    finally:
        d.session.close()


def test_key_n_asks_for_the_next_gemm(dash):
    first = dash.op
    dash.pe_array._handle_msg({"action": "next_gemm"})
    assert dash.op == dash.session.snapshot.gemm_indices()[1] != first


def test_downloads_for_slides_are_the_gemm_shown(dash):
    from PIL import Image

    pe = dash.pe_array
    gif = Image.open(dash._gif_file())
    start, stop = dash._gif_window()
    assert gif.format == "GIF" and gif.n_frames == stop - start and start <= pe.cycle
    png = Image.open(dash._png_file())
    assert png.format == "PNG" and png.size[0] > 100
    dash.controls.widgets["w1"].value = 20  # no GEMM shown: nothing to download
    assert dash._gif_file() is None and dash._png_file() is None
