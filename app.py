"""ChipViz dashboard: `panel serve app.py`, then open the address it prints.

Each browser tab gets its own training session; settings live in the URL.
"""
from chipviz.app.dashboard import Dashboard

Dashboard().template().servable()
