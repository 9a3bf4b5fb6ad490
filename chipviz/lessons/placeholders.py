"""The placeholder language: {{measure key=value ...}} in a lesson's text, parsed (never
evaluated) into a Query and rendered as the simulator's value.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .common import SETTING_KEYS, _close, _key, convert_setting, default_settings
from .measures import MAX_TRAIN_STEPS, MEASURES, OP_REF, SWEEP_ARGS, Query, format_value, measure_value, sweep_arg
from .model import Lesson, Step

PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
PLACEHOLDER_ARGS = ("m", "k", "n", "op", "steps", "digits", *SWEEP_ARGS)


def placeholders_in(line: str) -> list[str]:
    """The inner texts of the line's {{…}} placeholders; ValueError for an unclosed one."""
    found = PLACEHOLDER.findall(line)
    rest = PLACEHOLDER.sub("", line)
    if "{{" in rest or "}}" in rest:
        raise ValueError("a placeholder must open with {{ and close with }} on the same line")
    return found


@dataclass(frozen=True)
class Placeholder:
    query: Query
    digits: int | None


def resolve_placeholder(spec: str, settings: dict, op: str | None = None, steps: int = 1) -> Placeholder:
    """Parse `measure key=value …` (never evaluated) against default settings, op and steps."""
    tokens = spec.split()
    if not tokens:
        raise ValueError("an empty placeholder {{ }}: write {{measure key=value …}}, e.g. {{cycles m=4 k=4 n=4}}")
    name = tokens[0]
    if name not in MEASURES:
        raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: unknown measure {name!r}{_close(name, MEASURES)} "
                         f"(allowed: {', '.join(MEASURES)})")
    measure = MEASURES[name]
    values = dict(settings)
    dims: dict[str, int] = {}
    digits = None
    given_op = None
    sweep = {}
    for token in tokens[1:]:
        key, sep, raw = token.partition("=")
        if not sep or not NAME.match(key) or not raw:
            raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: {token!r} is not key=value")
        if key in ("m", "k", "n", "steps", "digits"):
            if not raw.isdigit() or len(raw) > 7:
                raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: {key}={raw} must be a whole number")
            number = int(raw)
            if key == "digits":
                if number > 6:
                    raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: digits must be 0 to 6")
                digits = number
            elif key == "steps":
                if not 1 <= number <= MAX_TRAIN_STEPS:
                    raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: steps must be 1 to {MAX_TRAIN_STEPS}")
                steps = number
            else:
                if number < 1:
                    raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: {key} must be >= 1")
                dims[key] = number
        elif key in SWEEP_ARGS:
            if measure.kind != "sweep":
                raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: {key} is for the sweep measures (sweep_…)")
            try:
                sweep[key] = sweep_arg(key, raw)
            except ValueError as exc:
                raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: {exc}") from None
        elif key == "op":
            if not OP_REF.match(raw):
                raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: op={raw} must be like L1.forward, L2.dX, L1.dW")
            given_op = raw
        elif key in SETTING_KEYS:
            try:
                values[SETTING_KEYS[key]] = convert_setting(key, raw)
            except ValueError as exc:
                raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: {key}={raw} {exc}") from None
        else:
            allowed = list(PLACEHOLDER_ARGS) + sorted(SETTING_KEYS)
            raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: unknown argument {key!r}{_close(key, allowed)} "
                             f"(allowed: {', '.join(allowed)})")
    if dims and len(dims) != 3:
        raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: give all of m, k and n (A is m×k, B is k×n)")
    gemm_dims = (dims["m"], dims["k"], dims["n"]) if dims else None
    use_op = None
    if measure.kind in ("gemm", "trace") and not gemm_dims:
        use_op = given_op or op
        if not use_op:
            raise ValueError(f"placeholder {{{{{spec.strip()}}}}}: {name} needs a GEMM: m=… k=… n=… or op=L1.forward")
    return Placeholder(Query(name, _key(values), gemm_dims, use_op, steps, tuple(sorted(sweep.items()))), digits)


def render(text: str, settings: dict | None = None, lang: str = "en", op: str | None = None, steps: int = 1) -> str:
    """`text` with every {{placeholder}} replaced by the simulator's value (errors shown inline)."""
    base = settings or default_settings()

    def one(match):
        try:
            ph = resolve_placeholder(match.group(1), base, op, steps)
            return format_value(ph.query.measure, measure_value(ph.query), lang, ph.digits)
        except (ValueError, KeyError) as exc:
            return f"⟨{exc}⟩"

    return PLACEHOLDER.sub(one, text)


def render_step(step: Step, text: str | None = None) -> str:
    """A step's text (or another text of the step) rendered with the step's settings, op and steps."""
    return render(step.text if text is None else text, step.settings, step.language, step.view.op,
                  step.view.train_steps or 1)


def render_lesson_text(lesson: Lesson, text: str) -> str:
    return render(text, lesson.settings, lesson.language)
