"""PEArrayView without a browser: what it sends, navigation, batch hand-over, browser code and bad inputs."""
from __future__ import annotations

import re

import numpy as np
import pytest

from chipviz import palette
from chipviz.app.pe_array import CSS_PATH, ESM_PATH, PEArrayView, browser_palette, strip_status
from chipviz.chip import ChipConfig, gemm
from chipviz.chip.dataflow_table import DATAFLOW_TABLE
from chipviz.trace_payload import default_batch_cycles, pack_window, unpack_payload

from traces import DATAFLOWS, run  # tests/traces.py


@pytest.fixture(params=DATAFLOWS)
def traced(request):
    return run(request.param)


# ---- what the view sends ------------------------------------------------------------------
# (the payload format itself is tested headless in test_trace_payload.py)

@pytest.mark.parametrize("window", [None, (3, 17), (20, 21)])
def test_load_trace_sends_the_window_with_whole_trace_scales(traced, window):
    _, _, tr, total = traced
    view = PEArrayView(auto_advance=False)  # a 1-cycle window ends at once: no hand-over here
    start, stop = window if window else (None, None)
    view.load_trace(tr, start, stop)
    start = tr.start if start is None else start
    stop = view.start_cycle + view.n_cycles
    assert view.frames == pack_window(tr, start, stop, total_cycles=total, psum_scale=float(np.abs(tr.psum).max()),
                                      stationary_scale=float(np.abs(tr.stationary).max()))
    header, _ = unpack_payload(view.frames)
    assert (header["start"], header["n"], header["total_cycles"]) == (start, stop - start, total)
    assert header["follow"] is False


def test_default_window_follows_batch_bytes():
    _, _, tr, _ = run("ws", rows=4, cols=4, m=40)
    view = PEArrayView(batch_bytes=4096)
    view.load_trace(tr)
    assert view.n_cycles == default_batch_cycles(4, 4, "ws", 4096) < tr.n_cycles


# ---- loading and navigation ---------------------------------------------------------------

def test_load_trace_sets_the_view_params():
    _, _, tr, total = run("is", rows=4, cols=4)
    view = PEArrayView(selected_pe=(7, 7))
    view.load_trace(tr, 5, 15, labels={"K": "input features"}, caption="layer 1 · forward", cycle=9)
    assert (view.rows, view.cols, view.dataflow) == (4, 4, "is")
    assert (view.start_cycle, view.n_cycles, view.total_cycles, view.cycle) == (5, 10, total, 9)
    assert view.labels == {"K": "input features"} and view.caption == "layer 1 · forward"
    assert view.selected_pe is None  # (7, 7) is off a 4×4 array
    assert not view.at_end and view.trace is tr
    view.load_trace(tr, 5, 15, cycle=99)  # a cycle outside the window falls back to its start
    assert view.cycle == 5


def test_step_moves_within_and_across_batches():
    _, _, tr, _ = run("ws", m=20)
    view = PEArrayView()
    view.load_trace(tr, 0, 10)
    assert view.step() == 1 and view.step(3) == 4 and view.step(-2) == 2 and view.step(0) == 2
    assert view.step(20) == 22  # beyond the batch: a new window that starts there
    assert view.start_cycle == 22 and view.n_cycles == 10
    assert view.step(-1) == 21  # back before the window: the new one ends just after it
    assert view.start_cycle <= 21 < view.batch_stop - 1
    last = tr.start + tr.n_cycles - 1
    assert view.step(10**6) == last  # clamped to the trace
    assert view.at_end and view.batch_stop == tr.n_cycles
    assert view.step(-10**6) == 0


def test_next_and_prev_fold():
    _, _, tr, _ = run("ws", m=6, k=9, n=7)  # 3 row folds × 2 column folds
    folds = tr.fold
    starts = [0] + [c for c in range(1, len(folds)) if folds[c] != folds[c - 1]]
    assert len(starts) == len(tr.tiles) == 6
    view = PEArrayView(auto_advance=False)
    view.load_trace(tr, 0, 12)
    for s in starts[1:]:
        assert view.next_fold() == s and view.fold_of() == folds[s]
    assert view.next_fold() == len(folds) - 1  # last fold: its last cycle
    assert view.at_end
    assert view.prev_fold() == starts[-1]
    assert view.prev_fold() == starts[-2]
    view.step(3)
    assert view.prev_fold() == starts[-2]


