"""The served dashboard, measured in Chromium: start-up, animation, latency, memory, many sessions.

    python benchmarks/bench_app.py [--sessions 20] [--sessions-only] [--watch-only] [--no-sessions]

Prints a Markdown table of:
- time from `chipviz serve` (the README's command) and from `panel serve app.py` starting to a
  rendered page (the PE array drawn), with a cold numba cache (a fresh NUMBA_CACHE_DIR: every
  kernel compiles) and a warm one;
- animation frames per second in Chromium for 8×8, 16×16 and 32×32 arrays, idle and while
  training (Train = watch: the PE array plays each new step), with the server's CPU per
  training-and-animating tab, and the time from ▶ Train to the first backward-phase frame;
- latency from a control (One step) to the updated loss plot in the page;
- server memory (RSS) with one session and with N sessions open, and the latency of a
  control in one page while the N others train, and what is left after the pages close.
Needs Debian's chromium at /usr/bin/chromium and the playwright package.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def start_server(port: int, cache_dir: str, how: str = "panel") -> tuple[subprocess.Popen, float]:
    """`how`: "chipviz" runs the README's `chipviz serve` (the command line, which becomes `panel serve` on the
    chipviz/app folder); "panel" runs `panel serve app.py` in the checkout. Returns once the port takes
    connections.

    Python's bytecode cache is on, as Python has it by default. With CHIPVIZ_BENCH_NO_BYTECODE=1 every start
    compiles ChipViz's own modules from source, as in a checkout where PYTHONDONTWRITEBYTECODE is set (this
    sandbox sets it): their .pyc files are removed first, and none is written."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, BOKEH_BROWSER="none")
    if os.environ.get("CHIPVIZ_BENCH_NO_BYTECODE"):
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        for compiled in (ROOT / "chipviz").rglob("*.pyc"):
            compiled.unlink(missing_ok=True)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    origin = ["--allow-websocket-origin", f"127.0.0.1:{port}"]
    if how == "chipviz":
        command = [sys.executable, "-m", "chipviz", "serve", "--address", "127.0.0.1", "--port", str(port), *origin]
    else:
        command = [sys.executable, "-m", "panel", "serve", str(ROOT / "app.py"), "--address", "127.0.0.1",
                   "--port", str(port), "--liveness", *origin]
    began = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(3000):  # polled every 20 ms, as the page is (POLL_MS)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.02)
    return proc, began


def proc_status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def rss_mib(pid: int) -> float:
    return proc_status(pid, "VmRSS") / 1024


def open_page(browser, url: str, width=1600, height=1000, whole=True, page=None):
    """A new page (or `page`, a tab already open), once its first screen is drawn (the PE array and the
    line above it) and, with `whole`, once the rest is in too: the sidebar, the plots below and the
    GEMM's cycles on the array."""
    page = page or browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    page.wait_for_function(FIRST_SCREEN, timeout=120_000, polling=POLL_MS)
    if whole:
        wait_whole(page)
    return page


# The waits poll the page every POLL_MS through Bokeh's shadow roots. (Playwright's locator waits back off to
# a second between polls: they read up to a second late, as much as the start-up being measured would gain.)
POLL_MS = 20
FIND = """(selector, pattern) => {
  const hit = (el) => !pattern || new RegExp(pattern).test(el.textContent);
  const find = (root) => {
    if ([...root.querySelectorAll(selector)].some(hit)) return true;
    for (const el of root.querySelectorAll('*')) if (el.shadowRoot && find(el.shadowRoot)) return true;
    return false;
  };
  return find(document);
}"""
FIRST_SCREEN = f"() => (window.__chipviz_frames || 0) > 0 && ({FIND})('.chipviz-op-info', null)"
WHOLE = f"() => ({FIND})('.chipviz-cost', null) && ({FIND})('.cv-caption', 'cycle [0-9,]+ of')"
BACKWARD = f"() => ({FIND})('.cv-caption', 'backward')"


def wait_whole(page) -> None:
    page.wait_for_function(WHOLE, timeout=300_000, polling=POLL_MS)


