"""The live plots, headless: each view follows the session's snapshots through its data sources."""
import math
import threading
import time

import numpy as np
import pytest

pn = pytest.importorskip("panel")

from chipviz.app import plots  # noqa: E402
from chipviz.app.plots import (  # noqa: E402
    BOUNDARY_NOTE,
    BoundaryPlot,
    DescentPlot,
    EnergyPlot,
    LivePlots,
    LossPlot,
    RooflinePlot,
    UtilizationPlot,
    fmt,
)
from chipviz.session import TrainingSession  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return TrainingSession(dataset="digits", hidden_layers=1, width1=16)


def finite(history, column):
    values = np.asarray(history[column], float)
    keep = np.isfinite(values)
    return np.asarray(history["step"])[keep], values[keep]


def test_loss_plot_follows_history(digits):
    view = LossPlot(digits)
    digits.step(5)
    hist = digits.snapshot.history
    for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
        steps, values = finite(hist, key)
        data = view.sources[key].data
        assert list(data["x"]) == list(steps)
        np.testing.assert_allclose(data["y"], values)
    assert len(view.sources["train_loss"].data["x"]) >= 5
    assert not np.isnan(view.sources["train_loss"].data["y"]).any()
    # more steps: the curve grows (streamed) and still equals the history
    digits.step(3)
    steps, values = finite(digits.snapshot.history, "train_loss")
    np.testing.assert_allclose(view.sources["train_loss"].data["y"], values)
    view.log_y = True
    assert type(view.loss_fig.y_scale).__name__ == "LogScale"
    view.log_y = False
    assert type(view.loss_fig.y_scale).__name__ == "LinearScale"
    view.dispose()


def test_utilization_plot_bars_match_gemms(digits):
    view = UtilizationPlot(digits)
    digits.step(5)
    gemms = [op for op in digits.snapshot.report.ops if op.is_gemm]
    data = view.bar_source.data
    assert len(data["label"]) == len(gemms) == 5  # L1 fwd, L2 fwd, L2 dW, L2 dX, L1 dW (layer 1 needs no dX)
    assert data["util"] == [op.stats.utilization for op in gemms]
    assert data["mapping"] == [op.stats.mapping_efficiency for op in gemms]
    assert data["label"][0] == "L1 fwd Y=X·W"
    assert data["color"][0] != data["color"][-1]  # forward and backward coloured apart
    assert list(view.bar_fig.y_range.factors) == list(reversed(data["label"]))
    steps, util = finite(digits.snapshot.history, "utilization")
    np.testing.assert_allclose(view.time_source.data["y"], util)
    view.dispose()


def test_utilization_plot_all_gemms():
    s = TrainingSession(dataset="xor", hidden_layers=2, width1=4, width2=4)
    view = UtilizationPlot(s)
    s.step(2)
    gemms = [op for op in s.snapshot.report.ops if op.is_gemm]
    assert len(view.bar_source.data["label"]) == len(gemms) == 8
    np.testing.assert_allclose(view.bar_source.data["mapping"], [op.stats.mapping_efficiency for op in gemms])
    assert len(set(view.bar_source.data["label"])) == 8


def test_energy_plot_stacks_components_by_phase(digits):
    view = EnergyPlot(digits)
    digits.step(5)
    report = digits.snapshot.report
    name, scale = view.unit
    assert name in ("pJ", "nJ", "µJ", "mJ")
    assert view.bar_fig.yaxis.axis_label == f"energy per step ({name})"
    data = view.bar_source.data
    stacked = sum(sum(data[k]) for k in ("mac", "register", "sram", "dram", "vector"))
    assert stacked * scale == pytest.approx(report.energy_pj, rel=1e-9)
    for i, phase in enumerate(("forward", "backward_data", "backward_weights", "update")):
        total = sum(data[k][i] for k in ("mac", "register", "sram", "dram", "vector")) * scale
        assert total == pytest.approx(report.phases[phase]["energy_pj"], rel=1e-9)
    steps, energy = finite(digits.snapshot.history, "energy_pj")
    t_unit = view.time_fig.yaxis.axis_label.split("(")[1].rstrip(")")
    t_scale = dict(plots.ENERGY_UNITS)[t_unit]
    np.testing.assert_allclose(view.time_source.data["y"] * t_scale, energy)
    view.include_dram = False
    assert sum(view.bar_source.data["dram"]) == 0
    view.dispose()


