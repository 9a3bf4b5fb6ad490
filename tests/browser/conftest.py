"""Fixtures for tests that drive a served Panel app in headless Chromium.

`browser` (session scope) launches Debian's Chromium once through Playwright; `serve(app_path)`
starts `python -m panel serve` on a free port, waits for /liveness and returns the app's URL,
and stops the server when the test ends (`panel_server(app_path)` returns the server itself).
Every test in this folder is skipped, with the
reason, when Chromium or Playwright is missing — unless CHIPVIZ_REQUIRE_BROWSER is set (as
.ci/run does), when that is an error.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHIPVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SERVER_START_TIMEOUT = 60.0


def _missing_browser_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"browser tests need Chromium at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "browser tests need the playwright Python package (pip install playwright)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _missing_browser_reason()
    if reason and os.environ.get("CHIPVIZ_REQUIRE_BROWSER"):
        # .ci/run installs Chromium: there a missing browser is a failure, not a skip
        raise pytest.UsageError(f"CHIPVIZ_REQUIRE_BROWSER is set but {reason}")
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(here):
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_live(base: str, proc: subprocess.Popen, timeout: float = SERVER_START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"panel serve exited with code {proc.returncode} before becoming live")
        try:
            with urllib.request.urlopen(f"{base}/liveness", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"panel serve did not answer {base}/liveness within {timeout:.0f} s")


class PanelServer:
    """One `panel serve` subprocess; use as a context manager or call stop()."""

    def __init__(self, app_path, log_path=None, extra_args=()):
        self.app_path = Path(app_path)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/{self.app_path.stem}"
        self.log_path = Path(log_path) if log_path else self.app_path.with_suffix(".log")
        cmd = [sys.executable, "-m", "panel", "serve", str(self.app_path), "--address", "127.0.0.1",
               "--port", str(self.port), "--allow-websocket-origin", f"127.0.0.1:{self.port}", "--liveness",
               *extra_args]
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, BOKEH_BROWSER="none", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     cwd=str(self.app_path.parent))
        try:
            wait_live(self.base, self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"could not start {self.app_path.name}; server log:\n{self.log()}") from None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# Waits a page makes without a timeout of its own. A busy machine (a CPU-bound job beside the suite, ten
# tabs building their sessions at once) can take well over Playwright's 30 s default to answer a new tab's
# request: the tests wait on states, so a generous bound costs nothing when things are quick.
NAVIGATION_TIMEOUT_MS = 180_000
ACTION_TIMEOUT_MS = 90_000


class PatientBrowser:
    """Chromium whose new pages and contexts wait up to the bounds above by default."""

    def __init__(self, browser):
        self._browser = browser

    def _patient(self, target):
        target.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
        target.set_default_timeout(ACTION_TIMEOUT_MS)
        return target

    def new_page(self, **kwargs):
        return self._patient(self._browser.new_page(**kwargs))

    def new_context(self, **kwargs):
        return self._patient(self._browser.new_context(**kwargs))

    def __getattr__(self, name):
        return getattr(self._browser, name)


def launch_chromium(playwright):
    return PatientBrowser(playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True))


@pytest.fixture(scope="session")
def browser():
    reason = _missing_browser_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch_chromium(pw)
        yield chromium
        chromium.close()


@pytest.fixture
def panel_server():
    """panel_server(app_path, **kwargs) -> a running PanelServer; every one is stopped after the test."""
    servers: list[PanelServer] = []

    def start(app_path, **kwargs) -> PanelServer:
        server = PanelServer(app_path, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def serve(panel_server):
    """serve(app_path) -> URL of the running app; every server started is stopped after the test."""
    return lambda app_path, **kwargs: panel_server(app_path, **kwargs).url


@pytest.fixture
def artifacts() -> Path:
    """The gitignored folder screenshots are saved into."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def page_errors():
    """attach(page) records console errors and uncaught page exceptions into the returned list.

    The pages attached are closed when the test ends: a page left open outlives its server and
    keeps running (and logging) in the shared browser during later tests."""
    errors: list[str] = []
    pages = []

    def attach(page):
        page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text} ({msg.location.get('url')})")
                if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        pages.append(page)
        return errors

    yield attach
    for page in pages:
        if not page.is_closed():
            page.close()


@pytest.fixture
def open_sidebar():
    """open_sidebar(page): open the dashboard's settings sidebar (collapsed when the page opens)."""
    return _open_sidebar


def _open_sidebar(page, timeout: float = 30_000) -> None:
    """Open the dashboard's settings sidebar (collapsed when the page opens) and wait until it shows."""
    sidebar = page.locator("#sidebar")
    sidebar.wait_for(state="attached", timeout=timeout)
    if "show" not in (sidebar.get_attribute("class") or ""):
        page.locator("#sidebar-toggle").click()
    page.wait_for_function("() => document.querySelector('#sidebar').classList.contains('show')", timeout=timeout)
    page.locator("#sidebar .card, #sidebar .bk-panel-models-layout-Card").first.wait_for(timeout=timeout)
