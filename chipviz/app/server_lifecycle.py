"""Bokeh's start-up hook for the directory app that `chipviz serve` runs (this folder, served at /app)."""
import threading

from chipviz.app.document import FIRST_PAGE_DRAWN, accept_long_links

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
    (with a notice) instead of a bare 400; the kernels load beside, later (warm_up_kernels)."""
    import chipviz.app.dashboard  # noqa: F401

    accept_long_links()
    threading.Thread(target=warm_up_kernels, name="chipviz-warm-up", daemon=True).start()
