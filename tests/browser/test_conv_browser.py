"""A CNN in the dashboard (the served app.py in headless Chromium): a link chooses it, the network
card draws the convolution (image, kernels, feature maps, im2col's A and B), and a click on a PE
says which window pixel and kernel weight that PE multiplies at the cycle shown."""
from pathlib import Path

import pytest

from chipviz.chip import ChipConfig
from chipviz.chip.mapping import Mapping
from chipviz.conv_map import pe_element
from pages import WAIT
from pages import open_dashboard  # tests/browser/pages.py

APP = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture
def app_url(serve, artifacts):
    return serve(APP, log_path=artifacts / "conv-server.log")


def pe_point(page, i, j):
    canvas = page.locator("canvas.cv-canvas").first
    box = canvas.bounding_box()
    geo = canvas.evaluate("c => ({x0: +c.dataset.x0, y0: +c.dataset.y0, s: +c.dataset.cell})")
    return box["x"] + geo["x0"] + (j + 0.5) * geo["s"], box["y"] + geo["y0"] + (i + 0.5) * geo["s"]


def test_a_cnn_link_draws_the_convolution_and_a_pe_click_names_its_pixel(browser, app_url, page_errors, artifacts):
    page, errors = open_dashboard(browser, app_url + "?model=cnn&filters=4", page_errors)
    page.locator(".chipviz-network-shape", has_text="8×8×1 → conv 3×3×4 → max pool 2×2").wait_for(timeout=WAIT)
    page.locator(".chipviz-conv-text", has_text="A[0, 0] · B[0, 0]").first.wait_for(timeout=WAIT)
    for _ in range(14):  # past the 8 preload cycles of the 8×8 weight-stationary array
        page.locator("button.cv-step").first.click()
    page.locator(".cv-caption", has_text="cycle 15 of").first.wait_for(timeout=WAIT)
    page.mouse.click(*pe_point(page, 1, 2))
    # the forward GEMM of a batch of 32: M = 32·8·8 windows, K = 9 taps, N = 4 kernels
    m, k, n = pe_element(Mapping.of(2048, 9, 4, ChipConfig(rows=8, cols=8)), 0, 14, 1, 2)
    window = m % 64
    said = page.locator(".chipviz-conv-text", has_text=f"A[{m}, {k}] · B[{k}, {n}]")
    said = said.filter(has_text=f"output pixel ({window // 8}, {window % 8})").filter(has_text=f"kernel {n}")
    said.filter(has_text=f"tap ({k // 3}, {k % 3})").first.wait_for(timeout=WAIT)  # K = kernel row · 3 + column
    # hovering the PE says the same in the tooltip: the window, the tap's input pixel and the kernel
    page.mouse.move(*pe_point(page, 1, 2))
    tip = page.locator(".cv-tip", has_text=f"window ({window // 8}, {window % 8}) of image {m // 64 + 1}").first
    tip.wait_for(timeout=WAIT)
    assert f"tap ({k // 3}, {k % 3})" in tip.inner_text() and f"kernel {n}" in tip.inner_text()
    page.screenshot(path=str(artifacts / "conv-1280x720.png"))
    # watching: the tour plays the conv GEMM's first cycles only (its fold streams 2,048 windows), then moves on
    page.get_by_role("button", name="▶ Train").click()
    page.locator(".cv-caption", has_text="layer 1 · forward · Y = X·W · tour: cycles 1–").first.wait_for(timeout=WAIT)
    page.locator(".cv-caption", has_text="layer 4 · forward").first.wait_for(timeout=WAIT)
    page.get_by_role("button", name="❚❚ Pause").click()
    page.get_by_role("button", name="简体中文").click()
    page.locator(".chipviz-conv-text", has_text="卷积核").first.wait_for(timeout=WAIT)
    assert errors == []
