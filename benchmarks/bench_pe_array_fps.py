"""Frames per second of PEArrayView in headless Chromium, per array size.

Serves one app (size chosen by the URL's ?size=), presses Play with the speed at 60
cycles/s and counts canvas draws (window.__chipviz_frames, one per requestAnimationFrame
that drew) over a few seconds, after a short warm-up. Prints a Markdown table.

    python benchmarks/bench_pe_array_fps.py [--seconds 3] [--sizes 8 16 32 64]

Needs Chromium at /usr/bin/chromium and the playwright Python package.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))
from conftest import CHROMIUM, PanelServer, launch_chromium  # noqa: E402

APP = '''
import numpy as np
import panel as pn
from chipviz.chip import ChipConfig, gemm
from chipviz.app.pe_array import PEArrayView

pn.extension()
size = int(pn.state.session_args.get("size", [b"16"])[0])
rng = np.random.default_rng(0)
m = 512  # long enough to stream for several seconds at 60 cycles/s
a = rng.standard_normal((m, size)).astype(np.float32)
b = rng.standard_normal((size, size)).astype(np.float32)
trace = gemm(a, b, ChipConfig(rows=size, cols=size, dataflow="ws"), engine="cycle",
             trace_window=(0, 1500)).trace  # 1500 cycles: 25 s at 60 cycles/s
view = PEArrayView(fps=60)
view.load_trace(trace, caption=f"benchmark · {size}×{size} ws")
sent = pn.pane.Str(f"batches 1 bytes {len(view.frames)}", name="batches")
count = {"n": 1, "bytes": len(view.frames)}
def on_frames(event):
    count["n"] += 1
    count["bytes"] += len(event.new)
    sent.object = f"batches {count['n']} bytes {count['bytes']}"
view.param.watch(on_frames, "frames")
pn.Column(view, sent, sizing_mode="stretch_width").servable()
'''


def measure(page, url: str, seconds: float, warmup: float = 0.7) -> dict:
    page.goto(url)
    page.wait_for_selector("canvas.cv-canvas", timeout=60_000)
    page.wait_for_function("window.__chipviz_frames > 0", timeout=60_000)
    page.locator("button.cv-play").click()
    time.sleep(warmup)
    probe = "[window.__chipviz_frames, window.__chipviz_draw_ms, performance.now(), window.__chipviz_cycle]"
    f0, d0, c0, cyc0 = page.evaluate(probe)
    time.sleep(seconds)
    f1, d1, c1, cyc1 = page.evaluate(probe)
    dt = (c1 - c0) / 1000
    batches = page.get_by_text("batches").first.text_content()
    return {"fps": (f1 - f0) / dt, "draw_ms": (d1 - d0) / max(1, f1 - f0), "cycles_per_s": (cyc1 - cyc0) / dt,
            "batches": batches}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"skipped: no Chromium at {CHROMIUM}")
        return 0
    from playwright.sync_api import sync_playwright

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "bench_app.py"
        app.write_text(APP)
        with PanelServer(app) as server, sync_playwright() as pw:
            browser = launch_chromium(pw)
            blank = browser.new_page()
            blank.set_content("<p>requestAnimationFrame ceiling</p>")
            blank.evaluate("window.__n = 0; (function f() { window.__n++; requestAnimationFrame(f); })()")
            time.sleep(2)
            raf_rate = blank.evaluate("window.__n") / 2
            blank.close()
            for size in args.sizes:
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                errors = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                try:
                    result = measure(page, f"{server.url}?size={size}", args.seconds)
                except Exception:
                    print(f"{size}×{size} failed; page errors: {errors}\nserver log:\n{server.log()[-3000:]}")
                    raise
                page.close()
                rows.append((size, result, errors))
            browser.close()
    print(f"PEArrayView in headless Chromium (software canvas), fps param 60, {args.seconds:.0f} s per size; "
          f"requestAnimationFrame on a blank page: {raf_rate:.0f}/s\n")
    print("| array | draws/s (fps) | cycles shown/s | mean draw ms | server batches (bytes) | page errors |")
    print("|---|---|---|---|---|---|")
    for size, r, errors in rows:
        batches = r["batches"].replace("batches ", "").replace(" bytes ", " (") + ")"
        print(f"| {size}×{size} | {r['fps']:.1f} | {r['cycles_per_s']:.1f} | {r['draw_ms']:.2f} | {batches} | "
              f"{len(errors)} |")
    ok = all(r["fps"] >= 30 for size, r, _ in rows if size == 16)
    print(f"\ngoal ≥ 30 fps at 16×16: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
