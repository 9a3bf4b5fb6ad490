"""The served dashboard. `chipviz serve` runs `panel serve` on this package's folder, chipviz/app/: a
Bokeh directory app whose script is this main.py, served at /app (the folder's name). The repository's
app.py runs the same page for `panel serve app.py`, also at /app.

Each browser tab gets its own training session; settings live in the URL. Imports here are absolute:
Bokeh runs this file as a script (a module named bokeh_app_…), not as part of chipviz.app.
"""
from contextlib import nullcontext

import panel as pn

from chipviz.app.dashboard import Dashboard
from chipviz.app.document import accept_long_links, lighter_pages
from chipviz.server_load import limit_blas_threads


def serve_page():
    """Build this tab's dashboard and mark it servable (the server runs the app's script once per tab)."""
    limit_blas_threads()  # the tabs share this server's cores: one BLAS thread per call (server_load.py)
    accept_long_links()  # (chipviz serve does these two at start-up: server_lifecycle.py)
    lighter_pages()
    # Panel's optional extensions, none: the page then leaves out the scripts of those Panel imports anyway
    # (Tabulator's table and its date library, 0.5 MB the browser would parse for nothing)
    pn.extension()
    doc = pn.state.curdoc
    # The page's models are gathered once, when all are in (Bokeh would again after each root: 0.1 s more)
    with doc.models.freeze() if doc is not None else nullcontext():
        return Dashboard().template().servable()


if __name__ != "chipviz.app.main":  # run as the app's script by panel serve (not imported, as app.py does)
    serve_page()
