"""The served dashboard, measured in Chromium: start-up, animation, latency, memory, many sessions.

    python benchmarks/bench_app.py [--sessions 20]

Prints a Markdown table of:
- time from `panel serve app.py` starting to a rendered page (the PE array drawn), with a
  cold numba cache (a fresh NUMBA_CACHE_DIR: every kernel compiles) and a warm one;
- animation frames per second in Chromium for 8×8, 16×16 and 32×32 arrays;
- latency from a control (One step) to the updated loss plot in the page;
- server memory (RSS) with one session and with N sessions open, and the latency of a
  control in one page while the N others train, and what is left after the pages close.
Needs Debian's chromium at /usr/bin/chromium and the playwright package.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
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


def start_server(port: int, cache_dir: str) -> tuple[subprocess.Popen, float]:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, BOKEH_BROWSER="none")
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", str(ROOT / "app.py"), "--address", "127.0.0.1",
                             "--port", str(port), "--allow-websocket-origin", f"127.0.0.1:{port}", "--liveness"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/liveness", timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    return proc, began


def proc_status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def rss_mib(pid: int) -> float:
    return proc_status(pid, "VmRSS") / 1024


def open_page(browser, url: str, width=1600, height=1000):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    page.get_by_text("Matrix multiply on the chip").first.wait_for(timeout=120_000)
    page.wait_for_function("() => (window.__chipviz_frames || 0) > 0", timeout=120_000)
    return page


def time_to_page(browser, port: int, cache_dir: str) -> float:
    proc, began = start_server(port, cache_dir)
    try:
        page = open_page(browser, f"http://127.0.0.1:{port}/app")
        elapsed = time.perf_counter() - began
        page.close()
        return elapsed
    finally:
        proc.terminate()
        proc.wait()


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=20)
    args = ap.parse_args()
    rows = Table()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        with tempfile.TemporaryDirectory() as cache:
            cold = time_to_page(browser, 5111, cache)
            warm = time_to_page(browser, 5112, cache)
        rows.append(("server start → rendered page, cold numba cache", f"{cold:.1f} s"))
        rows.append(("server start → rendered page, warm numba cache", f"{warm:.1f} s"))

        proc, _ = start_server(5113, os.environ.get("NUMBA_CACHE_DIR", str(ROOT / ".numba-bench-cache")))
        base = "http://127.0.0.1:5113/app"
        try:
            idle = rss_mib(proc.pid)
            for side in (8, 16, 32):
                rows.append((f"animation, {side}×{side} array (fps set to 60)",
                             f"{animation_fps(browser, base, side):.0f} frames/s"))
            page = open_page(browser, base)
            latencies = [control_latency(page) for _ in range(5)]
            rows.append(("control → updated plot (One step → new point in the loss plot), median of 5",
                         f"{statistics.median(latencies) * 1e3:.0f} ms"))
            one = rss_mib(proc.pid)
            rows.append(("server memory: idle after start / with 1 session", f"{idle:.0f} / {one:.0f} MiB"))
            pages = []
            for _ in range(args.sessions):
                p = open_page(browser, base, 1280, 720)
                p.get_by_role("button", name="▶ Train").click()
                pages.append(p)
            time.sleep(5)
            many = rss_mib(proc.pid)
            rows.append((f"server memory with {args.sessions + 1} sessions (all but one training)",
                         f"{many:.0f} MiB ({(many - one) / args.sessions:.1f} MiB per extra session)"))
            latencies = [control_latency(page) for _ in range(5)]
            rows.append((f"control → updated plot while {args.sessions} other sessions train, median of 5",
                         f"{statistics.median(latencies) * 1e3:.0f} ms"))
            threads_open = proc_status(proc.pid, "Threads")
            for p in pages:
                p.close()
            page.close()
            time.sleep(45)  # Panel drops closed sessions after about 15 s, checking every 17 s
            rows.append((f"after closing all pages (45 s later): memory / server threads",
                         f"{rss_mib(proc.pid):.0f} MiB / {proc_status(proc.pid, 'Threads')} threads "
                         f"(were {threads_open} with the pages open)"))
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
