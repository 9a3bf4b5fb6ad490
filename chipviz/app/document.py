"""Edits to a served page from other threads go through the page's own thread.

A session trains in a worker thread, and a param watcher runs in the thread that set the
parameter. Panel's guidance is to edit a served page's models on its document's event loop,
with that document current; from another thread, a watcher's edits would interleave with the
page's own callbacks. `on_document(doc, fn)` wraps a watcher so that, once the page is served,
a call from another thread runs on the document's next tick (and a call on the document's own
thread runs at once). The live plots and the network view schedule their redraws the same way.
"""
from __future__ import annotations

from functools import partial, wraps

import panel as pn
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