def test_cycle_from_the_browser_outside_the_batch_loads_a_window():
    _, _, tr, _ = run("ws", m=30)
    view = PEArrayView()
    view.load_trace(tr, 0, 10)
    view.cycle = 40  # as the browser does when stepping past its batch
    assert view.start_cycle <= 40 < view.batch_stop and view.cycle == 40
    view.load_trace(tr, 0, 10)
    view._trace = None  # an app-managed batch with no trace held: clamp back into the batch
    view.cycle = 40
    assert view.cycle == 9


def test_at_end_hands_over_the_next_window():
    _, _, tr, total = run("ws", m=30)
    view = PEArrayView()
    view.load_trace(tr, 0, 10)
    sent = []
    view.param.watch(lambda e: sent.append(view.start_cycle), "frames")
    view.cycle = 9  # the browser reached the batch's last cycle
    assert sent == [9] and view.start_cycle == 9 and view.cycle == 9 and not view.at_end
    view.seek(total - 1)
    assert view.at_end and view.batch_stop == total
    view.playing = True
    view.param.trigger("at_end")
    assert not view.playing  # the GEMM is over


def test_without_auto_advance_at_end_waits_for_the_app():
    _, _, tr, _ = run("ws", m=30)
    view = PEArrayView(auto_advance=False)
    view.load_trace(tr, 0, 10)
    view.cycle = 9
    assert view.at_end and view.start_cycle == 0
    view.load_trace(tr, 10, 20)  # what the app does on at_end
    assert not view.at_end and view.cycle == 10


def test_playing_past_half_the_batch_prefetches():
    _, _, tr, _ = run("ws", m=30)
    view = PEArrayView()
    view.load_trace(tr, 0, 20)
    view.playing = True
    view.cycle = 5
    assert view.start_cycle == 0
    view.cycle = 12
    assert view.start_cycle == 12 and view.n_cycles == 20 and view.cycle == 12
    header, _ = unpack_payload(view.frames)
    assert header["follow"] is True  # the browser keeps playing from where it is


def test_selected_pe_from_the_browser_becomes_a_tuple():
    view = PEArrayView()
    assert view._process_property_change({"selected_pe": [3, 4]}) == {"selected_pe": (3, 4)}
    assert view._process_property_change({"selected_pe": None}) == {"selected_pe": None}


def test_caption_status_is_replaced_not_repeated():
    assert strip_status("layer 2 · backward · fold 3 of 8 · cycle 41 of 54") == "layer 2 · backward"
    assert strip_status("dW = Xᵀ·dZ") == "dW = Xᵀ·dZ"


def test_bokeh_model_builds_without_a_server():
    _, _, tr, _ = run("os")
    view = PEArrayView()
    view.load_trace(tr)
    model = view.get_root()
    assert model.data.frames == view.frames and model.data.rows == 4
    assert "requestAnimationFrame" in model.esm


def test_browser_code_comes_from_the_package_files():
    assert PEArrayView._esm == ESM_PATH and ESM_PATH.name == "pe_array.js" and ESM_PATH.is_file()
    assert CSS_PATH.name == "pe_array.css" and ".cv-canvas" in CSS_PATH.read_text(encoding="utf-8")
    # the stylesheet by its file's name: served, the browser fetches the file; unserved, Panel inlines its text
    assert PEArrayView._stylesheets == [CSS_PATH.name]
    model = PEArrayView().get_root()
    assert model.esm == ESM_PATH.read_text(encoding="utf-8")  # as written: nothing is filled into the source
    assert "export function render" in model.esm and "__PALETTE__" not in model.esm
    assert CSS_PATH.read_text(encoding="utf-8") in model.stylesheets


