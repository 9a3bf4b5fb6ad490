"""Edits to a served page from other threads go through the page's own thread: one mechanism.

A session trains in a worker thread, and a param watcher runs in the thread that set the
parameter. Panel's guidance is to edit a served page's models on its document's event loop,
with that document current; from another thread, a watcher's edits would interleave with the
page's own callbacks.

- `on_document(doc, fn)` wraps a watcher so that, once the page is served, every call runs on
  the document's thread (`pn.state.execute`); unserved (tests, notebooks) it runs at once.
- `Redraw(fn, document)` is the same for a view's redraw, coalesced: requests that arrive
  before the queued one runs are one redraw (of the latest state), run under `pn.io.hold()`.
"""
from __future__ import annotations

import threading
from functools import partial, wraps

import panel as pn
from panel.io.location import Location
from panel.io.state import set_curdoc


def served_document():
    """The document of the page being built, or None (tests, notebooks, scripts)."""
    doc = pn.state.curdoc
    return doc if doc is not None and doc.session_context is not None else None


def on_document(doc, fn):
    """`fn`, made to run on `doc`'s thread when `doc` is a served page's document."""
    if doc is None:
        return fn

    @wraps(fn)
    def run(*args, **kwargs):
        with set_curdoc(doc):
            pn.state.execute(partial(fn, *args, **kwargs))

    return run


class Redraw:
    """`fn` run on its page's thread, coalesced: call the Redraw as often as state changes.

    `document()` gives the view's document (or None): unserved, `fn` runs at once; served, one
    run is queued on the document's thread and later calls before it runs add nothing.
    """

    def __init__(self, fn, document):
        self._fn, self._document = fn, document
        self._lock = threading.Lock()
        self._queued = False

    def __call__(self, *_events) -> None:
        doc = self._document()
        if doc is None or doc.session_context is None:
            self._fn()
            return
        with self._lock:
            if self._queued:
                return  # the queued run draws the latest state anyway
            self._queued = True
        try:
            with set_curdoc(doc):
                pn.state.execute(self._run)
        except Exception:
            with self._lock:
                self._queued = False
            raise

    def _run(self) -> None:
        with self._lock:
            self._queued = False
        with pn.io.hold():
            self._fn()


MAX_LINK_ARGUMENTS = 100_000  # a link's query parameters the server parses (Tornado's default: 1,000)


def accept_long_links() -> None:
    """Let the web server parse links with many parameters (Tornado answers a bare HTTP 400 above
    1,000), so that such a link opens the page with a notice of what was ignored. A link stays
    bounded by the server's header size (64 KiB); the app reads at most its known keys."""
    from tornado import httputil

    config = httputil.ParseBodyConfig(urlencoded=httputil.ParseUrlEncodedConfig(max_arguments=MAX_LINK_ARGUMENTS))
    httputil.set_parse_body_config(config)


def page_location():
    """The served page's Location (its URL), or None.

    Panel parses a page's link whenever it changes (on the server, and again when the browser
    reports its own address) and fails on a value Python will not read as a number (4,300 digits
    and more). The app reads and judges the link itself (chipviz.settings.parse_query), so the
    page gets a Location whose parse of such a value is empty instead of an error."""
    doc = served_document()
    if doc is None:
        return None
    if doc not in pn.state._locations:  # where pn.state.location keeps each page's Location
        pn.state._locations[doc] = _ForgivingLocation.from_request(doc.session_context.request)
    return pn.state.location


class _ForgivingLocation(Location):
    @property
    def query_params(self):
        try:
            return super().query_params
        except ValueError:  # a number Python will not read (the app has said what it ignored)
            return {}


def after(doc, milliseconds: int, fn) -> None:
    """Run `fn` on `doc`'s thread `milliseconds` from now; unserved (tests, notebooks), at once."""
    if doc is None or doc.session_context is None:
        fn()
        return

    def run():
        with set_curdoc(doc), pn.io.hold():
            fn()

    doc.add_timeout_callback(run, milliseconds)


# Set once a served page of this process has been drawn: the server's start-up work that no page needs
# first (server_lifecycle.warm_up_kernels) waits for it, so that it does not slow the first page.
FIRST_PAGE_DRAWN = threading.Event()


def after_first_paint(fn) -> None:
    """Run `fn` once the served page is on screen (Panel's onload: the browser has drawn the first
    document), on the page's thread; unserved (tests, notebooks), at once. For what is below the
    fold or hidden at first, so that the first screen is sent and drawn without waiting for it."""
    if served_document() is None:
        fn()
        return

    def run():
        FIRST_PAGE_DRAWN.set()
        with pn.io.hold():
            fn()

    pn.state.onload(run)


def release_links(*viewables) -> None:
    """Forget the JS links and callbacks Panel registered for these views' widgets.

    Panel keeps them in class-level registries (`panel.links.Callback.registry`, `Link.registry`)
    keyed weakly by widget, but an editable slider's entry refers back to the slider, so the
    entry, the widgets and (through their `from_param` links) the whole session outlive the
    closed tab. Called when a page's session is destroyed.
    """
    from panel.links import Callback, Link

    mine = {id(obj) for view in viewables for obj in pn.panel(view).select()}
    for registry in (Callback.registry, Link.registry):
        for key in list(registry.keys()):
            callbacks = registry.get(key) or []
            if id(key) in mine or any(id(arg) in mine for cb in callbacks
                                      for arg in getattr(cb, "args", {}).values()):
                registry.pop(key, None)


# BokehJS's optional bundles the page never uses: MathJax (1.8 MB: Panel adds it to any page with an HTML pane,
# in case it holds LaTeX; no text of ours does) and WebGL (no figure asks for it). (The data-table bundle
# stays: Panel's own widgets build on it.)
UNUSED_BUNDLES = ("bokeh-mathjax", "bokeh-gl")


def lighter_pages() -> None:
    """Leave UNUSED_BUNDLES out of the served pages' scripts: 2.0 MB of the 4.8 MB the browser would
    otherwise parse before it can draw. Panel lists every bundle for a server page (panel.io.server's
    bundle_resources, given a copy of the server's Resources); with another Panel, without that
    function, the pages keep them. Once per server process; idempotent."""
    import panel.io.server as server

    bundle = getattr(server, "bundle_resources", None)
    if bundle is None or getattr(bundle, "chipviz_lighter", False):
        return

    @wraps(bundle)
    def lighter(roots, resources, *args, **kwargs):
        if resources is not None and hasattr(resources, "clone"):
            resources = resources.clone(components=[c for c in resources.components if c not in UNUSED_BUNDLES])
        return bundle(roots, resources, *args, **kwargs)

    lighter.chipviz_lighter = True
    server.bundle_resources = lighter
