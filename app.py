"""ChipViz dashboard: `panel serve app.py`, then open the address it prints (…/app).

The page itself is chipviz/app/main.py, which `chipviz serve` serves from an installed package;
this file runs the same for a checkout. Each browser tab gets its own training session.
"""
from chipviz.app.main import serve_page

serve_page()