def test_roofline_points_are_the_ops_stats(digits):
    view = RooflinePlot(digits, highlight_op=0)
    digits.step(5)
    ops = digits.snapshot.report.ops
    data = view.point_source.data
    gemm_index = [i for i, op in enumerate(ops) if op.is_gemm]
    assert sorted(data["index"]) == gemm_index
    for index, x, y, att in zip(data["index"], data["x"], data["y"], data["attainable"]):
        stats = ops[index].stats
        assert x == stats.arithmetic_intensity
        assert y == stats.achieved_macs_per_cycle
        assert att == stats.attainable_macs_per_cycle
    chip = digits.chip_config()
    roof_x, roof_y = np.asarray(view.roof_source.data["x"]), np.asarray(view.roof_source.data["y"])
    np.testing.assert_allclose(roof_y, np.minimum(chip.pes, roof_x * chip.dram_bytes_per_cycle))
    assert view.highlight_source.data["x"] == [ops[0].stats.arithmetic_intensity]
    view.highlight_op = 1  # a vector operation: nothing to highlight
    assert view.highlight_source.data["x"] == []
    view.highlight_op = gemm_index[-1]
    assert view.highlight_source.data["y"] == [ops[gemm_index[-1]].stats.achieved_macs_per_cycle]
    view.dispose()


def test_descent_plot_surface_and_sgd_update():
    s = TrainingSession(dataset="xor", optimizer="sgd", lr=0.1, hidden_layers=1, width1=6)
    view = DescentPlot(s, refresh_s=0, resolution=7)
    s.step(4)
    plane = view._plane[1]
    assert view._plane[0] == 4
    image = view.image_source.data["image"][0]
    assert image.shape == (7, 7)
    np.testing.assert_allclose(image, plane.loss)
    assert len(view.path_source.data["x"]) == 5  # start + 4 steps
    assert "% of movement)" in view.fig.xaxis.axis_label
    # the update written out: W_new = W_old − α·g for layer 1, W[0, 0]
    before, grads = s.snapshot.update
    w_old, g = float(before[0][0, 0]), float(grads[0][0, 0])
    text = view.update_pane.object
    assert fmt(w_old) in text and fmt(w_old - 0.1 * g) in text and fmt(abs(g)) in text
    assert "0.1" in text
    # another weight: layer 2, W[3, 1]
    view.layer, view.row, view.col = 2, 3, 1
    text = view.update_pane.object
    assert "layer 2, W[3, 1]" in text
    w_old, g = float(before[2][3, 1]), float(grads[2][3, 1])
    assert fmt(w_old - 0.1 * g) in text
    assert fmt(float(s.snapshot.weights[1][3, 1])) in text
    # out-of-range choices are clamped to the layer's shape
    view.row = 99
    assert "W[5, 1]" in view.update_pane.object
    view.dispose()


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_descent_update_other_optimizers(optimizer):
    s = TrainingSession(dataset="xor", optimizer=optimizer, hidden_layers=1, width1=4)
    s.step(3)
    snap = s.snapshot
    text = DescentPlot.update_html(snap, 1, 1, 2)
    before, grads = snap.update
    w_old, w_new = float(before[0][1, 2]), float(snap.weights[0][1, 2])
    for value in (w_old, float(grads[0][1, 2]), w_new, w_new - w_old, snap.lr):
        assert fmt(value) in text
    assert optimizer in text


def test_boundary_plot_xor_and_digits():
    s = TrainingSession(dataset="xor", hidden_layers=1, width1=8)
    view = BoundaryPlot(s, refresh_s=0, resolution=30)
    s.step(5)
    assert view.pane.visible and not view.note.visible
    image = view.image_source.data["image"][0]
    assert image.shape == (30, 30)
    assert ((image >= 0) & (image <= 1)).all()
    raw = s.trainer.raw_data
    assert len(view.train_source.data["x"]) == len(raw.x_train)
    assert len(view.test_source.data["x"]) == len(raw.x_test)
    np.testing.assert_array_equal(view.train_source.data["y"], raw.x_train[:, 1])
    # the heat map is the network's P(class 1) at the grid points
    r = view._result[1]
    xx, yy = np.meshgrid(r["gx"], r["gy"])
    probs = s.predict(np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32))[:, 1].reshape(30, 30)
    np.testing.assert_allclose(image, probs, rtol=1e-5, atol=1e-6)
    view.dispose()

    d = TrainingSession(dataset="digits", hidden_layers=1, width1=8)
    note_view = BoundaryPlot(d, refresh_s=0)
    d.step(2)
    assert note_view.note.visible and not note_view.pane.visible
    assert BOUNDARY_NOTE in note_view.note.object
    note_view.dispose()


