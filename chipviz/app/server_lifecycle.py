"""Bokeh's start-up hook for the directory app that `chipviz serve` runs (this folder, served at /app)."""
import gc
import threading

from chipviz.app.document import FIRST_PAGE_DRAWN, accept_long_links, lighter_pages

# How long the kernels' warm-up waits for a first page before it starts anyway (seconds)
KERNELS_AFTER_SECONDS = 10.0


def warm_up_kernels() -> None:
    """Load the cycle engine's compiled kernels (from numba's cache, or compiled on a cold one) by running
    a tiny GEMM of each dataflow, once a first page is on screen or after KERNELS_AFTER_SECONDS: a page
    does not wait for them (it shows the PE array once its kernel is in), but on two cores and one
    interpreter lock, loading them beside the first request slowed that page by 0.3-0.5 s."""
    from chipviz.chip import DATAFLOWS, ChipConfig, load_engine

    FIRST_PAGE_DRAWN.wait(KERNELS_AFTER_SECONDS)
    for dataflow in DATAFLOWS:
        load_engine(ChipConfig(dataflow=dataflow))


def on_server_loaded(server_context):
    """Before the first request: the dashboard's modules (the views, panel's widgets, bokeh's models)
    are imported, so the first page does not import them; links with many parameters open the page
    (with a notice) instead of a bare 400; the page leaves out scripts it never uses; the kernels load
    beside, later (warm_up_kernels)."""
    gc.disable()  # (off already under `chipviz serve`: cli.run_server)
    import chipviz.app.dashboard  # noqa: F401

    accept_long_links()
    lighter_pages()
    # What start-up made (modules, classes: about 150,000 objects the collector tracks) lives as long as the
    # server: frozen out of the collector's way, its full passes walk only what came after.
    gc.freeze()
    gc.enable()
    threading.Thread(target=warm_up_kernels, name="chipviz-warm-up", daemon=True).start()
