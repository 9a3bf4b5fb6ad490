"""The Design space tab (chipviz/app/design_space.py), headless: a sweep runs, the scatter shows its
designs with the Pareto front marked, tapping one hands its settings to the dashboard, and a
sweep over the page's limit is refused with a notice."""
from __future__ import annotations

import pytest

pytest.importorskip("pyarrow")

from chipviz.app.design_space import DesignSpaceView  # noqa: E402
from chipviz.chip import ChipConfig  # noqa: E402
from chipviz.sweep import workload as wl  # noqa: E402


def _view(**kwargs):
    chosen = []
    view = DesignSpaceView(workload=lambda: wl.training_step_of("current", "64,16,10"), on_choose=chosen.append,
                           client=None, **kwargs)
    return view, chosen


def test_sweep_scatter_and_choice():
    view, chosen = _view()
    view.arrays.value = ["4x4", "8x8"]
    view.precisions.value = ["fp32", "int8"]
    view.run(wait=True)
    data = view.source_data.data
    designs = 2 * 3 * 2 * 2 * 2 * 1 * 2
    assert len(data["x"]) == designs and not view.running
    assert "9" in set(map(str, data["size"]))  # the front is drawn larger
    assert view.notice.alert_type == "success"
    view.source_data.selected.indices = [3]
    settings = chosen[-1]
    assert ChipConfig(**settings).rows == data["rows"][3]
    view.axes.value = "pes"
    assert list(view.source_data.data["x"]) == list(map(float, view.source_data.data["pes"]))


def test_over_the_limit_and_empty_choices_are_notices():
    view, _ = _view(limit=10)
    view.run(wait=True)
    assert view.notice.visible and "limit of 10" in view.notice.object and not view.running
    view.dataflows.value = []
    view.run(wait=True)
    assert "at least one value" in view.notice.object
