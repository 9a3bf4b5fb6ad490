"""Bokeh's start-up hook for the directory app that `chipviz serve` runs (this folder, served at /app)."""
from chipviz.app.document import accept_long_links


def on_server_loaded(server_context):
    """Before the first request: links with many parameters open the page (with a notice) instead of a bare 400."""
    accept_long_links()
