"""Links: the lesson-mode part of a URL query (lesson, step, lang, hide, lock), read and written."""
from __future__ import annotations

from typing import Any

from .. import settings
from .common import LANGUAGES, SETTING_KEYS, notice
from .parser import cached_lessons

LESSON_KEYS = settings.LESSON_KEYS + ("lang",)  # URL keys the lesson mode reads


def _controls(raw: str) -> tuple[list[str], list[str]]:
    keys = [k.strip() for k in str(raw).split(",") if k.strip()]
    return [k for k in keys if k in SETTING_KEYS], [k for k in keys if k not in SETTING_KEYS]


def lesson_state_from_query(query: dict, root=None) -> tuple[dict, list[str]]:
    """The lesson-mode part of a URL query, validated: ({lesson, step, lang, hide, lock}, notices).

    lesson is a lesson number, step 1-based, lang "en" or "zh", hide and lock lists of control
    (URL) keys. Missing keys are left out; a bad value is left out with a notice (in the
    link's language when it has a valid one), as chipviz.settings.parse_query does.
    """
    values: dict[str, Any] = {}
    notices: list[str] = []

    def raw(key):
        value = query.get(key)
        if isinstance(value, (list, tuple)):
            value = value[-1] if value else ""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return None if value is None else str(value).strip()

    lang_raw = raw("lang")
    lang = "en"
    if lang_raw is not None:
        if lang_raw in LANGUAGES:
            values["lang"] = lang = lang_raw
        else:
            notices.append(notice("unknown_lang", value=lang_raw[:20], allowed=", ".join(LANGUAGES)))
    lessons = cached_lessons(lang, root)
    numbers = [lesson.number for lesson in lessons]
    lesson_raw = raw("lesson")
    chosen = None
    if lesson_raw is not None:
        if lesson_raw.isdigit() and len(lesson_raw) < 6 and int(lesson_raw) in numbers:
            chosen = next(l for l in lessons if l.number == int(lesson_raw))
            values["lesson"] = chosen.number
        else:
            notices.append(notice("unknown_lesson", value=lesson_raw[:20],
                              allowed=f"{min(numbers)}–{max(numbers)}" if numbers else "—"))
    step_raw = raw("step")
    if step_raw is not None:
        target = chosen or (lessons[0] if lessons else None)
        n = len(target.steps) if target else 0
        if target and step_raw.isdigit() and len(step_raw) < 6 and 1 <= int(step_raw) <= n:
            values["step"] = int(step_raw)
        else:
            notices.append(notice("bad_step", value=step_raw[:20], lesson=target.number if target else "?", n=n))
    for key in ("hide", "lock"):
        value = raw(key)
        if value is None:
            continue
        good, bad = _controls(value)
        values[key] = good
        if bad:
            notices.append(notice("bad_control", which=key, value=value[:40], bad=", ".join(b[:20] for b in bad),
                              allowed=", ".join(SETTING_KEYS)))
    return values, notices


def lesson_query(lesson: int, step: int, lang: str, hide=(), lock=()) -> dict[str, str]:
    """The URL query of a lesson position (the inverse of lesson_state_from_query)."""
    query = {"lesson": str(lesson), "step": str(step), "lang": lang}
    if hide:
        query["hide"] = ",".join(hide)
    if lock:
        query["lock"] = ",".join(lock)
    return query