def test_palette_reaches_the_browser_as_data():
    view = PEArrayView()
    model = view.get_root()
    assert model.data.palette == view.palette == browser_palette()
    pal = view.palette
    assert pal["states"] == list(palette.STATE_COLORS) and pal["moving"] == palette.MOVING
    assert pal["state_keys"] == list(palette.STATE_LABELS) == ["idle", "MAC", "preload", "stall"]
    assert set(pal["dims"]) == set("MKN")
    assert "model.palette" in model.esm
    with pytest.raises(TypeError, match="[Cc]onstant"):
        view.palette = {}


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_the_dataflow_facts_reach_the_browser_as_data(dataflow):
    """What goes where comes from the dataflow table: the `roles` parameter (before a trace is loaded)
    follows `dataflow`, and the payload header carries the trace's roles."""
    view = PEArrayView(dataflow=dataflow)
    assert view.roles == DATAFLOW_TABLE[dataflow].roles == view.get_root().data.roles
    _, _, tr, _ = run(dataflow)
    view.load_trace(tr)
    assert unpack_payload(view.frames)[0]["roles"] == view.roles
    other = next(d for d in DATAFLOWS if d != dataflow)
    view.dataflow = other
    assert view.roles == DATAFLOW_TABLE[other].roles
    with pytest.raises(TypeError, match="[Cc]onstant"):
        view.roles = {}


def test_browser_code_tests_no_dataflow_names():
    esm = ESM_PATH.read_text(encoding="utf-8")
    names = "|".join(DATAFLOW_TABLE)
    assert not re.search(rf'[!=]==?\s*"({names})"|"({names})"\s*[!=]==?', esm)
    assert not re.search(rf"\b({names})\s*:\s*\{{", esm)  # no table of facts keyed by dataflow


def test_palette_is_okabe_ito_with_named_states():
    assert palette.MAC in palette.OKABE_ITO and palette.PRELOAD in palette.OKABE_ITO
    assert palette.STALL in palette.OKABE_ITO and palette.FORWARD != palette.BACKWARD
    assert len(set(palette.STATE_COLORS)) == 4


# ---- bad inputs ------------------------------------------------------------------------------

@pytest.mark.parametrize("start, stop, match", [
    (-1, None, "start=-1 is outside the trace, which holds cycles 0..{last}"),
    ("end", None, "start={end} is outside the trace, which holds cycles 0..{last}"),
    (5, 5, "stop=5 must satisfy start < stop"),
    (5, 10**6, "stop=1000000 must satisfy start < stop <= {end}"),
    (1.5, None, "start must be a whole number"),
    (True, None, "start must be a whole number"),
    (0, 2.0, "stop must be a whole number"),
])
def test_bad_windows_raise(start, stop, match):
    _, _, tr, _ = run("ws")
    end = tr.start + tr.n_cycles
    start = end if start == "end" else start
    with pytest.raises(ValueError, match=match.format(end=end, last=end - 1)):
        PEArrayView().load_trace(tr, start, stop)


def test_other_bad_inputs_raise():
    _, _, tr, _ = run("ws")
    view = PEArrayView()
    with pytest.raises(ValueError, match="no trace loaded"):
        view.step()
    with pytest.raises(ValueError, match="no trace loaded"):
        view.next_fold()
    with pytest.raises(ValueError, match="needs a chipviz.chip.trace.Trace"):
        view.load_trace(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="total_cycles=10 is shorter"):
        view.load_trace(tr, total_cycles=10)
    with pytest.raises(ValueError, match="labels keys must be among M, K, N"):
        view.load_trace(tr, labels={"X": "nope"})
    empty = gemm(np.ones((2, 2)), np.ones((2, 2)), ChipConfig(rows=2, cols=2), engine="cycle",
                 trace_window=(0, 10)).trace
    empty.state = empty.state[:0]
    with pytest.raises(ValueError, match="the trace is empty"):
        view.load_trace(empty)
    view.load_trace(tr)
    with pytest.raises(ValueError, match="cycle 999 is outside the loaded trace"):
        view.seek(999)
    with pytest.raises(ValueError, match="n must be a whole number"):
        view.step(0.5)
    with pytest.raises(ValueError):
        view.fps = 120
    with pytest.raises(ValueError, match="pairs of whole numbers"):
        view.highlight = [(1, 2, 3)]
    view.highlight = [(0, 1), (2, 3)]
