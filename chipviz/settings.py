"""Settings in the URL query, so that a link reproduces a view.

Reading is forgiving: a bad value (text, NaN, a negative size, a huge number) is dropped,
the default stays, and a notice says what was wrong. No panel import: tested headless.
"""
from __future__ import annotations

import math

import param

# URL key -> TrainingSession parameter
KEYS = {
    "dataset": "dataset", "hidden": "hidden_layers", "w1": "width1", "w2": "width2", "w3": "width3",
    "w4": "width4", "act": "activation", "opt": "optimizer", "lr": "lr", "batch": "batch_size", "seed": "seed",
    "precision": "precision", "noise": "noise", "rows": "rows", "cols": "cols", "dataflow": "dataflow",
    "clock": "clock_mhz", "sram": "sram_kib", "bw": "dram_bytes_per_cycle", "speed": "steps_per_second",
}
PARAM_TO_KEY = {v: k for k, v in KEYS.items()}


def parse_query(query: dict[str, str], target: param.Parameterized,
                extra: dict[str, param.Parameter] | None = None) -> tuple[dict, list[str]]:
    """Validate query values against `target`'s parameters (and `extra` ones by key).

    Returns ({parameter name: value} for the good ones, [notice per bad one]).
    """
    good, notices = {}, []
    extra = extra or {}
    for key, raw in query.items():
        if isinstance(raw, (list, tuple)):
            raw = raw[-1] if raw else ""
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        raw = str(raw)
        if key in KEYS:
            name, p = KEYS[key], target.param[KEYS[key]]
        elif key in extra:
            name, p = key, extra[key]
        else:
            notices.append(f"Unknown setting “{_short(key)}” in the link was ignored.")
            continue
        try:
            good[name] = convert(raw, p)
        except ValueError as exc:
            notices.append(f"{key}={_short(raw)} was ignored: {exc}; the default was kept.")
    return good, notices


def convert(raw: str, p: param.Parameter):
    """The value of `raw` for parameter `p`, or ValueError saying what is allowed."""
    if isinstance(p, param.Selector):
        if raw not in p.objects:
            raise ValueError(f"must be one of {', '.join(map(str, p.objects))}")
        return raw
    if isinstance(p, param.Boolean):
        if raw.lower() in ("1", "true", "yes"):
            return True
        if raw.lower() in ("0", "false", "no"):
            return False
        raise ValueError("must be true or false")
    if isinstance(p, param.Integer):
        low, high = p.bounds or (None, None)
        text = raw.strip()
        if not (text.lstrip("-").isdigit() and len(text) < 12):
            raise ValueError(f"must be a whole number from {low} to {high}")
        value = int(text)
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"must be a whole number from {low} to {high}")
        return value
    if isinstance(p, param.Number):
        low, high = p.bounds or (None, None)
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be a number from {low:g} to {high:g}") from None
        if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"must be a number from {low:g} to {high:g}")
        return value
    if isinstance(p, param.String):
        if len(raw) > 200:
            raise ValueError("is too long")
        return raw
    raise ValueError("cannot be set from a link")


def to_query(target: param.Parameterized, extra: dict | None = None) -> dict[str, str]:
    """The query that reproduces `target`'s settings (numbers written compactly)."""
    query = {key: _format(getattr(target, name)) for key, name in KEYS.items()}
    for key, value in (extra or {}).items():
        query[key] = _format(value)
    return query


def _format(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _short(text: str) -> str:
    text = str(text)
    return text if len(text) <= 40 else text[:37] + "…"