def time_to_page(browser, port: int, cache_dir: str, how: str = "panel") -> tuple[float, float]:
    """Server start → (first screen drawn, the whole page in with the GEMM playable), in a browser tab
    already open (as a student's is; opening one takes Playwright 0.1-0.3 s)."""
    tab = browser.new_page(viewport={"width": 1600, "height": 1000})
    proc, began = start_server(port, cache_dir, how)
    try:
        page = open_page(browser, f"http://127.0.0.1:{port}/app", whole=False, page=tab)
        first = time.perf_counter() - began
        wait_whole(page)
        whole = time.perf_counter() - began
        page.close()
        return first, whole
    finally:
        proc.terminate()
        proc.wait()


def time_to_pages(browser, port: int, cache_dir: str, tabs: int = 6) -> tuple[float, list, list]:
    """On one server (warm numba cache): (server start → live, [request → first screen drawn, per tab],
    [request → whole page, per tab]), the tabs opened one after another."""
    proc, began = start_server(port, cache_dir)
    try:
        live = time.perf_counter() - began
        firsts, wholes = [], []
        for _ in range(tabs):
            start = time.perf_counter()
            page = open_page(browser, f"http://127.0.0.1:{port}/app", whole=False)
            firsts.append(time.perf_counter() - start)
            wait_whole(page)
            wholes.append(time.perf_counter() - start)
            page.close()
        return live, firsts, wholes
    finally:
        proc.terminate()
        proc.wait()


PLAYING = "() => [window.__chipviz_play_frames || 0, window.__chipviz_play_ms || 0]"


def watching(browser, proc, base: str, side: int, seconds: float = 8.0) -> tuple[float, float, float]:
    """Press Train and let the PE array play each new step (fps 60): (frames/s while the array plays,
    share of the time it plays, server CPU as a share of a core)."""
    page = open_page(browser, f"{base}?rows={side}&cols={side}&fps=60")
    page.get_by_role("button", name="▶ Train").click()
    page.wait_for_function(BACKWARD, timeout=120_000, polling=POLL_MS)
    (f0, ms0), c0, t0 = page.evaluate(PLAYING), cpu_seconds(proc.pid), time.perf_counter()
    page.wait_for_timeout(seconds * 1000)
    (f1, ms1), c1, t1 = page.evaluate(PLAYING), cpu_seconds(proc.pid), time.perf_counter()
    page.get_by_role("button", name="❚❚ Pause", exact=True).click()
    page.close()
    played = (ms1 - ms0) / 1000
    return (f1 - f0) / max(played, 1e-9), played / (t1 - t0), (c1 - c0) / (t1 - t0)


def train_to_backward(browser, base: str) -> float:
    """Seconds from the click on ▶ Train to the first frame of a backward-phase GEMM on the PE array."""
    page = open_page(browser, base)
    t0 = time.perf_counter()
    page.get_by_role("button", name="▶ Train").click()
    page.wait_for_function(BACKWARD, timeout=120_000, polling=POLL_MS)
    elapsed = time.perf_counter() - t0
    page.get_by_role("button", name="❚❚ Pause", exact=True).click()
    page.close()
    return elapsed


def watch_rows(browser, proc, base: str, rows) -> None:
    for side in (8, 16, 32):
        fps, duty, cpu = watching(browser, proc, base, side)
        rows.append((f"training and animating, {side}×{side} array (fps set to 60): Chromium frames/s while the "
                     f"array plays; share of the time it plays; server CPU for the tab",
                     f"{fps:.0f} frames/s; {duty:.0%}; {cpu:.0%} of a core"))
    times = [train_to_backward(browser, base) for _ in range(3)]
    rows.append(("▶ Train → first backward-phase frame on the PE array (tour pace, 24 cycles/s), median of 3",
                 f"{statistics.median(times):.1f} s"))


def animation_fps(browser, base: str, side: int) -> float:
    page = open_page(browser, f"{base}?rows={side}&cols={side}&fps=60")
    page.get_by_role("button", name="▶ Play").first.click()
    page.wait_for_timeout(500)
    n0 = page.evaluate("window.__chipviz_frames")
    t0 = time.perf_counter()
    page.wait_for_timeout(3000)
    n1 = page.evaluate("window.__chipviz_frames")
    fps = (n1 - n0) / (time.perf_counter() - t0)
    page.close()
    return fps


LOSS_POINTS = """() => {
    const doc = Bokeh.documents[Bokeh.documents.length - 1];
    for (const m of doc.all_models)
        if (m.type === 'ColumnDataSource' && m.name === 'train_loss') return m.data.x.length;
    return -1;
}"""


