"""Send the browser only what changed in a plot's data.

The live views redraw from the latest snapshot a few times a second, in every open tab, and
between two snapshots most columns (positions, labels, link endpoints) stay the same. Replacing
a whole ColumnDataSource resends every column; `set_data` sends the changed columns only, or
nothing, and `set_series` streams the new tail of a growing curve. On a server with a class of
twenty tabs, this is most of the websocket traffic and of the event loop's serialising work.
"""
from __future__ import annotations

import numpy as np
from bokeh.models import ColumnDataSource


def _same(old, new) -> bool:
    if isinstance(old, np.ndarray) or isinstance(new, np.ndarray):
        a, b = np.asarray(old), np.asarray(new)
        if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    try:
        return bool(old == new)
    except ValueError:  # a list holding arrays (an image column): compare element by element
        return len(old) == len(new) and all(_same(x, y) for x, y in zip(old, new))


def set_data(source: ColumnDataSource, data: dict) -> None:
    """Make `source.data` equal `data`, sending the browser only the columns that changed."""
    old = source.data
    if set(old) != set(data) or any(len(old[k]) != len(v) for k, v in data.items()):
        source.data = data
        return
    changed = {k: v for k, v in data.items() if not _same(old[k], v)}
    if changed:
        source.data.update(changed)


def set_series(source: ColumnDataSource, x: np.ndarray, y: np.ndarray, full: bool = False) -> None:
    """Make `source` hold (x, y): stream the new tail if the old data is a prefix, else (or when
    `full`) replace it. A browser that connects while points are streamed can miss some, so the
    views send the whole series now and then (`full`) to heal such gaps."""
    old_x = np.asarray(source.data.get("x", ()))
    n = len(old_x)
    if full:
        if n != len(x) or not np.array_equal(old_x, x) or not np.array_equal(np.asarray(source.data["y"]), y):
            source.data = {"x": x, "y": y}
        return
    if 0 < n <= len(x) and np.array_equal(old_x, x[:n]) and np.array_equal(np.asarray(source.data["y"]), y[:n]):
        if len(x) > n:
            source.stream({"x": x[n:], "y": y[n:]})
        return
    source.data = {"x": x, "y": y}
