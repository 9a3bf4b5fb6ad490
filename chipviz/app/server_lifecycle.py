"""Bokeh's start-up hook for the directory app that `chipviz serve` runs (this folder, served at /app)."""
import threading

from chipviz.app.document import accept_long_links


def warm_up() -> None:
    """Load what every first tab needs, so the first student does not wait for it: the dashboard's
    modules and the cycle engine's compiled kernels (loaded from numba's cache, or compiled on a
    cold one), by running a tiny GEMM of each dataflow."""
    import chipviz.app.dashboard  # noqa: F401  (the views, panel's widgets, bokeh's models)
    from chipviz.chip import DATAFLOWS, ChipConfig, load_engine

    for dataflow in DATAFLOWS:
        load_engine(ChipConfig(dataflow=dataflow))


def on_server_loaded(server_context):
    """Before the first request: links with many parameters open the page (with a notice) instead of a
    bare 400; the warm-up runs beside, so the server answers at once."""
    accept_long_links()
    threading.Thread(target=warm_up, name="chipviz-warm-up", daemon=True).start()