def control_latency(page) -> float:
    """Click "One step"; time until the loss plot in the page has the new point."""
    before = page.evaluate(LOSS_POINTS)
    t0 = time.perf_counter()
    page.get_by_role("button", name="One step").click()
    page.wait_for_function(f"() => ({LOSS_POINTS})() > {before}", timeout=60_000, polling=5)
    return time.perf_counter() - t0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def event_loop_latency(base: str, n: int = 40) -> list[float]:
    """Round trips of /liveness: answered by the same event loop that answers every tab's clicks."""
    root = base.rsplit("/", 1)[0]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"{root}/liveness", timeout=60) as resp:
            resp.read()
        times.append(time.perf_counter() - t0)
        time.sleep(0.25)
    return times


def many_sessions(pw, browser, proc, base: str, n: int, rows) -> None:
    """n tabs train at once; a control in one more tab is timed; then they all close.

    The n tabs stand for a class's laptops, but here they run on the server's own two cores:
    their Chromium runs in the idle scheduling class (chrt --idle), so that it takes only the
    CPU time the server and the measured tab leave, as the students' own machines would.
    """
    with tempfile.TemporaryDirectory() as tmp:
        idle = Path(tmp) / "chromium-idle"
        idle.write_text('#!/bin/sh\nexec chrt --idle 0 /usr/bin/chromium "$@"\n')
        idle.chmod(0o755)
        crowd = pw.chromium.launch(executable_path=str(idle), args=CHROMIUM_ARGS)
        try:
            threads_before = proc_status(proc.pid, "Threads")
            rss_before = rss_mib(proc.pid)
            t0 = time.perf_counter()
            pages = []
            for _ in range(n):
                p = open_page(crowd, base, 1280, 720)
                p.get_by_role("button", name="▶ Train").click()
                pages.append(p)
            rows.append((f"open {n} tabs one after another, each starts training",
                         f"{time.perf_counter() - t0:.0f} s"))
            time.sleep(10)
            c0, w0 = cpu_seconds(proc.pid), time.perf_counter()
            steps0 = [p.evaluate(LAST_STEP) for p in pages]
            loop = event_loop_latency(base)
            share = (cpu_seconds(proc.pid) - c0) / (time.perf_counter() - w0)
            many = rss_mib(proc.pid)
            rows.append((f"server memory with {n} tabs training (+1 idle)",
                         f"{many:.0f} MiB ({(many - rss_before) / n:.1f} MiB per session)"))
            rows.append((f"server CPU while {n} tabs train", f"{share:.0%} of one core"))
            rows.append((f"server event loop round trip (/liveness) while {n} tabs train, median / 95th / max",
                         f"{statistics.median(loop) * 1e3:.0f} / {sorted(loop)[int(0.95 * len(loop))] * 1e3:.0f} / "
                         f"{max(loop) * 1e3:.0f} ms"))
            page = open_page(browser, base)
            latencies = [control_latency(page) for _ in range(7)]
            rows.append((f"control → updated plot in one more tab while {n} tabs train, median (max) of 7",
                         f"{statistics.median(latencies) * 1e3:.0f} ms ({max(latencies) * 1e3:.0f} ms)"))
            rates = [(p.evaluate(LAST_STEP) - s0) / (time.perf_counter() - w0) for p, s0 in zip(pages, steps0)]
            rows.append((f"training speed of each of the {n} tabs (set to 20 steps/s), least / most",
                         f"{min(rates):.1f} / {max(rates):.1f} steps/s ({sum(rates):.0f} in all)"))
            threads_open = proc_status(proc.pid, "Threads")
            page.close()
            for p in pages:
                p.close()
            time.sleep(45)  # Panel drops a closed tab's session after about 15 s, checking every 17 s
            c0, w0 = cpu_seconds(proc.pid), time.perf_counter()
            time.sleep(5)
            idle = (cpu_seconds(proc.pid) - c0) / (time.perf_counter() - w0)
            rows.append(("45 s after closing every tab: memory / server threads / CPU",
                         f"{rss_mib(proc.pid):.0f} MiB / {proc_status(proc.pid, 'Threads')} threads (were "
                         f"{threads_open} open, {threads_before} before) / {idle:.0%}"))
        finally:
            crowd.close()


