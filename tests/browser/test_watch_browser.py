"""Press Train and watch the chip train (the served app.py in headless Chromium): with no other
click the PE array plays the newest step's GEMMs, forward then backward, the step timeline's
playhead moves, a click on the timeline shows that operation, the keyboard drives the animation,
and at 1280×720 the PE array, the network and the loss plot share the first screen."""
import re
from pathlib import Path

import pytest

from chipviz.i18n import t
from pages import WAIT as TIMEOUT
from pages import FIGURE_VIEW_JS, open_dashboard  # tests/browser/pages.py

APP = Path(__file__).resolve().parents[2] / "app.py"

# where a point of a Bokeh figure (found by its model's name) is on the page: x as a share of the x range
# (scroll: bring the figure into view first); null: no such figure
FIGURE_POINT = """(args) => {
  const [name, fx, y, scroll] = args;
  """ + FIGURE_VIEW_JS + """
  const v = figureView(name);
  if (!v) return null;
  if (scroll) v.canvas_view.el.scrollIntoView({block: "center"});
  const r = v.canvas_view.el.getBoundingClientRect(), xr = v.model.x_range;
  const x = xr.start + fx * (xr.end - xr.start);
  return {x: r.left + v.frame.x_scale.compute(x), y: r.top + v.frame.y_scale.compute(y),
          box: {x: r.left, y: r.top, width: r.width, height: r.height}};
}"""


@pytest.fixture
def app_url(serve, artifacts):
    return serve(APP, log_path=artifacts / "watch-server.log")


open_app = open_dashboard


def caption(page) -> str:
    return page.locator(".cv-caption").first.inner_text()


def shown_cycle(page) -> int:
    return int(re.search(r"cycle ([\d,]+) of", caption(page)).group(1).replace(",", ""))


def test_train_plays_forward_then_backward_and_the_timeline_follows(browser, app_url, page_errors, artifacts):
    page, errors = open_app(browser, app_url, page_errors)
    playhead = "() => { const d = Bokeh.documents[Bokeh.documents.length - 1]; " \
               "const s = d.get_model_by_name('timeline-playhead'); return s ? s.data.x[0] : null; }"
    page.get_by_role("button", name=t("ctl.train", "en")).click()
    # no other click: the caption passes through a forward and then a backward GEMM, the cycle moves
    page.locator(".cv-caption", has_text=re.compile(r"forward · Y = X·W")).first.wait_for(timeout=TIMEOUT)
    first = shown_cycle(page)
    page.locator(".cv-caption", has_text=re.compile(r"backward · d[WX] = ")).first.wait_for(timeout=TIMEOUT)
    page.screenshot(path=str(artifacts / "watch-backward-1280x720.png"))
    x1 = page.evaluate(playhead)
    page.wait_for_function(f"() => ({playhead})() !== {x1!r}", timeout=TIMEOUT)  # the playhead moves
    assert first >= 1
    page.get_by_role("button", name=t("ctl.pause", "en")).click()
    page.get_by_role("button", name=t("ctl.train", "en")).wait_for(timeout=TIMEOUT)
    assert errors == []


def test_first_screen_holds_the_array_the_network_and_the_loss(browser, app_url, page_errors, artifacts):
    for width, height in ((1280, 720), (1920, 1080)):
        page, errors = open_app(browser, app_url, page_errors, width, height)
        page.locator(".chipviz-network-shape").first.wait_for(timeout=TIMEOUT)
        page.wait_for_function(f"() => ({FIGURE_POINT})(['loss', 0, 0, false]) !== null", timeout=TIMEOUT)
        boxes = {"PE array": page.locator(".cv-canvas").first.bounding_box(),
                 "network": page.evaluate(FIGURE_POINT, ["network", 0, 0, False])["box"],
                 "loss plot": page.evaluate(FIGURE_POINT, ["loss", 0, 0, False])["box"]}
        page.screenshot(path=str(artifacts / f"first-screen-{width}x{height}.png"))
        for name, box in boxes.items():
            assert box is not None, name
            assert box["x"] >= 0 and box["y"] >= 0, name
            assert box["x"] + box["width"] <= width and box["y"] + box["height"] <= height, (name, box)
        assert errors == []
        page.close()


def test_keyboard_plays_steps_and_jumps_to_the_next_gemm(browser, app_url, page_errors):
    page, errors = open_app(browser, app_url, page_errors)
    page.locator(".cv-canvas").first.click()  # focus the page (not a button, whose space key presses it)
    before = shown_cycle(page)
    page.keyboard.press("ArrowRight")
    page.locator(".cv-caption", has_text=re.compile(rf"cycle {before + 1} of")).first.wait_for(timeout=TIMEOUT)
    page.keyboard.press("ArrowLeft")
    page.locator(".cv-caption", has_text=re.compile(rf"cycle {before} of")).first.wait_for(timeout=TIMEOUT)
    page.keyboard.press(" ")
    page.locator(".cv-bar button", has_text=re.compile("Pause")).first.wait_for(timeout=TIMEOUT)
    page.keyboard.press(" ")
    page.locator(".cv-bar button", has_text=re.compile("Play")).first.wait_for(timeout=TIMEOUT)
    page.keyboard.press("n")
    page.locator(".chipviz-op-info", has_text=re.compile(r"^L2 fwd")).first.wait_for(timeout=TIMEOUT)
    assert errors == []




def test_a_click_on_the_timeline_shows_that_operation(browser, app_url, page_errors):
    from chipviz.app.timeline_view import BAR_BOTTOM, BAR_TOP

    page, errors = open_app(browser, app_url, page_errors, 1280, 1000)
    before = page.locator(".chipviz-op-info").first.inner_text()
    assert before.startswith("L1 fwd")
    # the first forward GEMM fills the left of the bar; a backward GEMM lies around 45% of it (64-32-10)
    point = page.evaluate(FIGURE_POINT, ["timeline", 0.45, (BAR_BOTTOM + BAR_TOP) / 2, True])
    assert point is not None
    page.mouse.click(point["x"], point["y"])
    page.locator(".chipviz-op-info").filter(has_text=re.compile(r"^L\d (bwd|fwd)")).filter(
        has_not_text=before).first.wait_for(timeout=TIMEOUT)
    shown = page.locator(".chipviz-op-info").first.inner_text()
    assert shown != before and page.locator(".cv-caption").first.inner_text().startswith(
        "layer " + shown[1])  # the PE array plays the GEMM clicked
    assert errors == []
