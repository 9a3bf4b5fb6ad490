"""The served dashboard (app.py) in headless Chromium: what a student sees and does."""
import re
from pathlib import Path

import pytest

from chipviz.i18n import t

from pages import WAIT, open_dashboard  # tests/browser/pages.py

APP = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture
def app_url(serve, artifacts):
    return serve(APP, log_path=artifacts / "app-server.log")


def open_app(browser, url, page_errors):
    return open_dashboard(browser, url, page_errors, width=1600, height=1000)


def sidebar_status(page) -> int:
    text = page.get_by_text(re.compile(r"step [\d,]+ · epoch")).first.inner_text()
    return int(re.search(r"step ([\d,]+)", text).group(1).replace(",", ""))


def test_loads_without_errors_and_mirrors_settings_in_the_url(browser, app_url, page_errors, artifacts):
    page, errors = open_app(browser, app_url, page_errors)
    page.wait_for_function("() => location.search.includes('lr=')", timeout=WAIT)
    assert "rows=8" in page.url and "dataflow=ws" in page.url
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=False)
    page.set_viewport_size({"width": 1280, "height": 720})
    page.wait_for_function("() => window.innerWidth === 1280", timeout=WAIT)
    page.screenshot(path=str(artifacts / "dashboard-1280x720.png"), full_page=False)
    assert errors == []


def test_learning_rate_slider_changes_url_and_model(browser, app_url, page_errors, open_sidebar):
    page, errors = open_app(browser, app_url, page_errors)
    page.wait_for_function("() => location.search.includes('lr=0.01')", timeout=WAIT)
    open_sidebar(page)
    page.get_by_text(re.compile(r"Learning rate α: 0\.01$")).first.wait_for(timeout=WAIT)  # the slider reads α
    slider = page.locator(".bk-input-group", has_text="Learning rate").locator(".noUi-handle").first
    slider.focus()
    for _ in range(3):
        slider.press("ArrowRight")
    page.wait_for_function("() => location.search.includes('lr=0.0199')", timeout=WAIT)  # 10^-1.7
    lr = float(re.search(r"lr=([0-9.e-]+)", page.url).group(1))
    assert lr == pytest.approx(10 ** -1.7, rel=1e-3)
    page.get_by_text(re.compile(r"Learning rate α: 0\.02$")).first.wait_for(timeout=WAIT)  # 10^-1.7 ≈ 0.02
    assert errors == []


def test_train_adds_points_to_the_loss_plot(browser, app_url, page_errors, artifacts):
    page, errors = open_app(browser, app_url, page_errors)
    start = sidebar_status(page)
    points = """() => {
        const doc = Bokeh.documents[Bokeh.documents.length - 1];
        let n = 0;
        for (const m of doc.all_models) {
            if (m.type === 'ColumnDataSource' && m.name === 'train_loss') n = m.data.x.length;
        }
        return n;
    }"""
    before = page.evaluate(points)
    page.get_by_role("button", name="▶ Train").click()
    page.wait_for_function(f"() => ({points})() > {before + 5}", timeout=WAIT)  # the loss plot grows
    page.get_by_role("button", name=t("ctl.pause", "en")).click()
    page.get_by_role("button", name="▶ Train").wait_for(timeout=WAIT)
    assert sidebar_status(page) > start + 5
    page.screenshot(path=str(artifacts / "dashboard-trained.png"), full_page=True)
    assert errors == []


def test_play_advances_the_cycle_and_changes_the_cells(browser, app_url, page_errors, artifacts):
    page, errors = open_app(browser, app_url, page_errors)
    caption = page.get_by_text(re.compile(r"cycle \d+ of \d+")).first

    def cycle() -> int:
        return int(re.search(r"cycle (\d+) of", caption.inner_text()).group(1))

    first = cycle()
    canvas = page.locator("canvas").first
    before = canvas.screenshot()
    page.get_by_role("button", name="▶ Play").first.click()
    page.wait_for_function(f"() => (window.__chipviz_cycle || 0) >= {first + 5}", timeout=WAIT)  # 0-based
    assert cycle() > first + 5
    after = canvas.screenshot()
    assert before != after
    page.screenshot(path=str(artifacts / "dashboard-playing.png"))
    assert errors == []


def test_bad_url_opens_with_defaults_and_a_notice(browser, app_url, page_errors, artifacts):
    page, errors = open_app(browser, app_url + "?rows=-3&lr=abc&cols=NaN&hidden=999999999999&dataset=%3Cscript%3E",
                            page_errors)
    notice = page.get_by_text(re.compile(r"rows=-3 was ignored")).first
    notice.wait_for(timeout=WAIT)
    for bad in ("lr=abc", "cols=NaN", "hidden=999999999999"):
        assert page.get_by_text(re.compile(re.escape(bad) + " was ignored")).count() >= 1, bad
    page.wait_for_function("() => location.search.includes('rows=8')", timeout=WAIT)
    page.screenshot(path=str(artifacts / "dashboard-bad-url.png"))
    assert errors == []


def test_link_opens_the_dashboard_in_chinese(browser, app_url, page_errors, artifacts, open_sidebar):
    """?lang=zh: the sidebar, the cards and the plot tabs in Chinese; the switch goes back to English."""
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    errors = page_errors(page)
    page.goto(app_url + "?lang=zh")
    page.locator(".chipviz-op-info", has_text="第 1 步").first.wait_for(timeout=WAIT)
    page.locator(".cv-canvas").first.wait_for(timeout=WAIT)
    open_sidebar(page)
    for text in (t("ctl.network_card", "zh"), t("ctl.dataset", "zh"), t("ctl.lr", "zh"),  # sidebar
                 t("dash.pe_card", "zh"), t("dash.network_card", "zh"),  # cards
                 t("tab.boundary", "zh"), t("tab.roofline", "zh")):  # plot tabs
        assert page.get_by_text(re.compile("^" + re.escape(text))).first.is_visible(), text
    assert page.get_by_role("button", name=t("ctl.train", "zh")).is_visible()
    assert page.get_by_role("button", name=t("pe.play", "zh")).first.is_visible()  # inside the PE array
    assert re.search(r"周期 \d+/\d+", page.locator(".cv-live").first.text_content())
    assert page.get_by_text("Decision boundary", exact=True).count() == 0
    page.wait_for_function("() => location.search.includes('lang=zh')", timeout=WAIT)
    assert "lesson=" not in page.url, "a language alone does not open a lesson"
    page.screenshot(path=str(artifacts / "dashboard-zh.png"), full_page=False)
    page.get_by_role("button", name=t("dash.language_en", "en"), exact=True).click()  # back to English, no reload
    page.get_by_text("Decision boundary", exact=True).first.wait_for(timeout=WAIT)
    page.get_by_text("Roofline", exact=True).first.wait_for(timeout=WAIT)
    page.wait_for_function("() => location.search.includes('lang=en')", timeout=WAIT)
    assert errors == []
