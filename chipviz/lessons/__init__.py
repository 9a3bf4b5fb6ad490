"""Classroom lessons: Markdown files with a small TOML block per step, checked by the simulator.

No panel or bokeh import: parsed, rendered and checked headless (tests, CLI); LessonView
(lesson_view.py) displays them.

A lesson is one file per language, ``lessons/<lang>/NN-slug.md``::

    # The processing element                 <- title (required, first line)

    Short introduction (Markdown).

    ```toml                                  <- optional: the lesson's starting state
    dataset = "xor"
    lock = ["dataset"]
    minutes = 30                             <- the teacher's plan: class time, lessons to do first
    requires = [1, 2]
    ```

    ## Goals                                 <- or 学习目标: a bullet list
    - ...

    ## Step: One neuron                      <- or 步骤：…; 1 or more steps, in order
    Markdown text; numbers come from the simulator: {{cycles m=4 k=4 n=4 rows=4 cols=4}}

    ```toml                                  <- what the step sets (optional)
    rows = 4                                 <- settings by URL key (chipviz.settings.KEYS)
    op = "L1.forward"                        <- view: GEMM shown, cycle, training, controls
    cycle = 3
    train_steps = 200
    hide = ["lr"]
    lock = ["rows", "cols"]
    tab = "roofline"                         <- the plot tab opened (boundary, descent, utilization, energy, design,
    pace = "every"                              roofline); the animation's pace (tour, every)

    [question]                               <- optional "predict, then run"
    type = "number"
    measure = "cycles"
    gemm = { m = 4, k = 4, n = 4 }
    ```

    ### Look                                 <- or 观察: what to look at
    ### Question                             <- or 问题: the prompt (required with [question])
    ### Explanation                          <- or 解释: shown after an answer, right or wrong
    ### Tempting answers                     <- or 常见误答: '- answer: why a student might give it', shown
                                                before the explanation to a student who gave that wrong answer

    ## Exercises                             <- or 练习: for the teacher
    ### A title
    The exercise.
    **Answer:** the answer (or **答案：**).

Settings accumulate: a step's effective settings are the app defaults, then the lesson's
block, then every step's block up to this one, so a link can open any step. View keys (op,
cycle, train_steps, hide, lock) belong to their step only; hide and lock add to the
lesson's.

Placeholders ``{{measure key=value ...}}`` are a tiny language, never evaluated as code: a
measure name from MEASURES, then arguments — m, k, n (a GEMM), op (a GEMM of the network's
training step: L1.forward, L2.dX, L1.dW), steps (training steps first), digits (decimals
shown) and any setting by URL key. In a step they default to that step's settings, op and
train_steps; elsewhere to the lesson's settings.

The package, imports pointing one way (each module imports only those above it):

    common.py        languages, settings by URL key (chipviz.settings), the interface's words (UI, ui, notice)
    measures.py      MEASURES (every number a lesson states or checks), Query, measure_value, trained,
                     find_op, op_label, format_value
    model.py         the lesson data: Lesson, Step, View, Question, Exercise; LessonError
    placeholders.py  the placeholder language: placeholders_in, resolve_placeholder, render, render_step
    parser.py        the file format above: parse_lesson, load_lesson(s), lesson_files, cached_lessons
    answers.py       checking a student's answer: check_answer, expected_answer, parse_number, Feedback
    apply.py         putting a session in a step's state: apply_step, Applied
    links.py         the lesson part of a URL: lesson_state_from_query, lesson_query, LESSON_KEYS
    check.py         the teacher's checker (python -m chipviz.lessons): check_lesson, main

Everything the app and the tests use is re-exported here: ``from chipviz import lessons as L``.
"""
from __future__ import annotations

from .answers import (AnswerContext, Feedback, check_answer, expected_answer, format_expected, parse_number,
                      tempting_text, tolerance_of)
from .apply import Applied, apply_step
from .check import check_lesson, main
from .common import LANGUAGES, SETTING_KEYS, UI, notice, ui
from .common import _key as _key  # used by the tests
from .links import LESSON_KEYS, lesson_query, lesson_state_from_query
from .measures import MEASURES, Measure, Query, find_op, format_value, measure_value, op_label, trained
from .model import PACES, PLOT_TABS, Exercise, Lesson, LessonError, Question, Step, View
from .parser import LESSONS_DIR, QUESTION_KEYS, cached_lessons, lesson_files, load_lesson, load_lessons, parse_lesson
from .parser import _display_path as _display_path  # used by the tests
from .placeholders import placeholders_in, render, render_lesson_text, render_step, resolve_placeholder

__all__ = [
    # common
    "LANGUAGES", "SETTING_KEYS", "UI", "ui", "notice",
    # measures
    "MEASURES", "Measure", "Query", "measure_value", "trained", "find_op", "op_label", "format_value",
    # model
    "Lesson", "Step", "View", "Question", "Exercise", "LessonError", "PLOT_TABS", "PACES",
    # placeholders
    "placeholders_in", "resolve_placeholder", "render", "render_step", "render_lesson_text",
    # parser
    "LESSONS_DIR", "QUESTION_KEYS", "parse_lesson", "load_lesson", "lesson_files", "load_lessons", "cached_lessons",
    # answers
    "Feedback", "AnswerContext", "expected_answer", "parse_number", "tolerance_of", "format_expected",
    "check_answer", "tempting_text",
    # apply
    "Applied", "apply_step",
    # links
    "LESSON_KEYS", "lesson_state_from_query", "lesson_query",
    # check
    "check_lesson", "main",
]
