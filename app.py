"""ChipViz dashboard: `panel serve app.py`, then open the address it prints.

Each browser tab gets its own training session; settings live in the URL.
"""
from chipviz.app.dashboard import Dashboard
from chipviz.server_load import limit_blas_threads

limit_blas_threads()  # the tabs share this server's cores: one BLAS thread per call (server_load.py)
Dashboard().template().servable()
