"""A checker for teachers: python -m chipviz.lessons [FILE.md ...]

Renders every text and computes every answer of the lessons; prints "ok" per lesson or its
problems (file:line: message) and exits 1 if there are any.
"""
from __future__ import annotations

import re

from .answers import check_answer, expected_answer
from .common import LANGUAGES
from .model import Lesson, LessonError
from .parser import _display_path, load_lesson, load_lessons
from .placeholders import render


def check_lesson(lesson: Lesson) -> list[str]:
    """Render every text and compute every answer of a lesson; return the problems found."""
    problems = []
    texts = [(lesson.intro, lesson.settings, None, 1)] + [(g, lesson.settings, None, 1) for g in lesson.goals]
    texts += [(t, lesson.settings, None, 1) for e in lesson.exercises for t in (e.text, e.answer)]
    for step in lesson.steps:
        ctx = (step.settings, step.view.op, step.view.train_steps or 1)
        texts += [(t, *ctx) for t in (step.text, step.look)]
        if step.question:
            texts += [(t, *ctx) for t in (step.question.prompt, step.question.explanation)]
            texts += [(t, *ctx) for t in step.question.tempting.values()]
            try:
                expected = expected_answer(step.question)
                for answer in step.question.tempting:
                    given = answer if isinstance(answer, str) else repr(float(answer))
                    if check_answer(step.question, given).correct:
                        problems.append(f"{step.source_file}:{step.question.line}: the tempting answer {answer!r} "
                                        f"is right: the simulator answers {expected!r}")
                if step.question.kind == "choice":
                    got = set(expected) if isinstance(expected, tuple) else {expected}
                    if not got <= set(step.question.choices):
                        problems.append(f"{step.source_file}:{step.question.line}: the simulator answers "
                                        f"{expected!r}, which is not among the choices")
            except (ValueError, KeyError) as exc:
                problems.append(f"{step.source_file}:{step.question.line}: {exc}")
    for text, values, op, steps in texts:
        for bad in re.findall(r"⟨(.*?)⟩", render(text, values, lesson.language, op, steps)):
            problems.append(f"{_display_path(lesson.path)}: {bad}")
    return problems


def main(argv=None) -> int:
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        lessons = [load_lesson(p) for p in args] if args else [l for lang in LANGUAGES for l in load_lessons(lang)]
    except LessonError as exc:
        print(exc)
        return 1
    status = 0
    for lesson in lessons:
        problems = check_lesson(lesson)
        for problem in problems:
            print(problem)
        status |= bool(problems)
        if not problems:
            print(f"ok  {_display_path(lesson.path)}: {lesson.title} ({len(lesson.steps)} steps, "
                  f"{sum(1 for s in lesson.steps if s.question)} questions)")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
