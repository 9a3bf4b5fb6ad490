"""Checking a student's answer to a step's question against the simulator."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..chip import Mapping
from .common import SETTING_KEYS, chip_config, parse_number, ui
from .measures import find_op, format_value, measure_value
from .model import Question
from .placeholders import render


class Feedback(NamedTuple):
    """check_answer's result. expected is None when the answer could not be checked (empty,
    not a number, not a choice); explanation then says what to enter."""

    correct: bool
    expected: Any
    explanation: str


@dataclass
class AnswerContext:
    """What a question is measured against: the lesson's declared state, or the live session."""

    session: Any = None  # a TrainingSession, for questions with source = "app"
    op: int | None = None  # index (in the session's last step) of the GEMM shown


def expected_answer(question: Question, context: AnswerContext | None = None):
    """The simulator's answer: a number (number questions) or one of the choices."""
    if question.kind == "choice" and question.bins:
        value = _numeric_value(question, context)
        return question.choices[sum(value >= b for b in question.bins)]
    if question.kind == "choice" and question.over:
        values = [measure_value(question.query.with_changes(c)) for c in question.over]
        best = min(values) if question.choose == "min" else max(values)
        winners = [c for c, v in zip(question.choices, values) if math.isclose(v, best, rel_tol=1e-12)]
        return winners[0] if len(winners) == 1 else tuple(winners)
    return _numeric_value(question, context)


def _numeric_value(question: Question, context: AnswerContext | None):
    value = _live_value(question, context) if question.source == "app" else measure_value(question.query)
    if question.minus is not None:
        value = value - measure_value(question.query.with_changes(question.minus))
    elif question.divided_by is not None:
        value = value / measure_value(question.query.with_changes(question.divided_by))
    return value


def _live_value(question: Question, context: AnswerContext | None):
    """The question's measure taken from the live session (source = "app")."""
    session = getattr(context, "session", None)
    if session is None:
        return measure_value(question.query)
    measure = question.measure
    if measure.kind in ("mnist", "sweep"):  # not the live network's: its settings on MNIST's shape, or a sweep
        return measure_value(question.query)
    settings = {name: getattr(session, name) for name in SETTING_KEYS.values()}
    if measure.kind == "chip":
        return measure.fn(chip_config(settings).with_(precision=settings["precision"]))
    if measure.kind == "net":
        with session.lock:
            if session.trainer.last is None and measure.name not in ("params", "test_accuracy", "test_loss"):
                raise ValueError("the network has not trained yet: press “One step”")
            return measure.fn(session.trainer)
    ops = session.operations()
    index = context.op
    if index is None or not (0 <= index < len(ops)) or not ops[index].is_gemm:
        index = find_op(ops, question.query.op or "L1.forward")
    if index is None:
        raise ValueError("the app shows no matrix multiply yet: press “One step”")
    stats = ops[index].stats
    if measure.kind == "trace":
        trace = session.trace_operation(index, (0, stats.cycles))
        return measure.fn(trace)
    config = chip_config(settings).with_(precision=stats.precision)
    return measure.fn(stats, Mapping.of(stats.m, stats.k, stats.n, config))


def tolerance_of(question: Question, expected: float) -> float:
    """Absolute tolerance: the question's, else exact for whole-number measures, else 1% (0.5 points for %)."""
    if question.tolerance is not None or question.rel_tolerance is not None:
        return max(question.tolerance or 0.0, (question.rel_tolerance or 0.0) * abs(expected))
    m = question.measure
    if question.minus is None and question.divided_by is None:
        if m.fmt == "int":
            return 0.0
        if m.fmt == "percent":
            return 0.5
    return max(0.01 * abs(expected), 0.5 * 10 ** -m.decimals if question.divided_by is None else 0.0)


def format_expected(question: Question, expected) -> str:
    lang = question.language
    if question.kind == "choice":
        if isinstance(expected, tuple):
            return " / ".join(question.label(c) for c in expected)
        return question.label(expected) if expected in question.choices else format_value(
            question.query.measure, expected, lang)
    if question.divided_by is not None:
        return f"{expected:,.2f}×" if abs(expected) < 100 else f"{expected:,.0f}×"
    if question.minus is not None and question.measure.fmt == "percent":
        return f"{expected:+,.1f} " + ("个百分点" if lang == "zh" else "percentage points")
    if question.minus is not None:
        return f"{expected:+,.{question.measure.decimals}f}"
    return format_value(question.query.measure, expected, lang)


def check_answer(question: Question, answer_text, context: AnswerContext | None = None) -> Feedback:
    """Check a student's answer against the simulator: (correct, expected, explanation).

    expected is None when the input could not be checked (empty, not a number, not one of the
    choices); explanation then says what to type. Otherwise explanation starts with the verdict
    and the simulator's value, followed by the lesson's explanation.
    """
    lang = question.language
    text = "" if answer_text is None else str(answer_text).strip()
    if question.kind == "choice":
        if text not in question.choices:
            return Feedback(False, None, ui(lang, "choose_one"))
        expected = expected_answer(question, context)
        correct = text in expected if isinstance(expected, tuple) else text == expected
        given = question.label(text)
    else:
        if not text:
            return Feedback(False, None, ui(lang, "empty"))
        value = parse_number(text)
        if value is None:
            return Feedback(False, None, ui(lang, "not_a_number", given=text[:40]))
        expected = expected_answer(question, context)
        correct = abs(value - expected) <= tolerance_of(question, expected) + 1e-9 * max(1.0, abs(expected))
        given = text
    shown = format_expected(question, expected)
    verdict = ui(lang, "right") if correct else ui(lang, "wrong")
    detail = ui(lang, "simulator_says", expected=shown) if correct else ui(lang, "you_said", given=given,
                                                                          expected=shown)
    settings, op, steps = question.context or (question.query.settings, question.query.op, question.query.steps)
    explanation = render(question.explanation, dict(settings), lang, op, steps)
    why = tempting_text(question, text) if not correct else None
    if why is not None:
        why = render(why, dict(settings), lang, op, steps)
        explanation = f"*{ui(lang, 'tempting', given=given)}* {why}\n\n{explanation}"
    return Feedback(bool(correct), expected, f"**{verdict}** {detail}\n\n{explanation}".rstrip())


def tempting_text(question: Question, answer_text) -> str | None:
    """The lesson's explanation for this (wrong) answer, if it lists it among the tempting ones."""
    if not question.tempting:
        return None
    text = "" if answer_text is None else str(answer_text).strip()
    if question.kind == "choice":
        return question.tempting.get(text)
    value = parse_number(text)
    if value is None:
        return None
    for key, why in question.tempting.items():
        if abs(value - key) <= tolerance_of(question, key) + 1e-9 * max(1.0, abs(key)):
            return why
    return None