LAST_STEP = """() => {
    const doc = Bokeh.documents[Bokeh.documents.length - 1];
    for (const m of doc.all_models)
        if (m.type === 'ColumnDataSource' && m.name === 'train_loss') return m.data.x.at(-1) ?? 0;
    return 0;
}"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--sessions-only", action="store_true", help="measure only the many-sessions part")
    ap.add_argument("--watch-only", action="store_true", help="measure only training-and-watching")
    ap.add_argument("--no-sessions", action="store_true", help="skip the many-sessions part (the longest)")
    ap.add_argument("--startup-only", action="store_true", help="measure only the start-up rows")
    args = ap.parse_args()
    rows = Table()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        if args.watch_only:
            proc, _ = start_server(5114, os.environ.get("NUMBA_CACHE_DIR", str(ROOT / ".numba-bench-cache")))
            try:
                watch_rows(browser, proc, "http://127.0.0.1:5114/app", rows)
            finally:
                proc.terminate()
                proc.wait()
            return
        if args.sessions_only:
            proc, _ = start_server(5113, os.environ.get("NUMBA_CACHE_DIR", str(ROOT / ".numba-bench-cache")))
            try:
                many_sessions(pw, browser, proc, "http://127.0.0.1:5113/app", args.sessions, rows)
            finally:
                proc.terminate()
                proc.wait()
            return
        with tempfile.TemporaryDirectory() as cache:
            for how, command in (("chipviz", "chipviz serve"), ("panel", "panel serve app.py")):
                cold = time_to_page(browser, 5111, cache, how)
                warm = [time_to_page(browser, 5112, cache, how) for _ in range(5)]
                shutil.rmtree(cache)
                os.mkdir(cache)  # the next command's cold start
                rows.append((f"`{command}`: server start → first screen drawn / whole page with the GEMM playable, "
                             f"cold numba cache", f"{cold[0]:.1f} s / {cold[1]:.1f} s"))
                each = ", ".join(f"{w[0]:.1f}" for w in warm)
                rows.append((f"`{command}`: server start → first screen drawn / whole page, warm numba cache "
                             f"(median of 5; all 5 first screens)",
                             f"{statistics.median(w[0] for w in warm):.1f} s / "
                             f"{statistics.median(w[1] for w in warm):.1f} s ({each})"))
            time_to_page(browser, 5112, cache)  # (warms the cache again)
            live, firsts, wholes = time_to_pages(browser, 5115, cache)
        rows.append(("on a running server (warm cache): request → first screen drawn, first tab / later tabs (median)",
                     f"{firsts[0]:.1f} s / {statistics.median(firsts[1:]):.1f} s (server start → live {live:.1f} s)"))
        rows.append(("… request → whole page, first tab / later tabs (median)",
                     f"{wholes[0]:.1f} s / {statistics.median(wholes[1:]):.1f} s"))
        if args.startup_only:
            return

        proc, _ = start_server(5113, os.environ.get("NUMBA_CACHE_DIR", str(ROOT / ".numba-bench-cache")))
        base = "http://127.0.0.1:5113/app"
        try:
            idle = rss_mib(proc.pid)
            for side in (8, 16, 32):
                rows.append((f"animation, {side}×{side} array (fps set to 60)",
                             f"{animation_fps(browser, base, side):.0f} frames/s"))
            watch_rows(browser, proc, base, rows)
            page = open_page(browser, base)
            latencies = [control_latency(page) for _ in range(5)]
            rows.append(("control → updated plot (One step → new point in the loss plot), median of 5",
                         f"{statistics.median(latencies) * 1e3:.0f} ms"))
            one = rss_mib(proc.pid)
            rows.append(("server memory: idle after start / with 1 session", f"{idle:.0f} / {one:.0f} MiB"))
            page.close()
            if not args.no_sessions:
                many_sessions(pw, browser, proc, base, args.sessions, rows)
        finally:
            proc.terminate()
            proc.wait()
        browser.close()


class Table(list):
    """Rows printed as they are measured, so a long run shows its progress."""

    def append(self, row):
        if not self:
            print("| measure | result |\n|---|---|", flush=True)
        super().append(row)
        print(f"| {row[0]} | {row[1]} |", flush=True)


if __name__ == "__main__":
    main()
