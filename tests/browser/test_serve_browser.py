"""`chipviz serve` in headless Chromium: the installed command serves the dashboard at /app, from any folder;
the page renders without console errors, its lessons load and digits trains a step; Ctrl-C stops the server.
"""
from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pages import without_client_gone  # tests/browser/pages.py

TIMEOUT = 120_000  # a busy 2-core machine: every wait is on a state
SERVER_START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chipviz_command() -> list[str]:
    """The `chipviz` script installed beside this Python (its console entry point), else `python -m chipviz`."""
    script = Path(sys.executable).with_name("chipviz")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "chipviz"]


def wait_for_root(port: int, proc: subprocess.Popen, timeout: float = SERVER_START_TIMEOUT) -> tuple[int, str]:
    """(status, Location) of GET / once the server answers; it redirects to the only app without building a page."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chipviz serve exited with status {proc.returncode} before serving")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            return response.status, response.getheader("Location") or ""
        except OSError:
            time.sleep(0.2)
        finally:
            connection.close()
    raise RuntimeError(f"chipviz serve did not answer on port {port} within {timeout:.0f} s")


@pytest.fixture
def served(tmp_path, artifacts):
    """`chipviz serve --port P` started from a folder outside the repository; yields (url, process, log)."""
    port = free_port()
    log_path = artifacts / "serve-server.log"
    log = open(log_path, "wb")
    cmd = [*chipviz_command(), "serve", "--port", str(port), "--address", "127.0.0.1",
           "--allow-websocket-origin", f"127.0.0.1:{port}"]
    env = dict(os.environ, BOKEH_BROWSER="none", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    try:
        status, location = wait_for_root(port, proc)
        assert status in (301, 302) and location.endswith("/app"), (status, location)
        yield f"http://127.0.0.1:{port}/app", proc, log_path
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()


def test_chipviz_serve_renders_teaches_trains_and_stops_on_ctrl_c(browser, served, page_errors, artifacts):
    from playwright.sync_api import expect

    from chipviz import lessons as L
    from chipviz.i18n import t

    url, proc, log_path = served
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    errors = page_errors(page)
    page.goto(url)
    page.locator(".chipviz-op-info").first.wait_for(timeout=TIMEOUT)
    page.locator(".cv-canvas").first.wait_for(timeout=TIMEOUT)
    scripts = " ".join(page.evaluate("() => [...document.scripts].map(s => s.src)"))
    assert "bokeh-widgets" in scripts and "bokeh-tables" in scripts, scripts  # Panel's widgets build on both
    assert "bokeh-mathjax" not in scripts and "bokeh-gl" not in scripts, scripts  # (document.UNUSED_BUNDLES)
    status = page.get_by_text(re.compile(r"step [\d,]+ · epoch")).first
    page.wait_for_function("() => location.search.includes('dataset=')", timeout=TIMEOUT)
    steps = int(re.search(r"step ([\d,]+)", status.inner_text(timeout=TIMEOUT)).group(1).replace(",", ""))

    page.get_by_role("button", name=t("ctl.step", "en"), exact=True).click()  # digits, shipped beside the package
    expect(status).to_contain_text(f"step {steps + 1:,} ·", timeout=TIMEOUT)

    assert "dataset=digits" in page.url  # the step trained on digits, read from where it was shipped
    page.screenshot(path=str(artifacts / "serve-1280x720.png"), full_page=False)

    first = L.load_lessons("en")[0]  # the lessons, shipped beside the package
    page.get_by_role("button", name=L.ui("en", "lesson_mode"), exact=True).click()
    expect(page.locator("select", has=page.locator("option", has_text=f"1 · {first.title}"))).to_be_visible(
        timeout=TIMEOUT)
    expect(page.get_by_text(f"Step 1: {first.steps[0].title}")).to_be_visible(timeout=TIMEOUT)
    page.screenshot(path=str(artifacts / "serve-lesson-1280x720.png"), full_page=False)
    assert errors == []
    page.close()

    log = log_path.read_text(errors="replace")
    if os.name == "posix":  # chipviz became the server (exec): Ctrl-C reaches Panel with nothing in between
        assert f"process id: {proc.pid}" in log, log
    proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
    assert proc.wait(timeout=20) == 0
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in without_client_gone(log) and "Interrupted, shutting down" in log, log


def test_any_link_opens_the_page_with_a_notice_and_the_server_stays_healthy(browser, served, page_errors, artifacts):
    """The first request of a fresh server: 10,000 digits in lr= and 3,000 parameters (Tornado alone answers
    a bare HTTP 400 above 1,000, and Python refuses to read 4,300 digits and more as a number)."""
    url, proc, log_path = served
    link = url + "?lr=" + "1" * 10_000 + "&" + "&".join(f"k{i}=1" for i in range(3_000)) + "&rows=4"
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    errors = page_errors(page)
    page.goto(link)
    page.locator(".chipviz-op-info").first.wait_for(timeout=TIMEOUT)
    page.get_by_text(re.compile(r"^lr=1{10,}.* was ignored")).first.wait_for(timeout=TIMEOUT)
    page.get_by_text(re.compile(r"3,000 unknown settings in the link were ignored")).first.wait_for(timeout=TIMEOUT)
    page.wait_for_function("() => location.search.includes('rows=4') && !location.search.includes('k1=')",
                           timeout=TIMEOUT)  # the good value kept, the rewritten link holds only known keys
    assert len(page.url) < 1_000
    page.screenshot(path=str(artifacts / "serve-hostile-link.png"))
    page.close()
    second = browser.new_page()  # the next request is served as usual
    second.goto(url)
    second.locator(".chipviz-op-info").first.wait_for(timeout=TIMEOUT)
    second.close()
    assert errors == [] and "Traceback" not in without_client_gone(log_path.read_text(errors="replace"))
