"""The Design space tab in the served dashboard (headless Chromium): it opens on demand, a sweep
of the current network's training step runs with a progress bar, the scatter shows the designs
with the Pareto front, and tapping a design loads that chip into the session (the sidebar and the
link follow)."""
from pathlib import Path

import pytest

from pages import WAIT
from pages import FIGURE_VIEW_JS, open_dashboard  # tests/browser/pages.py

APP = Path(__file__).resolve().parents[2] / "app.py"

# where the first design of the scatter is on the page (Bokeh's own scales: the axes are logarithmic)
FIRST_POINT = """() => {
  """ + FIGURE_VIEW_JS + """
  const v = figureView("design-space");
  const src = v && v.model.document.get_model_by_name("design-points");
  if (!src || !src.data.x || src.data.x.length === 0) return null;
  v.canvas_view.el.scrollIntoView({block: "center"});
  const r = v.canvas_view.el.getBoundingClientRect();
  return {x: r.left + v.frame.x_scale.compute(src.data.x[0]), y: r.top + v.frame.y_scale.compute(src.data.y[0]),
          rows: src.data.rows[0], cols: src.data.cols[0], dataflow: src.data.dataflow[0]};
}"""


@pytest.fixture
def app_url(serve, artifacts):
    return serve(APP, log_path=artifacts / "design-server.log")


def test_a_sweep_runs_and_a_tapped_design_becomes_the_chip(browser, app_url, page_errors, artifacts):
    page, errors = open_dashboard(browser, app_url + "?rows=8&cols=8&dataflow=ws", page_errors)
    page.get_by_text("Design space", exact=True).first.click()
    page.get_by_text("SRAM: 256 KiB each buffer").first.wait_for(timeout=WAIT)
    page.get_by_role("button", name="Run sweep").click()
    page.get_by_text("Tap a design to load it").first.wait_for(timeout=WAIT)
    page.wait_for_function(f"() => ({FIRST_POINT})() !== null", timeout=WAIT)
    point = page.evaluate(FIRST_POINT)
    page.screenshot(path=str(artifacts / "design-space-1280x720.png"))
    page.mouse.click(point["x"], point["y"])
    rows, cols, dataflow = point["rows"], point["cols"], point["dataflow"]
    page.get_by_text(f"Loaded {rows}×{cols} {dataflow}").first.wait_for(timeout=WAIT)
    page.wait_for_function(f"() => window.location.search.includes('rows={rows}&cols={cols}&dataflow={dataflow}')",
                           timeout=WAIT)
    assert errors == []
