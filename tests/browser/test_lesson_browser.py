"""A lesson walked in headless Chromium: choose it, Next through every step, answer one question
wrong and one right, read the feedback; then a teacher's link in Chinese with hidden and locked
controls. Uses the fixtures of tests/browser/conftest.py (browser, serve, artifacts, page_errors).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from chipviz import lessons as L
from chipviz.i18n import t

APP = Path(__file__).resolve().parents[2] / "app.py"  # the real dashboard, with its lesson mode

TIMEOUT = 120_000  # a busy 2-core machine: every wait is on a state, so a long bound costs nothing when idle


@pytest.fixture
def lesson_app(serve, artifacts):
    return serve(APP, log_path=artifacts / "lesson-app-server.log")


def _expect():
    from playwright.sync_api import expect

    return expect


def test_walk_a_lesson_answering_wrong_and_right(browser, lesson_app, artifacts, page_errors):
    expect = _expect()
    lesson = L.load_lessons("en")[1]  # lesson 2: the systolic multiply, cycle by cycle
    n = len(lesson.steps)
    asked = [s for s in lesson.steps if s.question]
    first_q, second_q = asked[0], asked[2]  # answered wrong, then right
    wrong_value = L.expected_answer(first_q.question) + 3
    right_value = L.expected_answer(second_q.question)

    page = browser.new_page(viewport={"width": 1700, "height": 1300})
    errors = page_errors(page)
    page.goto(lesson_app)
    page.get_by_role("button", name=L.ui("en", "lesson_mode"), exact=True).click()  # lesson mode opens lesson 1
    expect(page.get_by_text("Step 1 of 4")).to_be_visible(timeout=TIMEOUT)

    chooser = page.locator("select", has=page.locator("option", has_text=f"2 · {lesson.title}"))
    chooser.select_option(label=f"2 · {lesson.title}")
    expect(page.get_by_text(f"Step 1 of {n}")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text(f"Step 1: {lesson.steps[0].title}")).to_be_visible(timeout=TIMEOUT)
    page.screenshot(path=str(artifacts / "lesson-01-start.png"), full_page=True)

    next_button = page.get_by_role("button", name=L.ui("en", "next"))
    for step in lesson.steps[1:]:
        next_button.click()
        expect(page.get_by_text(f"Step {step.number} of {n}")).to_be_visible(timeout=TIMEOUT)
        expect(page.get_by_text(f"Step {step.number}: {step.title}")).to_be_visible(timeout=TIMEOUT)
        if step.view.op == "L2.forward":  # the dashboard shows the step's GEMM
            expect(page.get_by_text(re.compile(r"layer 2 · forward")).first).to_be_visible(timeout=TIMEOUT)
        if step is first_q:
            box = page.get_by_placeholder(L.ui("en", "number_hint"))
            box.fill(str(wrong_value))
            page.get_by_role("button", name=L.ui("en", "check")).click()
            feedback = page.get_by_text("Not quite.")
            expect(feedback).to_be_visible(timeout=TIMEOUT)
            expect(page.get_by_text(f"You said {wrong_value}")).to_be_visible(timeout=TIMEOUT)
            page.screenshot(path=str(artifacts / "lesson-02-wrong.png"), full_page=True)
        if step is second_q:
            box = page.get_by_placeholder(L.ui("en", "number_hint"))
            box.fill(str(right_value))
            page.get_by_role("button", name=L.ui("en", "check")).click()
            expect(page.get_by_text("Right!")).to_be_visible(timeout=TIMEOUT)
            expect(page.get_by_text(f"The simulator says {right_value} cycles")).to_be_visible(timeout=TIMEOUT)
            page.screenshot(path=str(artifacts / "lesson-03-right.png"), full_page=True)

    expect(page.get_by_text(L.ui("en", "done"))).to_be_visible(timeout=TIMEOUT)
    expect(next_button).to_be_disabled(timeout=TIMEOUT)
    page.get_by_text(L.ui("en", "exercises")).click()  # the teacher's card opens
    expect(page.get_by_text(lesson.exercises[0].title)).to_be_visible(timeout=TIMEOUT)
    page.screenshot(path=str(artifacts / "lesson-04-end.png"), full_page=True)
    page.wait_for_function(f"() => location.search.includes('lesson=2') && location.search.includes('step={n}')",
                           timeout=TIMEOUT)
    page.close()
    assert errors == [], errors


def test_teacher_link_opens_a_step_in_chinese_with_controls_hidden_and_locked(browser, lesson_app, artifacts,
                                                                               page_errors, open_sidebar):
    expect = _expect()
    lesson = L.load_lessons("zh")[3]
    page = browser.new_page(viewport={"width": 1700, "height": 1300})
    errors = page_errors(page)
    page.goto(f"{lesson_app}?lesson=4&step=2&lang=zh&hide=lr,batch&lock=rows,cols")
    expect(page.get_by_text(L.ui("zh", "step_of", i=2, n=len(lesson.steps)))).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text(L.ui("zh", "step_title", i=2, title=lesson.steps[1].title))).to_be_visible(
        timeout=TIMEOUT)
    expect(page.get_by_role("button", name=L.ui("zh", "next"))).to_be_visible(timeout=TIMEOUT)
    open_sidebar(page)
    # the whole interface speaks Chinese (lang is shared); hidden controls are not shown; locked
    # ones are shown, disabled
    expect(page.get_by_text(t("ctl.lr", "zh"))).to_be_hidden(timeout=TIMEOUT)
    expect(page.get_by_text(t("ctl.batch", "zh"))).to_be_hidden(timeout=TIMEOUT)
    expect(page.get_by_text(t("ctl.opt", "zh"), exact=True)).to_be_visible(timeout=TIMEOUT)
    rows, cols = f"{t('ctl.rows', 'zh')}:", f"{t('ctl.cols', 'zh')}:"
    expect(page.get_by_text(rows, exact=True)).to_be_visible(timeout=TIMEOUT)

    def locked(snapshot):  # locked: the box after the label is disabled
        return all(re.search(rf'text: "{label}"\n\s*- textbox \[disabled\]', snapshot) for label in (rows, cols))

    # the link is applied before the page is built: its first render is already the step's state
    snapshot = page.locator("body").aria_snapshot()
    assert locked(snapshot), snapshot[:3000]
    assert t("ctl.lr", "zh") not in snapshot and f'"{t("ctl.batch", "zh")}:' not in snapshot
    assert "Learning rate" not in snapshot and "Optimizer" not in snapshot
    # the step's own state: output stationary
    expect(page.get_by_text(re.compile(r"第 1 层 · 前向传播")).first).to_be_visible(timeout=TIMEOUT)
    page.screenshot(path=str(artifacts / "lesson-05-teacher-link-zh.png"), full_page=True)
    page.get_by_role("button", name="EN", exact=True).click()  # the language switch
    english = L.load_lessons("en")[3]
    expect(page.get_by_text(f"Step 2 of {len(lesson.steps)}")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text(f"Step 2: {english.steps[1].title}")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_role("button", name=L.ui("en", "next"))).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text("Optimizer", exact=True)).to_be_visible(timeout=TIMEOUT)  # the sidebar follows
    page.wait_for_function("() => location.search.includes('lang=en')", timeout=TIMEOUT)  # the link follows
    page.close()
    assert errors == [], errors


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_new_lesson_through_a_link_a_tempting_answer_then_a_right_one(browser, lesson_app, artifacts, page_errors,
                                                                        lang):
    """Lesson 11 (batch size) opened by a teacher's link at 1280×720, in each language: the tempting answer
    "4" (four times the batch, four times the time) shows its own explanation, then the next step is
    answered right."""
    expect = _expect()
    lesson = next(l for l in L.load_lessons(lang) if l.number == 11)
    first, second = lesson.steps[0], lesson.steps[1]
    assert 4.0 in first.question.tempting
    right = L.format_expected(second.question, L.expected_answer(second.question)).rstrip("%")
    n = len(lesson.steps)

    page = browser.new_page(viewport={"width": 1280, "height": 720})
    errors = page_errors(page)
    page.goto(f"{lesson_app}?lesson=11&step=1&lang={lang}")
    expect(page.get_by_text(L.ui(lang, "step_of", i=1, n=n))).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text(L.ui(lang, "step_title", i=1, title=first.title))).to_be_visible(timeout=TIMEOUT)

    box = page.get_by_placeholder(L.ui(lang, "number_hint"))
    box.fill("4")
    page.get_by_role("button", name=L.ui(lang, "check")).click()
    expect(page.get_by_text(L.ui(lang, "wrong"))).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_text(L.ui(lang, "tempting", given="4"))).to_be_visible(timeout=TIMEOUT)
    why = L.render_step(first, first.question.tempting[4.0]).split()[:4]  # the tempting answer's own words
    expect(page.get_by_text(re.compile(re.escape(" ".join(why))))).to_be_visible(timeout=TIMEOUT)
    page.screenshot(path=str(artifacts / f"lesson-11-tempting-{lang}.png"))

    page.get_by_role("button", name=L.ui(lang, "next")).click()
    expect(page.get_by_text(L.ui(lang, "step_title", i=2, title=second.title))).to_be_visible(timeout=TIMEOUT)
    page.wait_for_function("() => location.search.includes('step=2') && location.search.includes('batch=1')",
                           timeout=TIMEOUT)  # the step's state reached the session: a batch of one
    box = page.get_by_placeholder(L.ui(lang, "number_hint"))
    box.fill(right)
    page.get_by_role("button", name=L.ui(lang, "check")).click()
    expect(page.get_by_text(L.ui(lang, "right"))).to_be_visible(timeout=TIMEOUT)
    page.screenshot(path=str(artifacts / f"lesson-11-right-{lang}.png"))
    page.close()
    assert errors == [], errors
