"""PEArrayView served by `panel serve` and driven in headless Chromium.

Screenshots go to test-artifacts/ (gitignored): pe_array_<case>_<step>.png.
"""
from __future__ import annotations

import re
import time

import pytest

from pages import WAIT  # tests/browser/pages.py

pytestmark = pytest.mark.browser

APP = '''
import numpy as np
import panel as pn
from chipviz.chip import ChipConfig, gemm
from chipviz.app.pe_array import PEArrayView

pn.extension()
rng = np.random.default_rng(7)
a = rng.integers(-3, 4, ({m}, {k})).astype(np.float32)
b = rng.integers(-3, 4, ({k}, {n})).astype(np.float32)
trace = gemm(a, b, ChipConfig(rows={size}, cols={size}, dataflow="{dataflow}"), engine="cycle",
             trace_window=(0, 10**9)).trace
view = PEArrayView(fps=30)
view.load_trace(trace, labels={{"M": "batch", "K": "input features", "N": "output features"}},
                caption="layer 1 · forward · Y = X·W")
view.highlight = [(0, 0)]
selected = pn.pane.Markdown("selected: none")
server_cycle = pn.pane.Markdown("python cycle: 0")
view.param.watch(lambda e: setattr(selected, "object", f"selected: {{e.new}}"), "selected_pe")
view.param.watch(lambda e: setattr(server_cycle, "object", f"python cycle: {{e.new}}"), "cycle")
pn.Column(view, selected, server_cycle, sizing_mode="stretch_width").servable()
'''


def write_app(tmp_path, dataflow="ws", size=16, m=40, k=20, n=24):
    path = tmp_path / f"pe_app_{dataflow}{size}.py"
    path.write_text(APP.format(dataflow=dataflow, size=size, m=m, k=k, n=n))
    return path


def shown_cycle(page) -> int:
    return int(re.search(r"cycle (\d+) of", page.locator(".cv-live").text_content()).group(1))


def shown_fold(page) -> int:
    return int(re.search(r"fold (\d+) of", page.locator(".cv-live").text_content()).group(1))


def canvas_pixels(page) -> str:
    return page.locator("canvas.cv-canvas").evaluate("c => c.toDataURL()")


def pe_point(page, i, j):
    """Page coordinates of the centre of PE(i, j), from the geometry the canvas publishes."""
    canvas = page.locator("canvas.cv-canvas")
    box = canvas.bounding_box()
    geo = canvas.evaluate("c => ({x0: +c.dataset.x0, y0: +c.dataset.y0, s: +c.dataset.cell})")
    return box["x"] + geo["x0"] + (j + 0.5) * geo["s"], box["y"] + geo["y0"] + (i + 0.5) * geo["s"]


def open_app(browser, serve, app, page_errors):
    url = serve(app)
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    errors = page_errors(page)
    page.goto(url)
    page.wait_for_selector("canvas.cv-canvas", timeout=WAIT)
    page.wait_for_function("window.__chipviz_frames > 0", timeout=WAIT)
    return page, errors


def test_ws_16x16_plays_steps_hovers_and_selects(browser, serve, tmp_path, artifacts, page_errors):
    page, errors = open_app(browser, serve, write_app(tmp_path), page_errors)
    live = page.locator(".cv-live")
    assert re.search(r"fold 1 of 4 · cycle 1 of \d+", live.text_content())
    assert page.locator(".cv-captext").text_content() == "layer 1 · forward · Y = X·W"
    page.screenshot(path=artifacts / "pe_array_ws16_0_start.png")
    before = canvas_pixels(page)

    page.locator("button.cv-play").click()
    page.wait_for_function("window.__chipviz_cycle >= 40", timeout=WAIT)
    assert shown_cycle(page) > 1
    page.screenshot(path=artifacts / "pe_array_ws16_1_playing.png")
    assert canvas_pixels(page) != before, "the canvas did not change while playing"
    # the browser writes the cycle back to Python a few times a second
    page.get_by_text(re.compile(r"python cycle: [1-9]\d*")).wait_for(timeout=WAIT)

    page.locator("button.cv-play").click()  # pause
    time.sleep(0.3)
    paused = shown_cycle(page)
    time.sleep(0.4)
    assert shown_cycle(page) == paused
    page.get_by_text(f"python cycle: {paused - 1}").wait_for(timeout=WAIT)  # 0-based in Python
    page.locator("button.cv-step").click()
    page.wait_for_function(f"window.__chipviz_cycle === {paused}", timeout=WAIT)  # 0-based, drawn next frame
    assert shown_cycle(page) == paused + 1
    page.get_by_text(f"python cycle: {paused}").wait_for(timeout=WAIT)

    x, y = pe_point(page, 3, 5)
    page.mouse.move(x, y)
    tip = page.locator(".cv-tip")
    tip.wait_for(state="visible", timeout=WAIT)
    text = tip.text_content()
    assert "PE (row 3, col 5)" in text and "stationary B[" in text and "psum" in text
    page.screenshot(path=artifacts / "pe_array_ws16_2_hover.png")

    page.mouse.click(x, y)
    page.get_by_text("selected: (3, 5)").wait_for(timeout=WAIT)
    assert "selected PE (3, 5)" in page.locator(".cv-status").text_content()
    page.mouse.move(5, 5)
    page.screenshot(path=artifacts / "pe_array_ws16_3_selected.png")

    fold = shown_fold(page)
    page.locator("button.cv-fold").click()
    page.wait_for_function(f"window.__chipviz_cycle > {paused}", timeout=WAIT)
    time.sleep(0.3)
    assert shown_fold(page) == fold + 1
    page.screenshot(path=artifacts / "pe_array_ws16_4_next_fold.png")
    assert errors == []


