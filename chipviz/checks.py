"""The one vocabulary for checking a value at an API's edge: what is wrong, and what is allowed.

Every layer checks its own arguments with these two, so a bad value reads the same everywhere:
"batch_size must be a whole number from 1 to 65536, got 0". (The URL and lesson values of
the app are read by chipviz.settings.convert, which says the same in the page's language.)
Plain Python and numpy: the bottom of the import layers.
"""
from __future__ import annotations

import math
from numbers import Integral, Real


def _is_whole(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _fmt(x) -> str:
    return f"{x:,.0f}" if float(x).is_integer() and abs(x) >= 10_000 else f"{x:g}"


def whole(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int, or ValueError: "<name> must be a whole number from <low> to <high>, got <value>"."""
    if low is not None and high is not None:
        allowed = f"a whole number from {low} to {high}"
    elif low is not None:
        allowed = f"a whole number >= {low}"
    else:
        allowed = "a whole number"
    if not _is_whole(value) or (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def number(name: str, value, low: float, high: float, unit: str = "") -> float:
    """`value` as a float, or ValueError: "<name> must be a number from <low> to <high> <unit>, got <value>"."""
    if not _is_number(value) or not math.isfinite(value) or not low <= value <= high:
        unit = f" {unit}" if unit else ""
        raise ValueError(f"{name} must be a number from {_fmt(low)} to {_fmt(high)}{unit}, got {value!r}")
    return float(value)


def one_of(name: str, value, allowed) -> str:
    """`value` if it is among `allowed`, or ValueError: "<name> must be one of a, b, c, got <value>"."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")
    return value