def test_boundary_follows_a_dataset_change():
    s = TrainingSession(dataset="digits", hidden_layers=1, width1=8)
    view = BoundaryPlot(s, refresh_s=0, resolution=12)
    assert view.note.visible
    s.dataset = "moons"  # rebuilds the network and publishes
    assert view.pane.visible and not view.note.visible
    assert len(view.train_source.data["x"]) == len(s.trainer.raw_data.x_train)


def test_throttle_runs_late_once():
    calls = []
    t = plots._Throttle(0.3, lambda: calls.append(time.monotonic()))
    t()
    t()
    t()
    assert len(calls) == 1  # the first at once, the others folded into one late call
    time.sleep(0.5)
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.25
    t.close()


def test_updates_from_a_worker_thread_go_through_the_document(monkeypatch, digits):
    """When served, edits from the worker thread are handed to pn.state.execute with the
    document current, and coalesced while one is pending."""
    view = LossPlot(digits)

    class FakeDoc:
        session_context = object()

    doc = FakeDoc()
    queued = []

    def fake_execute(callback, schedule="auto"):
        assert pn.state.curdoc is doc
        queued.append(callback)

    monkeypatch.setattr(view, "_document", lambda: doc)
    monkeypatch.setattr(pn.state, "execute", fake_execute)
    before = len(view.sources["train_loss"].data["x"])
    worker = threading.Thread(target=lambda: (digits.step(1), digits.step(1)))
    worker.start()
    worker.join()
    assert len(queued) == 1  # two snapshots, one pending redraw
    assert len(view.sources["train_loss"].data["x"]) == before  # nothing touched off the document's thread
    monkeypatch.setattr(pn.state, "execute", lambda cb, schedule="auto": cb())
    queued[0]()
    steps, values = finite(digits.snapshot.history, "train_loss")
    assert len(view.sources["train_loss"].data["x"]) == len(steps) == before + 2
    view.dispose()


def test_live_plots_builds_all_views():
    s = TrainingSession(dataset="circle", hidden_layers=1, width1=4)
    live = LivePlots(s, highlight_op=0)
    s.step(2)
    assert live.roofline.highlight_op == 0
    live.highlight_op = 2
    assert live.roofline.highlight_op == 2
    assert len(live._tabs) == 6  # five plots and the design space
    assert live.loss.sources["train_loss"].data["y"][-1] == pytest.approx(s.snapshot.report.loss)
    live.dispose()
    n = len(live.loss.sources["train_loss"].data["x"])
    s.step(1)
    assert len(live.loss.sources["train_loss"].data["x"]) == n  # disposed views no longer follow


def test_fmt():
    assert fmt(-0.0) == "0"
    assert fmt(-1.25) == "−1.25"
    assert fmt(1 / 3) == "0.333333"
    assert not math.isnan(float(fmt(2.5)))


def test_set_data_sends_only_the_columns_that_changed():
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource

    from chipviz.app.sources import set_data

    source = ColumnDataSource({"x": np.arange(5.0), "y": np.zeros(5), "label": list("abcde")})
    doc = Document()
    doc.add_root(source)
    events = []
    doc.on_change(lambda event: events.append(event))
    set_data(source, {"x": np.arange(5.0), "y": np.zeros(5), "label": list("abcde")})
    assert events == []  # nothing changed: nothing sent
    set_data(source, {"x": np.arange(5.0), "y": np.ones(5), "label": list("abcde")})
    assert len(events) == 1 and events[0].cols == ["y"]
    assert np.array_equal(source.data["y"], np.ones(5))
    set_data(source, {"x": np.arange(3.0), "y": np.ones(3), "label": list("abc")})  # new length: all of it
    assert len(events) == 2 and getattr(events[1], "cols", None) is None
    assert list(source.data["label"]) == list("abc")


def test_views_in_closed_tabs_wait_until_their_tab_opens():
    s = TrainingSession(dataset="circle", hidden_layers=1, width1=4)
    live = LivePlots(s)
    assert live.loss.shown and live.boundary.shown and not live.utilization.shown
    before = len(live.utilization.time_source.data["x"])
    s.step(3)
    assert len(live.utilization.time_source.data["x"]) == before  # its tab is closed: not redrawn
    assert len(live.loss.sources["train_loss"].data["x"]) > 0
    live._tabs.active = 2  # the utilisation tab opens: it catches up at once
    assert live.utilization.shown and live.loss.shown and not live.boundary.shown  # the loss is always on screen
    assert list(live.utilization.time_source.data["x"])[-1] == s.snapshot.step
    live.dispose()