@pytest.mark.parametrize("dataflow, size, tip_text", [("os", 4, "stationary C["), ("is", 6, "stationary A["),
                                                       ("ws", 32, "stationary B[")])
def test_other_dataflows_and_sizes_render(browser, serve, tmp_path, artifacts, page_errors, dataflow, size, tip_text):
    big = size >= 32
    app = write_app(tmp_path, dataflow, size, m=64 if big else 9, k=40 if big else 10, n=40 if big else 7)
    page, errors = open_app(browser, serve, app, page_errors)
    page.locator("input[type=range]").fill("60")
    page.locator("button.cv-play").click()
    page.wait_for_function(f"window.__chipviz_cycle >= {80 if big else 12}", timeout=WAIT)
    page.locator("button.cv-play").click()
    x, y = pe_point(page, 1, 1)
    page.mouse.move(x, y)
    page.locator(".cv-tip").wait_for(state="visible", timeout=WAIT)
    assert tip_text in page.locator(".cv-tip").text_content()
    page.screenshot(path=artifacts / f"pe_array_{dataflow}{size}_hover.png")
    assert errors == []


def test_served_view_applies_its_css_file_and_draws_with_the_palette(browser, serve, tmp_path, artifacts,
                                                                     page_errors):
    """The rules of pe_array.css apply; the colours come from the palette parameter, not from the JS source."""
    from chipviz.app.pe_array import browser_palette

    page, errors = open_app(browser, serve, write_app(tmp_path), page_errors)
    # rules of the file are applied inside the component's shadow root
    assert page.locator(".cv-caption").evaluate("e => getComputedStyle(e).fontWeight") == "600"
    assert page.locator(".cv-legend span.sw").first.evaluate("e => getComputedStyle(e).width") == "13px"

    def rgb(hex_color):
        return tuple(int(hex_color[k:k + 2], 16) for k in (1, 3, 5))

    pal = browser_palette()
    swatches = page.locator(".cv-legend span.sw").evaluate_all(
        "els => els.slice(0, 4).map(e => getComputedStyle(e).backgroundColor)")
    assert swatches == [f"rgb({r}, {g}, {b})" for r, g, b in map(rgb, pal["states"])]
    assert "MAC" in page.locator(".cv-legend").text_content()  # state names through palette.state_keys

    page.locator("input[type=range]").fill("60")
    page.locator("button.cv-play").click()
    page.wait_for_function("window.__chipviz_cycle >= 30", timeout=WAIT)
    page.locator("button.cv-play").click()
    time.sleep(0.3)
    colours = page.locator("canvas.cv-canvas").evaluate("""c => {
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data, seen = new Set();
        for (let q = 0; q < d.length; q += 4) seen.add(`${d[q]},${d[q + 1]},${d[q + 2]}`);
        return [...seen];
    }""")
    drawn = {tuple(int(v) for v in c.split(",")) for c in colours}
    assert rgb(pal["states"][1]) in drawn, "no PE drawn in the MAC colour"
    assert rgb(pal["states"][0]) in drawn or rgb(pal["states"][2]) in drawn
    page.screenshot(path=artifacts / "pe_array_ws16_5_palette.png")
    assert errors == []


EMPTY_APP = '''
import numpy as np
import panel as pn
from chipviz.chip import ChipConfig, gemm
from chipviz.app.pe_array import PEArrayView

pn.extension()
a = np.ones((6, 5), np.float32)
view = PEArrayView(fps=30)
view.clear(caption="loading the cycle-accurate engine …", rows=4, cols=4)
load = pn.widgets.Button(name="load the GEMM")
load.on_click(lambda _: view.load_trace(gemm(a, a.T, ChipConfig(rows=4, cols=4), engine="cycle",
                                             trace_window=(0, 10**9)).trace, caption="ready"))
pn.Column(load, view, sizing_mode="stretch_width").servable()
'''


def test_controls_are_disabled_while_there_is_nothing_to_play(browser, serve, tmp_path, page_errors):
    """An empty array (its engine loading, no step yet) cannot play or step: its four buttons say so by
    being disabled, and come alive with the GEMM's cycles."""
    path = tmp_path / "pe_empty.py"
    path.write_text(EMPTY_APP)
    page, errors = open_app(browser, serve, path, page_errors)
    buttons = [page.locator(f"button.{name}") for name in ("cv-play", "cv-back", "cv-step", "cv-fold")]
    assert page.locator(".cv-captext").text_content() == "loading the cycle-accurate engine …"
    assert all(b.is_disabled() for b in buttons)
    page.get_by_role("button", name="load the GEMM").click()
    page.locator(".cv-live", has_text=re.compile(r"cycle 1 of \d+")).wait_for(timeout=WAIT)
    assert all(b.is_enabled() for b in buttons)
    page.locator("button.cv-play").click()
    page.locator(".cv-live", has_text=re.compile(r"cycle ([2-9]|\d\d+) of")).wait_for(timeout=WAIT)
    assert errors == []
    page.close()
